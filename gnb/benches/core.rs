//! Per-packet cost of the gNB's data path without I/O: the decisions of
//! `gnb::datapath::core` against a tunnel snapshot of 1 and 10 000
//! sessions, alone and with the GTP-U work around them (uplink: decision +
//! encapsulation in place; downlink: decapsulation + decision), 1400-byte
//! inner packets.
//!
//!     cargo bench -p gnb --bench core
//!
//! `cargo test --release -p gnb --benches` runs each case once (criterion's
//! test mode), which is what CI should run to keep this compiling.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gnb::datapath::core::{downlink, uplink, Downlink, Uplink};
use gnb::tunnels::TunnelTable;
use wire::gtpu::{encap_in_place, GpduHeader, MAX_GPDU_HEADER_LEN};

const INNER: usize = 1400;

fn ue(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 45, 0, 0)) + i + 1)
}

/// A table of `n` tunnels to one UPF; returns it with the middle one's UE
/// address and downlink TEID.
fn table(n: u32) -> (TunnelTable, Ipv4Addr, u32) {
    let t = TunnelTable::new();
    let upf: SocketAddr = "10.0.2.1:2152".parse().expect("addr");
    let mut mid = (ue(0), 0);
    for i in 0..n {
        let c = t
            .add(&format!("ue{i}"), 1, ue(i), 0x1000 + i, upf, 9)
            .expect("tunnel");
        if i == n / 2 {
            mid = (ue(i), c.tunnel.dl_teid);
        }
    }
    (t, mid.0, mid.1)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0u8; INNER];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(INNER as u16).to_be_bytes());
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p
}

fn bench(c: &mut Criterion) {
    let dn = Ipv4Addr::new(10, 60, 0, 1);
    let upf: SocketAddr = "10.0.2.1:2152".parse().expect("addr");
    for n in [1u32, 10_000] {
        let (t, ue_addr, dl_teid) = table(n);
        let snap = t.load();
        let up = ipv4(ue_addr, dn);
        c.bench_function(&format!("uplink decision, {n} tunnels"), |b| {
            b.iter(|| matches!(uplink(&snap, black_box(&up)), Uplink::Send { .. }))
        });
        let mut buf = vec![0u8; MAX_GPDU_HEADER_LEN + INNER];
        buf[MAX_GPDU_HEADER_LEN..].copy_from_slice(&up);
        c.bench_function(&format!("uplink decision + encap, {n} tunnels"), |b| {
            b.iter(|| {
                let pkt = &buf[MAX_GPDU_HEADER_LEN..];
                let Uplink::Send { hdr, .. } = uplink(&snap, black_box(pkt)) else {
                    return 0;
                };
                encap_in_place(black_box(&mut buf), MAX_GPDU_HEADER_LEN, INNER, &hdr)
                    .map_or(0, |g| g.len())
            })
        });
        let mut g = vec![0u8; 16 + INNER];
        g[16..].copy_from_slice(&ipv4(dn, ue_addr));
        let dg = encap_in_place(&mut g, 16, INNER, &GpduHeader::dl(dl_teid, 9))
            .expect("encap")
            .to_vec();
        c.bench_function(&format!("downlink decap + decision, {n} tunnels"), |b| {
            b.iter(|| {
                matches!(
                    downlink(&snap, black_box(upf), black_box(&dg)),
                    Downlink::ToTun { .. }
                )
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
