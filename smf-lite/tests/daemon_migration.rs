//! CSM migrations through the daemon on loopback, over HTTP as the UE (via
//! its gNB) and the operator call it: fake UPFs (PFCP over UDP), a fake gNB
//! (N2-lite) and fake edge agents (pull, start, stop, healthz) that record
//! every call.

mod common;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use common::loopback::{edge1_session, gnb_ref, serve};
use common::peers::{blocking, config_text, fake_gnb, raw, wait_associated, wait_in_place, UdpUpf};
use serde_json::{json, Value};
use smf_lite::client::SmfClient;
use smf_lite::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const UE: &str = "imsi-001010000000001";

/// One call a fake agent got: method, path, JSON body.
type Calls = Arc<Mutex<Vec<(String, String, Value)>>>;

#[derive(Clone)]
struct AgentState {
    name: String,
    calls: Calls,
    /// Answer starts with 500 (the instance died before it was ready).
    fail_start: Arc<AtomicBool>,
    next: Arc<AtomicU16>,
}

/// A fake edge agent (`app agent`'s API, answers only) on loopback.
struct FakeAgent {
    addr: SocketAddr,
    calls: Calls,
    fail_start: Arc<AtomicBool>,
    /// The `Authorization` header of every call but `/healthz`.
    auths: Arc<Mutex<Vec<Option<String>>>>,
}

impl FakeAgent {
    async fn start(name: &str) -> FakeAgent {
        let st = AgentState {
            name: name.into(),
            calls: Calls::default(),
            fail_start: Arc::default(),
            next: Arc::new(AtomicU16::new(1)),
        };
        fn log(st: &AgentState, method: &str, path: String, body: Value) {
            st.calls
                .lock()
                .expect("lock")
                .push((method.into(), path, body));
        }
        async fn pull(State(st): State<AgentState>, Path(app): Path<String>) -> Json<Value> {
            log(&st, "POST", format!("/apps/{app}/pull"), Value::Null);
            Json(json!({"app": app, "version": "1", "pulled": true, "pull_ms": 4.5, "bytes": 1000}))
        }
        async fn start(
            State(st): State<AgentState>,
            Json(body): Json<Value>,
        ) -> (StatusCode, Json<Value>) {
            log(&st, "POST", "/instances".into(), body);
            if st.fail_start.load(Ordering::Relaxed) {
                let e = json!({"error": "instance exited before it was ready", "log": ["boom"]});
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(e));
            }
            let n = st.next.fetch_add(1, Ordering::Relaxed);
            let ok = json!({"id": format!("{}-i{n}", st.name), "input_port": 5100 + n,
                "sdp": "v=0\r\n", "start_ms": 42.0, "first_frame_ms": null, "pulled": false,
                "pull_ms": 0.0});
            (StatusCode::CREATED, Json(ok))
        }
        async fn stop(State(st): State<AgentState>, Path(id): Path<String>) -> Json<Value> {
            log(&st, "DELETE", format!("/instances/{id}"), Value::Null);
            Json(json!({"id": id, "exit_code": 0}))
        }
        let auths: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let seen = auths.clone();
        let record = move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                if req.uri().path() != "/healthz" {
                    let a = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    seen.lock().expect("lock").push(a);
                }
                next.run(req).await
            }
        };
        let app = Router::new()
            .route("/apps/{app}/pull", post(pull))
            .route("/instances", post(start))
            .route("/instances/{id}", delete(stop))
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(record))
            .with_state(st.clone());
        FakeAgent {
            addr: serve(app).await,
            calls: st.calls,
            fail_start: st.fail_start,
            auths,
        }
    }

    fn calls(&self) -> Vec<(String, String, Value)> {
        self.calls.lock().expect("lock").clone()
    }

    fn saw(&self, method: &str, path: &str) -> bool {
        self.calls()
            .iter()
            .any(|(m, p, _)| m == method && p == path)
    }
}

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Two UPFs, a gNB, the edges' agents and the daemon; the UE's serving
/// session (PSI 1, at edge1) is up.
struct Bed {
    u1: UdpUpf,
    u2: UdpUpf,
    a1: FakeAgent,
    a2: FakeAgent,
    dead_agent: SocketAddr,
    smf: smf_lite::daemon::Running,
    api: String,
}

