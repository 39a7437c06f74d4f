//! The logic server counts writes applied from a session that was not its
//! account's primary at that moment (`secondary_writes_applied`, in
//! `/stats` per account and in total, and in `/metrics`): across switches
//! back and forth between two sessions that both write every input, only
//! the primary's are applied, the secondary's are dropped, and the count
//! of writes applied from a secondary is measured as 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use app::cloud::{spawn, CloudConfig, CloudHandle, Stats};
use app::game::Dir;
use app::input::Input;
use app::sync::{Role, ServerMsg, SyncClient, SyncError};

fn stats(h: &CloudHandle) -> Stats {
    app::cloud::fetch_stats(h.metrics_addr).expect("GET /stats")
}

/// Logs a session of `carol` in.
fn login(h: &CloudHandle, instance: &str) -> (SyncClient, Role) {
    let (c, ok) = SyncClient::connect(h.sync_addr, "carol", "c-token", instance).expect("login");
    c.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    (c, ok.role)
}

/// Receives until the server confirms the role `want` (at most 10 s).
fn until_role(c: &mut SyncClient, want: Role) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {want:?}");
        match c.recv() {
            Ok(ServerMsg::Role { role }) if role == want => return,
            Ok(_) | Err(SyncError::Timeout) => {}
            Err(e) => panic!("waiting for {want:?}: {e}"),
        }
    }
}

#[test]
fn writes_from_a_secondary_are_never_applied_and_the_count_says_so() {
    let config = CloudConfig {
        tick_hz: 50.0,
        accounts: BTreeMap::from([("carol".to_string(), "c-token".to_string())]),
        ..CloudConfig::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let h = spawn(config, any, any).expect("server starts");
    let (a, role_a) = login(&h, "edge1");
    let (b, role_b) = login(&h, "edge2");
    assert_eq!((role_a, role_b), (Role::Primary, Role::Secondary));
    let mut sessions = [a, b];
    let dirs = [Dir::Up, Dir::Left, Dir::Down, Dir::Right];
    let rounds = 6u64;
    let per_round = 20u64;
    for r in 0..rounds {
        // Both write every input of the round; the primary's apply.
        for k in 1..=per_round {
            let seq = r * per_round + k;
            let input = Input::new(dirs[(seq % 4) as usize], seq, seq * 1000);
            for s in &sessions {
                s.writer().write(&input).expect("write");
            }
        }
        // The primary's writes are in before the switch (they travel on
        // another connection than the switching signal).
        let want = (r + 1) * per_round;
        let applied = testkit::wait_until(Duration::from_secs(10), || {
            stats(&h).accounts["carol"].inputs_applied >= want
        });
        assert!(applied, "round {r}: {:?}", stats(&h).accounts["carol"]);
        // The secondary takes over (a migration), then the other way.
        sessions[1].writer().switch().expect("switch");
        until_role(&mut sessions[1], Role::Primary);
        until_role(&mut sessions[0], Role::Secondary);
        sessions.swap(0, 1);
    }
    let n = rounds * per_round;
    let mut s = stats(&h);
    let settled = testkit::wait_until(Duration::from_secs(10), || {
        s = stats(&h);
        let c = &s.accounts["carol"];
        c.inputs_applied + c.duplicates + c.writes_dropped == 2 * n
    });
    assert!(settled, "every write accounted for: {s:#?}");
    let c = &s.accounts["carol"];
    assert_eq!((c.inputs_applied, c.last_seq), (n, n), "{c:?}");
    // Each round's inputs were written by the secondary too: dropped.
    assert_eq!(c.writes_dropped, n, "{c:?}");
    assert_eq!(c.secondary_writes_applied, 0, "{c:?}");
    assert_eq!(s.secondary_writes_applied, 0);
    let http = ctlhttp::blocking::Client::new(std::time::Duration::from_secs(10));
    let r = http
        .get(&format!("http://{}/metrics", h.metrics_addr))
        .expect("GET /metrics");
    assert_eq!(r.status, 200, "GET /metrics");
    let metrics = r.text();
    assert!(
        metrics.contains("\napp_cloud_secondary_writes_applied_total 0\n"),
        "{metrics}"
    );
    // The counter is in /stats' JSON as the testbed reads it.
    let raw: serde_json::Value = http
        .get_json(&format!("http://{}/stats", h.metrics_addr))
        .expect("GET /stats");
    assert_eq!(raw["accounts"]["carol"]["secondary_writes_applied"], 0);
}
