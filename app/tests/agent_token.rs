//! The edge agent's API token (issue 13 item 5): with `--token`, every
//! request but `GET /healthz` and `GET /metrics` needs `Authorization:
//! Bearer TOKEN`; without it or with another token the answer is 401 with
//! a body that says what is missing, and nothing is done. An in-process
//! agent on 127.0.0.1.

use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use app::agent::AgentArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

/// `METHOD url` with `token` as bearer, if any: (status, JSON or text).
fn call(method: &str, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut h = ctlhttp::blocking::Client::new(Duration::from_secs(10));
    if let Some(t) = token {
        h = h.with_bearer(t).expect("token");
    }
    let r = match method {
        "GET" => h.get(url),
        _ => h.post_json(url, "{}"),
    };
    let r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let (status, text) = (r.status, r.text());
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn requests_without_the_token_are_401_and_change_nothing() {
    let dir = std::env::temp_dir().join(format!("agent-token-{}", std::process::id()));
    let _scratch = testkit::TempDir(dir.clone());
    app::repo::Repository::open(dir.join("repo")).expect("repo");
    let run = dir.join("run");
    let cli = Cli::parse_from([
        "agent",
        "--listen",
        "127.0.0.1:0",
        "--repo",
        dir.join("repo").to_str().expect("utf8"),
        "--cloud-repo",
        "http://127.0.0.1:9",
        "--run-dir",
        run.to_str().expect("utf8"),
        "--token",
        "s3cret",
    ]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let running = rt
        .block_on(app::agent::start(cli.agent))
        .expect("agent starts");
    let base = format!("http://{}", running.addr);

    let (st, v) = call("GET", &format!("{base}/instances"), None);
    assert_eq!(st, 401, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("Authorization: Bearer")),
        "{v}"
    );
    assert_eq!(v["field"], "authorization", "{v}");
    let (st, v) = call("GET", &format!("{base}/instances"), Some("guess"));
    assert_eq!(st, 401, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("wrong token")),
        "{v}"
    );
    // A pull without the token does nothing (the cloud is unreachable: with
    // the token it is tried and fails with 502, not 401).
    let (st, v) = call("POST", &format!("{base}/apps/snake/pull"), None);
    assert_eq!(st, 401, "{v}");
    let (st, v) = call("POST", &format!("{base}/apps/snake/pull"), Some("s3cret"));
    assert_ne!(st, 401, "{v}");
    let (st, v) = call("GET", &format!("{base}/instances"), Some("s3cret"));
    assert_eq!((st, v.clone()), (200, Value::Array(vec![])), "{v}");
    // Probes and status stay open.
    assert_eq!(call("GET", &format!("{base}/healthz"), None).0, 200);
    let (st, m) = call("GET", &format!("{base}/metrics"), None);
    assert_eq!(st, 200);
    let m = m.as_str().expect("text").to_string();
    assert!(
        m.contains("agent_requests_unauthorized_total 3"),
        "three requests refused: {m}"
    );
    assert!(
        m.contains("agent_pull_failures_total 1"),
        "only the pull with the token was tried: {m}"
    );
    rt.block_on(running.stop());
}
