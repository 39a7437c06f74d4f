//! The API's request and answer types (JSON).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::bad;
use super::statecopy::link::RoundSent;
use super::statecopy::plan::{preset, Method, Params, PlanError, SNAKE};
use super::AgentError;
use crate::repo;
use crate::scene::Scene;

/// A start request, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Application name.
    pub app: String,
    /// The user's account.
    pub account: String,
    /// The account's token (passed to the instance).
    pub token: String,
    /// Where the instance streams RTP to.
    pub ue: SocketAddr,
    /// Frame width (even).
    pub width: Option<u32>,
    /// Frame height (even).
    pub height: Option<u32>,
    /// Frames per second.
    pub fps: Option<u32>,
    /// Encoder bitrate (bit/s).
    pub bitrate: Option<u32>,
    /// What the instance draws (`None`: the instance's default, snake).
    pub scene: Option<Scene>,
}

impl StartRequest {
    /// Parses and checks a request body; errors name the field.
    pub fn parse(body: &[u8]) -> Result<Self, AgentError> {
        let obj = json_object(body)?;
        const KNOWN: [&str; 9] = [
            "app", "account", "token", "ue", "width", "height", "fps", "bitrate", "scene",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field `{k}` (known: {})", KNOWN.join(", ")),
            ));
        }
        let app = req_str(&obj, "app")?;
        repo::check_name(&app).map_err(|e| bad("app", e.to_string()))?;
        let account = req_str(&obj, "account")?;
        let token = req_str(&obj, "token")?;
        let ue = req_addr(&obj, "ue", "IP:PORT, e.g. 10.60.0.1:5004")?;
        let width = opt_u32(&obj, "width", 16, 7680)?;
        let height = opt_u32(&obj, "height", 16, 4320)?;
        for (f, v) in [("width", width), ("height", height)] {
            if v.is_some_and(|v| v % 2 != 0) {
                return Err(bad(f, format!("`{f}` must be even (I420)")));
            }
        }
        let fps = opt_u32(&obj, "fps", 1, 240)?;
        let bitrate = opt_u32(&obj, "bitrate", 10_000, 1_000_000_000)?;
        let scene = match obj.get("scene") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().map_err(|e| bad("scene", format!("{e}")))?),
            Some(v) => return Err(bad("scene", format!("`scene` must be a string, got {v}"))),
        };
        Ok(StartRequest {
            app,
            account,
            token,
            ue,
            width,
            height,
            fps,
            bitrate,
            scene,
        })
    }
}

/// The body as a JSON object.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, AgentError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AgentError::BadRequest {
        field: None,
        msg: format!("malformed JSON: {e}"),
    })?;
    let Value::Object(obj) = v else {
        return Err(AgentError::BadRequest {
            field: None,
            msg: "the request must be a JSON object".into(),
        });
    };
    Ok(obj)
}

/// The address in string field `f`: a specific IP and a non-zero port
/// (`want` says what it should be, for the error).
fn req_addr(obj: &Map<String, Value>, f: &str, want: &str) -> Result<SocketAddr, AgentError> {
    let s = req_str(obj, f)?;
    let a: SocketAddr = s
        .parse()
        .map_err(|_| bad(f, format!("bad `{f}` address {s:?}: want {want}")))?;
    if a.port() == 0 || a.ip().is_unspecified() {
        return Err(bad(
            f,
            format!("bad `{f}` address {s:?}: the IP must be specific and the port non-zero"),
        ));
    }
    Ok(a)
}

fn req_str(obj: &Map<String, Value>, f: &str) -> Result<String, AgentError> {
    match obj.get(f) {
        None | Some(Value::Null) => Err(bad(f, format!("missing field `{f}`"))),
        Some(Value::String(s)) if s.is_empty() => Err(bad(f, format!("`{f}` is empty"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(f, format!("`{f}` must be a string"))),
    }
}

fn opt_u32(obj: &Map<String, Value>, f: &str, lo: u32, hi: u32) -> Result<Option<u32>, AgentError> {
    match obj.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (u64::from(lo)..=u64::from(hi)).contains(&n) => Ok(Some(n as u32)),
            _ => Err(bad(
                f,
                format!("`{f}` must be an integer in {lo}..={hi}, got {v}"),
            )),
        },
    }
}