impl Bed {
    async fn new() -> Bed {
        let (u1, u2) = (UdpUpf::start("upf1"), UdpUpf::start("upf2"));
        let (gnb_addr, _tunnels) = fake_gnb().await;
        let (a1, a2) = (
            FakeAgent::start("edge1").await,
            FakeAgent::start("edge2").await,
        );
        let dead_agent = closed_port();
        let edge = |name: &str, upf: &str, dnn: &str, agent: SocketAddr, server: &str| {
            // edge2's agent has an API token; the others none.
            let token = if name == "edge2" {
                "token = \"edge2-token\"\n"
            } else {
                ""
            };
            format!(
                "[[edge]]\nname = \"{name}\"\nupf = \"{upf}\"\ndnn = \"{dnn}\"\n\
                 agent = \"{agent}\"\napp_server = \"{server}\"\n{token}"
            )
        };
        let extra = format!(
            "[migration]\ncountdown_ms = 300\nsetup_timeout_ms = 5000\nswitch_timeout_ms = 5000\n\
             latency_probe_ms = 100\n{}{}{}",
            edge("edge1", "upf1", "edge1", a1.addr, "10.60.0.254"),
            edge("edge2", "upf2", "edge2", a2.addr, "10.61.0.254"),
            edge("edge3", "upf2", "edge2", dead_agent, "10.61.0.253"),
        );
        let text = config_text(
            &[
                ("upf1", u1.addr, "edge1", "10.60.0.0/24"),
                ("upf2", u2.addr, "edge2", "10.61.0.0/24"),
            ],
            &extra,
        );
        let cfg = Config::parse(&text).expect("valid");
        let smf = smf_lite::daemon::start(cfg).await.expect("starts");
        let api = format!("http://{}", smf.api_addr);
        wait_associated(&SmfClient::new(&api), 2).await;
        let req = edge1_session(UE.into(), 1, &gnb_ref(gnb_addr));
        let c = SmfClient::new(&api);
        let s = blocking(move || c.create(&req)).await.expect("session 1");
        assert_eq!(s.upf, "upf1");
        Bed {
            u1,
            u2,
            a1,
            a2,
            dead_agent,
            smf,
            api,
        }
    }

    async fn call(&self, method: &'static str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.api);
        let body = body.map(|b| b.to_string());
        blocking(move || raw(method, &url, body.as_deref())).await
    }

    /// Asks, as the UE, to move its service to edge `to`.
    async fn migrate(&self, to: &str) -> (u16, Value) {
        let body = json!({"ue_id": UE, "to": to});
        self.call("POST", "/n1/migrations", Some(body)).await
    }

    async fn register(&self) {
        let reg = json!({"ue_id": UE, "app": "snake", "account": "alice", "token": "t0k",
            "edge": "edge1", "pdu_session_id": 1, "instance": "edge1-i0", "input_port": 5100,
            "stream_port": 6000, "params": {"fps": 30, "scene": "textured"}});
        let (st, info) = self.call("POST", "/n1/services", Some(reg)).await;
        assert_eq!(st, 201, "{info}");
        assert_eq!(info["serving"]["edge"], "edge1");
    }

    /// The UE's events after `after`, waiting up to `wait_ms`.
    async fn events(&self, after: u64, wait_ms: u64) -> Value {
        let path = format!("/n1/events/{UE}?after={after}&wait_ms={wait_ms}");
        let (st, ev) = self.call("GET", &path, None).await;
        assert_eq!(st, 200, "{ev}");
        ev
    }

