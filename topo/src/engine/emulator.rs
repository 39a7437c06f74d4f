//! The userspace link emulators: their configuration, finding the `topo`
//! binary that runs them, and starting each (journaled) until it says `ready`.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::build::check_cancel;
use super::{EmuProc, LinkRun, TopoError, UpOptions};
use crate::config::{Shape, Topology};
use crate::emu::{EmuConfig, Impairment};
use crate::state::{self, Entry, Journal, StateDir};

/// Starts the emulator of each link in `emus` (link index, process to
/// fill in) and records it in `links`.
pub(super) fn start_emulators(
    topo: &Topology,
    opts: &UpOptions,
    state: &StateDir,
    journal: &mut Journal,
    emus: Vec<(usize, EmuProc)>,
    links: &mut [LinkRun],
) -> Result<(), TopoError> {
    if emus.is_empty() {
        return Ok(());
    }
    let bin = topo_bin(opts)?;
    for (li, ep) in emus {
        start_emulator(topo, state, journal, &bin, ep, &mut links[li])?;
        check_cancel(opts)?;
    }
    Ok(())
}

/// Writes the emulator's configuration, journals the intent, starts it and
/// journals its pid.
fn start_emulator(
    topo: &Topology,
    state: &StateDir,
    journal: &mut Journal,
    bin: &Path,
    mut ep: EmuProc,
    lr: &mut LinkRun,
) -> Result<(), TopoError> {
    let link = lr.name.clone();
    let cfg = emu_config(&ep, lr);
    cfg.write_file(&ep.config).map_err(|e| TopoError::Emu {
        link: link.clone(),
        reason: e.to_string(),
    })?;
    journal.append(&[Entry::EmuIntent {
        config: ep.config.clone(),
    }])?;
    let log = state.topo_dir(&topo.name)?.join(format!("emu-{link}.log"));
    let (pid, start) = spawn_emu(bin, &ep.config, &log, &link, journal)?;
    ep.pid = pid;
    ep.start = start;
    tracing::info!("started link emulator for `{link}` (pid {pid})");
    lr.emu = Some(ep);
    Ok(())
}

/// The emulator's configuration for the current shaping of its link.
pub(super) fn emu_config(emu: &EmuProc, lr: &LinkRun) -> EmuConfig {
    let imp = |s: &Shape| Impairment {
        delay_us: s.delay_us,
        jitter_us: s.jitter_us,
        loss_ppm: s.loss_ppm,
    };
    EmuConfig {
        netns: Some(emu.netns.clone()),
        port_a: emu.port_a.clone(),
        port_b: emu.port_b.clone(),
        a_to_b: imp(&lr.shape_ab),
        b_to_a: imp(&lr.shape_ba),
        // Stable per link, so a reload keeps the same loss/jitter sequence seed.
        seed: emu
            .config
            .to_string_lossy()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            }),
    }
}

fn topo_bin(opts: &UpOptions) -> Result<PathBuf, TopoError> {
    if let Some(b) = &opts.topo_bin {
        return Ok(b.clone());
    }
    if let Some(b) = std::env::var_os("MINEDGE_TOPO_BIN") {
        return Ok(b.into());
    }
    let exe = std::env::current_exe().map_err(|source| TopoError::Io {
        what: "current_exe".into(),
        source,
    })?;
    if exe.file_name().is_some_and(|n| n == "topo") {
        return Ok(exe);
    }
    // Test and example binaries live in target/<profile>/{deps,examples}/.
    for dir in exe.ancestors().skip(1).take(3) {
        let c = dir.join("topo");
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(TopoError::Emu { link: "*".into(), reason: "cannot find the `topo` binary to run the link emulator (set MINEDGE_TOPO_BIN or UpOptions::topo_bin)".into() })
}

fn spawn_emu(
    bin: &Path,
    config: &Path,
    log: &Path,
    link: &str,
    journal: &mut Journal,
) -> Result<(i32, u64), TopoError> {
    let err = |reason: String| TopoError::Emu {
        link: link.into(),
        reason,
    };
    let logf =
        std::fs::File::create(log).map_err(|e| err(format!("create {}: {e}", log.display())))?;
    let mut cmd = Command::new(bin);
    cmd.arg("emu-run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(logf);
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("spawn {}: {e}", bin.display())))?;
    let pid = child.id() as i32;
    let start = state::proc_start_time(pid).unwrap_or(0);
    journal.append(&[Entry::Proc {
        pid,
        start,
        config: config.to_path_buf(),
    }])?;
    let Some(out) = child.stdout.take() else {
        return Err(err("no stdout".into()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = std::io::BufReader::new(out)
            .read_line(&mut line)
            .map(|_| line);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(l)) if l.trim() == "ready" => {
            // Reap it in the background if we are still its parent when it ends.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            Ok((pid, start))
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let logtext = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = logtext.lines().rev().take(5).collect();
            let why = match other {
                Ok(Ok(l)) if l.is_empty() => "exited before it was ready".to_string(),
                Ok(Ok(l)) => format!("said `{}` instead of `ready`", l.trim()),
                Ok(Err(e)) => format!("reading its output: {e}"),
                Err(_) => "not ready after 10 s".to_string(),
            };
            Err(err(format!(
                "{why}; log {}: {}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )))
        }
    }
}