/// What identifies a running instance (part of [`Started`] and
/// [`InstanceStatus`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Instance id (within this agent).
    pub id: String,
    /// Application name.
    pub app: String,
    /// Application version.
    pub version: String,
    /// Account.
    pub account: String,
    /// The instance's name at the cloud.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// RTP destination.
    pub ue: SocketAddr,
    /// UDP port the instance takes input on.
    pub input_port: u16,
    /// The instance's metrics/control address.
    pub metrics: SocketAddr,
    /// The instance's log file.
    pub log: PathBuf,
    /// openh264's SIMD flags in the instance's build, as it reported them
    /// when it became ready; null: built without its assembly (encoding
    /// takes ~2.8x the CPU).
    pub h264_simd: Option<u32>,
}

/// The answer to a successful start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstanceInfo,
    /// The SDP text for the UE.
    pub sdp: String,
    /// Whether the application was pulled from the cloud for this start.
    pub pulled: bool,
    /// Time of the pull (0 when not pulled).
    pub pull_ms: f64,
    /// Package bytes pulled (0 when not pulled).
    pub pull_bytes: u64,
    /// Time from the request's arrival to the process's being ready (the
    /// pull, if any, included).
    pub start_ms: f64,
    /// Time from spawning the process to its being ready.
    pub spawn_ms: f64,
    /// Time from the request's arrival to the first frame's having been
    /// sent; null when the instance had not sent it by the answer (see
    /// `GET /instances/{id}`).
    pub first_frame_ms: Option<f64>,
}

/// An instance's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstanceInfo,
    /// "running" or "exited".
    pub state: String,
    /// Exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub exit_signal: Option<i32>,
    /// Time since start.
    pub uptime_ms: u64,
    /// As in [`Started`]: request to ready.
    pub start_ms: f64,
    /// As in [`Started`]: request to first frame sent, once the instance
    /// has reported it (null before, and for an instance that exited
    /// without reporting it).
    pub first_frame_ms: Option<f64>,
}

/// The answer to a pull-only request (`POST /apps/{app}/pull`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pulled {
    /// Application name.
    pub app: String,
    /// Its version in the edge repository.
    pub version: String,
    /// Whether it was pulled now (false: it was there already).
    pub pulled: bool,
    /// Time of the pull (0 when not pulled).
    pub pull_ms: f64,
    /// Package bytes pulled (0 when not pulled).
    pub bytes: u64,
}

/// The answer to `DELETE /apps/{app}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removed {
    /// Application name.
    pub app: String,
    /// The version that was removed.
    pub version: String,
}

/// The answer to a DELETE.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stopped {
    /// Instance id.
    pub id: String,
    /// Exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    pub exit_signal: Option<i32>,
    /// Whether SIGKILL was needed.
    pub killed: bool,
    /// Whether it had already exited before the request.
    pub already_exited: bool,
    /// Time the stop took.
    pub stop_ms: f64,
}

/// A state-copy request (`POST /instances/{id}/statecopy`), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StateCopyRequest {
    /// What the migration runs with (preset, overrides, then scale).
    pub params: Params,
    /// The preset the parameters started from.
    pub preset: String,
    /// The scale applied.
    pub scale: f64,
    /// The destination agent's copy listener.
    pub to_copy: SocketAddr,
    /// The destination agent's API base URL (no trailing slash).
    pub to_agent: String,
    /// The destination instance's start request.
    pub start: StartRequest,
}

