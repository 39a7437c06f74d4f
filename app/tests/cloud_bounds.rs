//! The cloud logic server's bound on sync connections (issue 13 item 5):
//! one over `max_conns` is closed at once without disturbing the others,
//! and a place freed is taken again. Over real TCP on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use app::cloud::{spawn, CloudConfig};
use app::sync::SyncClient;

#[test]
fn connections_over_the_bound_are_closed_and_a_freed_place_is_taken_again() {
    let config = CloudConfig {
        tick_hz: 50.0,
        accounts: BTreeMap::from([
            ("alice".to_string(), "a-token".to_string()),
            ("bob".to_string(), "b-token".to_string()),
        ]),
        max_conns: 2,
        ..CloudConfig::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let h = spawn(config, any, any).expect("server starts");
    let (mut a, _) = SyncClient::connect(h.sync_addr, "alice", "a-token", "edge1").expect("first");
    let (mut b, _) = SyncClient::connect(h.sync_addr, "bob", "b-token", "edge1").expect("second");
    let third = SyncClient::connect(h.sync_addr, "alice", "a-token", "edge2");
    assert!(
        third.is_err(),
        "a third connection over max_conns 2 was served"
    );
    // The two open sessions are not disturbed.
    a.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    a.recv().expect("alice still gets the world's deltas");
    b.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    b.recv().expect("bob still gets the world's deltas");
    drop(b);
    // Once the server saw bob's connection end, a new one is served.
    let mut again = None;
    let served = testkit::wait_until(Duration::from_secs(10), || {
        again = SyncClient::connect(h.sync_addr, "bob", "b-token", "edge2").ok();
        again.is_some()
    });
    assert!(served, "the place bob freed was not taken again");
    drop(a);
}