    /// Long-polls until an event named `name` arrives (deadline 10 s);
    /// returns every event seen until then, from `after` on.
    async fn until(&self, after: &mut u64, name: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let ev = self.events(*after, 2000).await;
            for e in ev["events"].as_array().expect("events") {
                *after = e["seq"].as_u64().expect("seq");
                seen.push(e.clone());
            }
            if seen.iter().any(|e| e["event"] == name) {
                return seen;
            }
            assert!(Instant::now() < deadline, "no {name} event: {seen:?}");
        }
    }

    fn upf_sessions(&self) -> (usize, usize) {
        let n = |u: &UdpUpf| u.upf.lock().expect("lock").sessions.len();
        (n(&self.u1), n(&self.u2))
    }

    async fn session_psis(&self) -> Vec<u64> {
        let (st, list) = self.call("GET", "/sessions", None).await;
        assert_eq!(st, 200);
        let list = list.as_array().expect("list").clone();
        list.iter()
            .map(|s| s["pdu_session_id"].as_u64().expect("psi"))
            .collect()
    }

    /// The SMF's sessions once it lists `n` of them (deadline 5 s): a
    /// release is announced when asked for, and the SMF forgets the session
    /// when the UPF's Deletion Response arrives, a moment after the UPF
    /// dropped it.
    async fn session_psis_settled(&self, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let psis = self.session_psis().await;
            if psis.len() == n || Instant::now() >= deadline {
                return psis;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Waits (deadline 5 s) until `cond` holds.
fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        wait_in_place(Duration::from_secs(5), cond),
        "not within 5 s: {what}"
    );
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_migration_over_http_ends_with_the_source_released() {
    let b = Bed::new().await;
    b.register().await;
    // A poll parked before the request is woken by the first event.
    let waiting = {
        let url = format!("{}/n1/events/{UE}?after=0&wait_ms=20000", b.api);
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = blocking(move || raw("GET", &url, None)).await;
            (t0.elapsed(), r)
        })
    };
    let (st, acc) = b.migrate("edge2").await;
    assert_eq!(st, 202, "{acc}");
    assert_eq!(
        (&acc["from"], &acc["to"], &acc["kind"]),
        (&json!("edge1"), &json!("edge2"), &json!("full"))
    );
    let id = acc["id"].as_u64().expect("id");
    let (took, (st, first)) = waiting.await.expect("join");
    assert_eq!(st, 200);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(first["events"][0]["seq"], 1, "{first}");

    let mut after = 0;
    let seen = b.until(&mut after, "stream_ready").await;
    assert_eq!(names(&seen), ["session_ready", "stream_ready"], "{seen:?}");
    let session = &seen[0]["session"];
    assert_eq!(
        (&session["upf"], &seen[0]["migration"]),
        (&json!("upf2"), &json!(id))
    );
    let new_addr = session["ue_addr"].as_str().expect("ue_addr").to_owned();
    assert!(new_addr.starts_with("10.61.0."), "{new_addr}");
    let ready = &seen[1];
    assert_eq!(ready["edge"], "edge2");
    assert_eq!(ready["instance"], "edge2-i1");
    assert_eq!(ready["input"], "10.61.0.254:5101");
    assert_eq!(ready["sdp"], "v=0\r\n");
    // The destination agent pulled, then started an instance streaming to
    // the new session's address with the service's account and parameters.
    let calls = b.a2.calls();
    assert_eq!(calls[0].1, "/apps/snake/pull", "{calls:?}");
    let auths = b.a2.auths.lock().expect("lock").clone();
    assert!(
        !auths.is_empty()
            && auths
                .iter()
                .all(|a| a.as_deref() == Some("Bearer edge2-token")),
        "every call to edge2's agent carries its token: {auths:?}"
    );
    let start = &calls[1].2;
    assert_eq!(start["ue"], format!("{new_addr}:6000"));
    assert_eq!(
        (&start["app"], &start["account"], &start["token"]),
        (&json!("snake"), &json!("alice"), &json!("t0k"))
    );
    assert_eq!(
        (&start["fps"], &start["scene"]),
        (&json!(30), &json!("textured"))
    );
    assert_eq!(b.upf_sessions(), (1, 1));

    let (st, e) = b
        .call(
            "POST",
            &format!("/n1/migrations/{id}/switched"),
            Some(json!({"ue_id": UE, "ssim": 0.93})),
        )
        .await;
    assert_eq!(st, 204, "{e}");
    let seen = b.until(&mut after, "released").await;
    assert_eq!(names(&seen), ["completed", "released"], "{seen:?}");
    assert_eq!(seen[0]["countdown_ms"], 300);
    assert_eq!(
        (&seen[1]["edge"], &seen[1]["pdu_session_id"]),
        (&json!("edge1"), &json!(1))
    );
    // The source's instance is stopped and its session gone at its UPF.
    eventually("source instance stopped", || {
        b.a1.saw("DELETE", "/instances/edge1-i0")
    });
    eventually("source session deleted at upf1", || {
        b.upf_sessions() == (0, 1)
    });
    let psis = b.session_psis_settled(1).await;
    assert_eq!(psis.len(), 1, "{psis:?}");
    assert!(!b.a2.saw("DELETE", "/instances/edge2-i1"));

    let (_, services) = b.call("GET", "/services", None).await;
    let svc = &services[0];
    assert_eq!(svc["serving"]["edge"], "edge2");
    assert_eq!(svc["serving"]["pdu_session_id"], psis[0]);
    assert!(
        svc.get("copilot").is_none() && svc.get("migrating").is_none(),
        "{svc}"
    );
    let (_, recs) = b.call("GET", "/migrations", None).await;
    let rec = &recs[0];
    assert_eq!(
        (&rec["id"], &rec["state"]),
        (&json!(id), &json!("completed"))
    );
    assert_eq!(rec["ssim"], 0.93);
    assert_eq!(rec["instance_start_ms"], 42.0);
    let phases: Vec<&str> = rec["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().unwrap_or("?"))
        .collect();
    for p in [
        "session_ready",
        "pulled",
        "instance_ready",
        "stream_ready",
        "switched",
        "released",
    ] {
        assert!(phases.contains(&p), "{p} missing from {phases:?}");
    }
    let (st, one) = b.call("GET", &format!("/migrations/{id}"), None).await;
    assert_eq!((st, &one), (200, rec));
    // A report for the migration that has ended.
    let (st, e) = b
        .call(
            "POST",
            &format!("/n1/migrations/{id}/switched"),
            Some(json!({"ue_id": UE})),
        )
        .await;
    assert_eq!((st, &e["field"]), (409, &json!("id")), "{e}");
    b.smf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_start_abandons_and_leaves_nothing() {
    let b = Bed::new().await;
    b.register().await;
    b.a2.fail_start.store(true, Ordering::Relaxed);
    let (st, acc) = b.migrate("edge2").await;
    assert_eq!(st, 202, "{acc}");
    let mut after = 0;
    let seen = b.until(&mut after, "abandoned").await;
    assert_eq!(names(&seen), ["session_ready", "abandoned"], "{seen:?}");
    let reason = seen[1]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("edge2") && reason.contains("500") && reason.contains("boom"),
        "{reason}"
    );
    // The parallel session is released; the source is untouched.
    eventually("parallel session deleted at upf2", || {
        b.upf_sessions() == (1, 0)
    });
    assert!(
        !b.a1.saw("DELETE", "/instances/edge1-i0"),
        "{:?}",
        b.a1.calls()
    );
    assert!(
        !b.a2.calls().iter().any(|c| c.0 == "DELETE"),
        "{:?}",
        b.a2.calls()
    );
    let rt = tokio::runtime::Handle::current();
    assert!(
        wait_in_place(Duration::from_secs(5), || rt.block_on(b.session_psis())
            == [1]),
        "parallel session still listed after 5 s"
    );
    let (_, services) = b.call("GET", "/services", None).await;
    assert_eq!(services[0]["serving"]["edge"], "edge1");
    assert!(services[0].get("migrating").is_none(), "{services}");
    let (_, recs) = b.call("GET", "/migrations", None).await;
    assert_eq!(recs[0]["state"], "abandoned");

    // An agent that refuses connections: abandoned, the reason names it.
    let (st, acc) = b.migrate("edge3").await;
    assert_eq!(st, 202, "{acc}");
    let seen = b.until(&mut after, "abandoned").await;
    let reason = seen
        .last()
        .and_then(|e| e["reason"].as_str())
        .expect("reason");
    assert!(
        reason.contains(&format!("agent of edge3 at {}", b.dead_agent)),
        "{reason}"
    );
    eventually("edge3's session deleted at upf2", || {
        b.upf_sessions() == (1, 0)
    });

    // The serving session released through the session API: the UE is gone.
    let (st, _) = b.call("DELETE", &format!("/sessions/{UE}/1"), None).await;
    assert_eq!(st, 204);
    let (_, services) = b.call("GET", "/services", None).await;
    assert_eq!(services, json!([]));
    b.smf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_field_and_the_long_poll_is_bounded() {
    let b = Bed::new().await;
    // Registrations that do not match the UE's sessions.
    let reg = |edge: &str, psi: u8| {
        json!({"ue_id": UE, "app": "snake", "account": "alice", "token": "t", "edge": edge,
            "pdu_session_id": psi, "instance": "i", "input_port": 5100, "stream_port": 6000})
    };
    for (body, status, field) in [
        (reg("edge2", 1), 409, "edge"),
        (reg("edge1", 2), 404, "pdu_session_id"),
        (reg("edge9", 1), 400, "edge"),
        (json!({"ue_id": UE}), 400, "app"),
    ] {
        let (st, e) = b.call("POST", "/n1/services", Some(body.clone())).await;
        assert_eq!((st, &e["field"]), (status, &json!(field)), "{body}: {e}");
    }
    let (st, e) = b.migrate("edge2").await;
    assert_eq!((st, &e["field"]), (404, &json!("ue_id")), "{e}");
    b.register().await;
    // An unknown edge: refused naming the field (a 400, as any unknown name
    // in a request body), and nothing starts.
    let (st, e) = b.migrate("edge9").await;
    assert_eq!((st, &e["field"]), (400, &json!("to")), "{e}");
    assert!(
        e["error"].as_str().is_some_and(|s| s.contains("edge9")),
        "{e}"
    );
    for (path, body, field) in [
        ("/n1/migrations/x/switched", json!({"ue_id": UE}), "id"),
        ("/n1/migrations/77/switched", json!({"ue_id": UE}), "id"),
        (
            "/n1/migrations",
            json!({"ue_id": UE, "colour": 1}),
            "colour",
        ),
    ] {
        let (st, e) = b.call("POST", path, Some(body)).await;
        assert!(st == 400 || st == 404, "{path}: {st} {e}");
        assert_eq!(e["field"], field, "{path}: {e}");
    }
    assert!(b.a1.calls().is_empty() && b.a2.calls().is_empty());

    // No events: the poll waits its wait_ms, then answers empty.
    let t0 = Instant::now();
    let ev = b.events(0, 300).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(ev, json!({"first_seq": 0, "events": []}));
    // A migration makes events; a poll with events pending answers at once.
    let (st, _) = b.migrate("edge2").await;
    assert_eq!(st, 202);
    let mut after = 0;
    b.until(&mut after, "stream_ready").await;
    let t0 = Instant::now();
    let ev = b.events(0, 20_000).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(ev["events"].as_array().map(Vec::len), Some(2), "{ev}");
    let (st, e) = b
        .call("GET", &format!("/n1/events/{UE}?after=x"), None)
        .await;
    assert_eq!((st, &e["field"]), (400, &json!("after")), "{e}");

    // The latency probe: the live agents are measured, the dead one is not.
    let rt = tokio::runtime::Handle::current();
    let mut edges = Value::Null;
    let lat = |e: &Value, i: usize| e[i].get("latency_ms").and_then(Value::as_f64);
    let measured = wait_in_place(Duration::from_secs(5), || {
        edges = rt.block_on(b.call("GET", "/edges", None)).1;
        lat(&edges, 0).is_some() && lat(&edges, 1).is_some()
    });
    assert!(measured, "no latency measured within 5 s: {edges}");
    assert_eq!(lat(&edges, 2), None, "{edges}");
    assert_eq!(
        (&edges[2]["name"], &edges[2]["dnn"]),
        (&json!("edge3"), &json!("edge2"))
    );
    b.smf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_edges_migration_is_refused_with_the_reason() {
    let u1 = UdpUpf::start("upf1");
    let text = config_text(&[("upf1", u1.addr, "edge1", "10.60.0.0/24")], "");
    let smf = smf_lite::daemon::start(Config::parse(&text).expect("valid"))
        .await
        .expect("starts");
    let api = format!("http://{}", smf.api_addr);
    let (st, e) = blocking({
        let url = format!("{api}/n1/migrations");
        move || raw("POST", &url, Some(&json!({"ue_id": UE}).to_string()))
    })
    .await;
    assert_eq!(st, 503, "{e}");
    assert!(
        e["error"].as_str().is_some_and(|s| s.contains("no edges")),
        "{e}"
    );
    let (st, e) = blocking(move || raw("GET", &format!("{api}/edges"), None)).await;
    assert_eq!((st, e), (200, json!([])));
    smf.stop().await;
}