impl StateCopyRequest {
    /// Parses and checks a request body; errors name the field.
    pub fn parse(body: &[u8]) -> Result<Self, AgentError> {
        let obj = json_object(body)?;
        const KNOWN: [&str; 11] = [
            "method",
            "preset",
            "image_bytes",
            "dirty_bytes_per_s",
            "setup_ms",
            "max_rounds",
            "stop_threshold_bytes",
            "scale",
            "to_copy",
            "to_agent",
            "start",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field `{k}` (known: {})", KNOWN.join(", ")),
            ));
        }
        let plan_err = |e: PlanError| bad(e.field, e.reason);
        let method: Method = req_str(&obj, "method")?.parse().map_err(plan_err)?;
        let preset_name = match obj.get("preset") {
            None | Some(Value::Null) => SNAKE.name.to_owned(),
            Some(_) => req_str(&obj, "preset")?,
        };
        let mut params = Params::from_preset(method, &preset(&preset_name).map_err(plan_err)?);
        let u64_of = |f: &str| -> Result<Option<u64>, AgentError> {
            match obj.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    bad(f, format!("`{f}` must be a non-negative integer, got {v}"))
                }),
            }
        };
        if let Some(v) = u64_of("image_bytes")? {
            params.image_bytes = v;
        }
        if let Some(v) = u64_of("dirty_bytes_per_s")? {
            params.dirty_bytes_per_s = v;
        }
        if let Some(v) = u64_of("setup_ms")? {
            params.setup_ms = v;
        }
        if let Some(v) = u64_of("max_rounds")? {
            params.max_rounds = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = u64_of("stop_threshold_bytes")? {
            params.stop_threshold_bytes = v;
        }
        params.check().map_err(plan_err)?;
        let scale = match obj.get("scale") {
            None | Some(Value::Null) => 1.0,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad("scale", format!("`scale` must be a number, got {v}")))?,
        };
        let params = params.scaled(scale).map_err(plan_err)?;
        let to_copy = req_addr(
            &obj,
            "to_copy",
            "the destination's copy listener IP:PORT, e.g. 10.80.0.2:7500",
        )?;
        let to_agent = req_str(&obj, "to_agent")?.trim_end_matches('/').to_owned();
        let host = to_agent.strip_prefix("http://").unwrap_or("");
        if host.is_empty() || host.contains('/') {
            return Err(bad(
                "to_agent",
                format!(
                    "bad `to_agent` {to_agent:?}: want the destination agent's http://HOST:PORT"
                ),
            ));
        }
        let start = match obj.get("start") {
            Some(v @ Value::Object(_)) => {
                StartRequest::parse(v.to_string().as_bytes()).map_err(|e| match e {
                    AgentError::BadRequest { field, msg } => AgentError::BadRequest {
                        field: Some(field.map_or("start".into(), |f| format!("start.{f}"))),
                        msg: format!("start: {msg}"),
                    },
                    e => e,
                })?
            }
            None | Some(Value::Null) => {
                return Err(bad(
                    "start",
                    "missing field `start` (the destination's start request)",
                ))
            }
            Some(_) => return Err(bad("start", "`start` must be an object (a start request)")),
        };
        Ok(StateCopyRequest {
            params,
            preset: preset_name,
            scale,
            to_copy,
            to_agent,
            start,
        })
    }
}

