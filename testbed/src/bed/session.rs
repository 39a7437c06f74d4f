//! Sessions: `ue session` in a UE's namespace, and the DNN of a request.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use wire::ctl::SessionInfo;

use super::process::default_bin_dir;
use super::record::load_one;
use super::{io, BedError};
use crate::plan::{Plan, Role};

/// Runs `ue session ARGS...` in the UE's namespace with its configuration;
/// returns its stdout.
pub fn ue_session(
    state_dir_opt: Option<&Path>,
    bin_dir: Option<&Path>,
    ue: &str,
    args: &[String],
) -> Result<String, BedError> {
    let st = load_one(state_dir_opt)?;
    let rec = st
        .procs
        .iter()
        .find(|p| p.role == Role::Ue && p.name == ue)
        .ok_or_else(|| {
            let known: Vec<_> = st.plan.ues.iter().map(|u| u.name.as_str()).collect();
            BedError::Usage(format!("no UE `{ue}` (UEs: {})", known.join(", ")))
        })?;
    let bin = bin_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(default_bin_dir)
        .join(Role::Ue.binary());
    let out = topo::engine::command_in(&rec.netns, &bin)?
        .arg("session")
        .arg("--config")
        .arg(&rec.config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io("run", &bin))?;
    if !out.status.success() {
        return Err(BedError::Request(format!(
            "ue {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `ue session` arguments that ask for PDU session `psi` on `dnn`,
/// through `upf` when given.
pub fn add_args(psi: u8, dnn: &str, upf: Option<&str>) -> Vec<String> {
    let mut a = vec![
        "add".to_string(),
        "--psi".into(),
        psi.to_string(),
        "--dnn".into(),
        dnn.to_string(),
    ];
    if let Some(u) = upf {
        a.extend(["--upf".into(), u.to_string()]);
    }
    a
}

/// The UE's PDU sessions (`ue session list --json` in its namespace).
pub fn ue_sessions(
    state_dir_opt: Option<&Path>,
    bin_dir: Option<&Path>,
    ue: &str,
) -> Result<Vec<SessionInfo>, BedError> {
    let listed = ue_session(
        state_dir_opt,
        bin_dir,
        ue,
        &["list".into(), "--json".into()],
    )?;
    serde_json::from_str(&listed).map_err(|e| {
        BedError::Request(format!(
            "`ue session list --json` gave no session list: {e}"
        ))
    })
}

/// The UE's address on its session `psi`, from its list of `sessions`.
pub fn session_addr(sessions: &[SessionInfo], psi: u8) -> Result<Ipv4Addr, BedError> {
    sessions
        .iter()
        .find(|s| s.pdu_session_id == psi)
        .map(|s| s.ue_addr)
        .ok_or_else(|| BedError::Request(format!("session {psi} is not in the UE's list")))
}

/// Picks the DNN of a session request: the given one, else the named UPF's,
/// else the first UPF's.
pub fn pick_dnn(plan: &Plan, dnn: Option<&str>, upf: Option<&str>) -> Result<String, BedError> {
    if let Some(d) = dnn {
        return Ok(d.to_string());
    }
    let u = match upf {
        Some(name) => plan.upf(name).ok_or_else(|| {
            let known: Vec<_> = plan.upfs.iter().map(|u| u.name.as_str()).collect();
            BedError::Usage(format!("no UPF `{name}` (UPFs: {})", known.join(", ")))
        })?,
        None => plan
            .upfs
            .first()
            .ok_or_else(|| BedError::Usage("the plan has no UPF".into()))?,
    };
    Ok(u.dnn.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo::Topology;

    #[test]
    fn dnn_choice() {
        let p = Plan::derive(&Topology::paper_default()).expect("plan");
        assert_eq!(pick_dnn(&p, None, Some("upf2")).expect("dnn"), "edge2");
        assert_eq!(pick_dnn(&p, None, None).expect("dnn"), "edge1");
        assert_eq!(pick_dnn(&p, Some("x"), None).expect("dnn"), "x");
        assert!(pick_dnn(&p, None, Some("upf9")).is_err());
    }
}
