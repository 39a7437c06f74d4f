//! What the radio-side filter adds to an N2-lite tunnel setup: N setups
//! and releases (distinct UEs and addresses) with `radio_firewall` on, then
//! off, the gNB's own mean setup time (`gnb_n2_setup_seconds`) for each.
//!
//! ```text
//! sudo cargo run --release -p gnb --example n2_setup_time [-- N]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use testkit::gnb::{addr, InProcessGnb, Topo};
use wire::ctl::{TunnelSetup, TunnelSetupResponse};

fn call(topo: &Topo, method: &str, path: &str, body: Option<String>) -> String {
    let url = format!("http://{}:{}{path}", addr::GNB_N3, wire::ctl::GNB_N2_PORT);
    let method = method.to_string();
    topo.upf
        .run(move || {
            let c = ctlhttp::blocking::Client::new(std::time::Duration::from_secs(10));
            let r = match (method.as_str(), body) {
                ("POST", Some(b)) => c.post_json(&url, b),
                ("DELETE", _) => c.delete(&url),
                _ => c.get(&url),
            };
            let r = r.unwrap();
            assert!(
                r.status < 400,
                "{method} {url}: HTTP {}: {}",
                r.status,
                r.text()
            );
            r.text()
        })
        .unwrap()
}

/// Mean gNB N2 setup time (µs) over `n` setups.
fn run(n: u32, firewall: bool) -> f64 {
    let topo = Topo::new("n2t").unwrap();
    let mut cfg = topo.gnb_config(7000);
    cfg.radio_firewall = firewall;
    let _gnb = InProcessGnb::start(&topo.gnb, cfg).unwrap();
    for i in 0..n {
        let req = TunnelSetup {
            ue_id: format!("imsi-{i}"),
            pdu_session_id: 1,
            ue_addr: Ipv4Addr::from(0x0a2d_0000 + 2 + i),
            ul_teid: 0x1000 + i,
            ul_addr: addr::UPF_N3.into(),
            qfi: 9,
        };
        let b = call(
            &topo,
            "POST",
            "/n2/tunnels",
            Some(serde_json::to_string(&req).unwrap()),
        );
        let r: TunnelSetupResponse = serde_json::from_str(&b).unwrap();
        call(&topo, "DELETE", &format!("/n2/tunnels/{}", r.dl_teid), None);
    }
    let m = call(&topo, "GET", "/metrics", None);
    let get = |name: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    get("gnb_n2_setup_seconds_sum") / get("gnb_n2_setup_seconds_count") * 1e6
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let on = run(n, true);
    let off = run(n, false);
    println!("{n} N2 setups: mean {on:.0} µs with the radio-side filter, {off:.0} µs without");
}