/// The answer to a state copy: the sender's ledger and the times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateCopyReport {
    /// The migration's id (in every frame's header).
    pub migration_id: u64,
    /// The source instance (ended now).
    pub instance: String,
    /// The method.
    pub method: Method,
    /// The preset the parameters started from.
    pub preset: String,
    /// The scale applied.
    pub scale: f64,
    /// The parameters used.
    pub params: Params,
    /// The destination's copy listener.
    pub to_copy: SocketAddr,
    /// The destination agent.
    pub to_agent: String,
    /// Every round: payload bytes, duration on the link (to the
    /// receiver's acknowledgement), whether the source ran.
    pub rounds: Vec<RoundSent>,
    /// Image bytes written.
    pub payload_bytes: u64,
    /// Header bytes written.
    pub framing_bytes: u64,
    /// Everything the sender wrote on the copy connection (payload and
    /// headers; not TCP/IP headers).
    pub bytes_ledger: u64,
    /// Payload bytes the receiver counted.
    pub received_bytes: u64,
    /// The set-up phase.
    pub setup_ms: f64,
    /// When the request's run began (Unix ns).
    pub start_unix_ns: u64,
    /// When the source was stopped (SIGSTOP; Unix ns).
    pub stop_unix_ns: u64,
    /// From the stop to the destination's start answer.
    pub stop_to_started_ms: f64,
    /// The destination instance.
    pub destination: Started,
    /// The source instance's end.
    pub source: Stopped,
    /// From the beginning to the destination's start answer.
    pub total_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> Option<String> {
        match StartRequest::parse(body.as_bytes()) {
            Err(AgentError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn start_request_fields() {
        let ok = r#"{"app":"snake","account":"a","token":"t","ue":"10.60.0.1:5004","fps":30}"#;
        let r = StartRequest::parse(ok.as_bytes()).expect("ok");
        assert_eq!(r.fps, Some(30));
        assert_eq!(r.scene, None);
        let textured = ok.replace("\"fps\":30", "\"scene\":\"textured\"");
        let r = StartRequest::parse(textured.as_bytes()).expect("ok");
        assert_eq!(r.scene, Some(Scene::Textured));
        for bad_scene in ["\"moving\"", "1"] {
            let body = ok.replace("30", &format!("30,\"scene\":{bad_scene}"));
            assert_eq!(field(&body).as_deref(), Some("scene"), "{body}");
        }
        assert_eq!(r.ue, "10.60.0.1:5004".parse().expect("addr"));
        assert_eq!(field("{"), None);
        assert_eq!(field("[1]"), None);
        assert_eq!(
            field(r#"{"app":"snake","account":"a","token":"t"}"#).as_deref(),
            Some("ue")
        );
        assert_eq!(
            field(r#"{"app":"snake","account":"a","token":"t","ue":"x"}"#).as_deref(),
            Some("ue")
        );
        assert_eq!(
            field(r#"{"app":"snake","account":"a","token":"t","ue":"0.0.0.0:5"}"#).as_deref(),
            Some("ue")
        );
        assert_eq!(
            field(r#"{"app":"../x","account":"a","token":"t","ue":"1.2.3.4:5"}"#).as_deref(),
            Some("app")
        );
        assert_eq!(
            field(r#"{"app":"s","account":7,"token":"t","ue":"1.2.3.4:5"}"#).as_deref(),
            Some("account")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","ue":"1.2.3.4:5"}"#).as_deref(),
            Some("token")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","token":"t","ue":"1.2.3.4:5","width":641}"#)
                .as_deref(),
            Some("width")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","token":"t","ue":"1.2.3.4:5","fps":"60"}"#)
                .as_deref(),
            Some("fps")
        );
        assert_eq!(
            field(r#"{"app":"s","account":"a","token":"t","ue":"1.2.3.4:5","colour":1}"#)
                .as_deref(),
            Some("colour")
        );
    }

    fn copy_field(body: &serde_json::Value) -> Option<String> {
        match StateCopyRequest::parse(body.to_string().as_bytes()) {
            Err(AgentError::BadRequest { field, .. }) => field,
            other => panic!("expected a bad request for {body}, got {other:?}"),
        }
    }

    #[test]
    fn state_copy_request_fields() {
        let ok = serde_json::json!({
            "method": "pre-copy", "to_copy": "10.80.0.2:7500", "to_agent": "http://10.0.0.5:7400/",
            "start": {"app": "snake", "account": "a", "token": "t", "ue": "10.60.0.1:5004"}
        });
        let r = StateCopyRequest::parse(ok.to_string().as_bytes()).expect("ok");
        assert_eq!(r.preset, "snake");
        assert_eq!(r.params, Params::from_preset(Method::PreCopy, &SNAKE));
        assert_eq!(r.to_agent, "http://10.0.0.5:7400");
        assert_eq!(r.start.ue, "10.60.0.1:5004".parse().expect("addr"));
        let with = |k: &str, v: serde_json::Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        let r = StateCopyRequest::parse(with("scale", 0.5.into()).to_string().as_bytes())
            .expect("scaled");
        assert_eq!(r.params.image_bytes, SNAKE.image_bytes / 2);
        let r = StateCopyRequest::parse(with("preset", "minetest".into()).to_string().as_bytes())
            .expect("minetest");
        assert_eq!(
            r.params.image_bytes,
            crate::agent::statecopy::plan::MINETEST.image_bytes
        );
        let r = StateCopyRequest::parse(with("image_bytes", 1000.into()).to_string().as_bytes())
            .expect("override");
        assert_eq!(
            (r.params.image_bytes, r.params.setup_ms),
            (1000, SNAKE.setup_ms)
        );
        for (k, v, field) in [
            ("method", "post-copy".into(), "method"),
            ("preset", "doom".into(), "preset"),
            ("scale", 0.into(), "scale"),
            ("scale", 2.into(), "scale"),
            ("scale", "x".into(), "scale"),
            ("image_bytes", 0.into(), "image_bytes"),
            ("image_bytes", (-5).into(), "image_bytes"),
            ("max_rounds", 0.into(), "max_rounds"),
            ("to_copy", "10.80.0.2".into(), "to_copy"),
            ("to_copy", "0.0.0.0:7500".into(), "to_copy"),
            ("to_agent", "10.0.0.5:7400".into(), "to_agent"),
            ("to_agent", "http://".into(), "to_agent"),
            ("start", "x".into(), "start"),
            (
                "start",
                serde_json::json!({"app": "snake"}),
                "start.account",
            ),
            ("colour", 1.into(), "colour"),
        ] {
            assert_eq!(copy_field(&with(k, v)).as_deref(), Some(field), "{k}");
        }
        for k in ["method", "to_copy", "to_agent", "start"] {
            let mut b = ok.clone();
            b.as_object_mut().expect("object").remove(k);
            assert_eq!(copy_field(&b).as_deref(), Some(k));
        }
    }
}
