//! Round trip of one small HTTP call between two single-threaded runtimes
//! (as between two daemons), against a raw TCP ping-pong between the same
//! two threads: what the HTTP layers add to a hop.
//!
//! ```text
//! cargo run --release -p ctlhttp --example rtt [-- CALLS]
//! ```

use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn p(v: &mut [u64], q: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q) as usize] as f64 / 1e3
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    // Raw TCP ping-pong, 64 bytes, between two threads.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().expect("accept");
        c.set_nodelay(true).expect("nodelay");
        let mut b = [0u8; 64];
        while c.read_exact(&mut b).is_ok() {
            if c.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut tcp = Vec::with_capacity(n);
    let mut b = [0u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&b).expect("write");
        c.read_exact(&mut b).expect("read");
        tcp.push(t.elapsed().as_nanos() as u64);
    }
    // HTTP: axum server on its own single-threaded runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().route("/x", axum::routing::get(|| async { "[]" }));
            axum::serve(l, app).await.expect("serve");
        })
    });
    let addr = rx.recv().expect("addr");
    let http = rt().block_on(async move {
        let c = ctlhttp::Client::new(Duration::from_secs(5));
        let url = format!("http://{addr}/x");
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = c.get(&url).await.expect("get");
            assert_eq!(r.status, 200);
            v.push(t.elapsed().as_nanos() as u64);
        }
        v
    });
    let (mut tcp, mut http) = (tcp, http);
    println!(
        "raw TCP ping-pong: p50 {:.1} us p99 {:.1} us\nHTTP GET (ctlhttp -> axum): p50 {:.1} us p99 {:.1} us\nratio p50 {:.2}x",
        p(&mut tcp, 0.5),
        p(&mut tcp, 0.99),
        p(&mut http, 0.5),
        p(&mut http, 0.99),
        p(&mut http, 0.5) / p(&mut tcp, 0.5)
    );
}
