//! TUN offloads through the gNB, checked by the kernels at both ends: a
//! UE namespace -- radio -- gNB (TUN with TSO/USO) -- n3 -- a routing fake
//! UPF whose TUN is plain, so uplink TCP leaves the UE as TSO
//! super-packets the gNB cuts into GTP-U datagrams (UDP GSO), and downlink
//! segments arrive GRO'd and are joined into super-packets for the gNB's
//! TUN. Every TCP checksum is verified by the receiving kernel (a bad one
//! would be dropped and the transfer stall); the bytes are compared.
//! Needs root (namespaces, TUN, nftables): #[ignore]d unless asked for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::gnb::{addr, RoutedUpf, Topo};
use testkit::wait_until;

mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_gnb");

/// One UDP super-packet sent by the UE with UDP_SEGMENT (USO through the
/// veth into the gNB's TUN): the datagrams reach the data network
/// byte-exact, the last shorter.
fn udp_gso(topo: &Topo, a: Ipv4Addr, port: u16, seg: u16, total: usize) {
    let rx = topo.upf.udp((addr::DN_HOST, port)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let data: Vec<u8> = (0..total).map(|i| (i * 13 + 5) as u8).collect();
    let sent = data.clone();
    topo.ue
        .run(move || {
            let s = UdpSocket::bind((a, 0)).unwrap();
            let v = libc::c_int::from(seg);
            // SAFETY: setsockopt(SOL_UDP, UDP_SEGMENT) with an int.
            let r = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_UDP,
                    103,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "UDP_SEGMENT");
            s.send_to(&sent, (addr::DN_HOST, port)).unwrap();
        })
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let n_dgrams = total.div_ceil(usize::from(seg));
    for k in 0..n_dgrams {
        let n = rx.recv(&mut buf).expect("datagram");
        let want = if k + 1 == n_dgrams {
            total - k * usize::from(seg)
        } else {
            usize::from(seg)
        };
        assert_eq!(n, want, "datagram {k}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(hash(&got), hash(&data));
    assert!(got == data, "UDP payload differs");
}

/// With offloads (this kernel takes TSO/USO on a TUN): TCP of sizes that
/// do and do not fill the last segment, both ways, and a UDP GSO send;
/// the gNB read super-packets and wrote joined ones.
#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn tcp_and_udp_byte_exact_through_tun_offloads() {
    let (topo, upf, _gnb) = gnb_with_upf("h7o", BIN, RoutedUpf::start);
    let a = Ipv4Addr::new(10, 45, 0, 8);
    routed_session(&topo, &upf, a, 0x800, 1006);
    for (i, len) in [1usize, 1400 * 900, 3_000_017, 8 << 20]
        .into_iter()
        .enumerate()
    {
        tcp_echo(&topo, a, 8100 + i as u16, len);
    }
    udp_gso(&topo, a, 8200, 1200, 20_000);
    udp_gso(&topo, a, 8201, 1000, 10_000);
    let supers_in = metric(&topo.upf, "gnb_tun_rx_super_packets_total");
    let supers_out = metric(&topo.upf, "gnb_tun_tx_super_packets_total");
    assert!(supers_in > 0, "no super-packet read from the TUN");
    assert!(supers_out > 0, "no segments joined for the TUN");
    assert_eq!(metric(&topo.upf, "gnb_offload_errors_total"), 0);
}

/// With MINEDGE_TUN_OFFLOAD=off the gNB says so in its log, reads one
/// packet at a time (no super-packet) and TCP still goes through intact.
#[test]
#[ignore = "needs root: network namespaces, TUN, nftables"]
fn offloads_turned_off_fall_back_and_say_so() {
    let topo = root_topo("h7f");
    let upf = RoutedUpf::start(&topo.upf, addr::UPF_N3).unwrap();
    let cfg = topo.gnb_config(7000);
    let file = testkit::TempFile::new(&format!("{}.toml", topo.gnb.name), &cfg.to_toml()).unwrap();
    let log = testkit::TempFile::new(&format!("{}.log", topo.gnb.name), "").unwrap();
    // The gNB, its stderr into `log`, killed on drop.
    let _gnb = testkit::KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &topo.gnb.name, BIN, "run", "--config"])
            .arg(file.path())
            .env(dpio::tun::OFFLOAD_ENV, "off")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(log.path()).unwrap())
            .spawn()
            .unwrap(),
    );
    let api = cfg.n2_api();
    assert!(wait_until(Duration::from_secs(10), || {
        topo.gnb
            .run(move || {
                std::net::TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok()
            })
            .unwrap_or(false)
    }));
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.contains("TUN offloads off"), "{text}");
    let a = Ipv4Addr::new(10, 45, 0, 9);
    routed_session(&topo, &upf, a, 0x900, 1007);
    tcp_echo(&topo, a, 8300, 2_000_003);
    assert_eq!(metric(&topo.upf, "gnb_tun_rx_super_packets_total"), 0);
    assert_eq!(metric(&topo.upf, "gnb_tun_tx_super_packets_total"), 0);
}
