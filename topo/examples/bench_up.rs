//! Bring-up and teardown of N hosts on one switch: `topo` (library, netlink)
//! against the same topology built by `ip -batch` scripts, in the same run.
//!
//! cargo run --release -p topo --example bench_up [-- 10 50 100 200]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topo::{end, Topology, UpOptions};

/// Host `i`'s address on the star's one /16.
fn host_addr(i: usize) -> String {
    format!(
        "10.{}.{}.{}/16",
        100 + (i >> 16),
        (i >> 8) & 255,
        (i & 255) + 1
    )
}

fn star(n: usize, prefix: &str) -> Topology {
    let mut b = Topology::builder(&format!("{prefix}star{n}"))
        .prefix(prefix)
        .switch("s");
    for i in 0..n {
        b = b.host(&format!("h{i}"));
    }
    for i in 0..n {
        let addr = host_addr(i);
        let h = format!("h{i}");
        b = b.link(
            &format!("l{i}"),
            end(&h).ifname("eth0").addr(&addr),
            end("s").ifname(&h),
        );
    }
    b.build().expect("valid")
}

fn ip_batch(args: &[&str], script: &str) {
    let mut c = Command::new("ip")
        .args(args)
        .arg("-batch")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ip");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    let st = c.wait().expect("wait");
    assert!(st.success(), "ip -batch failed: {script}");
}

/// The same star with iproute2: one `ip -batch` for namespaces and veth
/// pairs (both ends placed in their namespaces), then one `ip -n NS -batch`
/// per namespace for addresses and link state (ip -batch has no per-line namespace).
fn ip_up(n: usize, p: &str) -> Duration {
    let t = Instant::now();
    let mut s = String::new();
    s += &format!("netns add {p}s\n");
    for i in 0..n {
        s += &format!("netns add {p}h{i}\n");
    }
    for i in 0..n {
        s += &format!("link add name h{i} netns {p}s type veth peer name eth0 netns {p}h{i}\n");
    }
    ip_batch(&[], &s);
    let mut sw = String::from("link add br0 type bridge\nlink set br0 up\nlink set lo up\n");
    for i in 0..n {
        sw += &format!("link set h{i} master br0 up\n");
    }
    ip_batch(&["-n", &format!("{p}s")], &sw);
    for i in 0..n {
        let addr = host_addr(i);
        ip_batch(
            &["-n", &format!("{p}h{i}")],
            &format!("link set lo up\naddr add {addr} dev eth0\nlink set eth0 up\n"),
        );
    }
    t.elapsed()
}

fn ip_down(n: usize, p: &str) -> Duration {
    let t = Instant::now();
    let mut s = format!("netns del {p}s\n");
    for i in 0..n {
        s += &format!("netns del {p}h{i}\n");
    }
    ip_batch(&[], &s);
    t.elapsed()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 50, 100, 200]
    } else {
        sizes
    };
    let state = std::env::temp_dir().join(format!("bench-up-{}", std::process::id()));
    let mut opts = UpOptions::with_state_dir(&state);
    if let Some(t) = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        opts.threads = t;
    }
    let reps = 3;
    println!(
        "{:>6} | {:>10} {:>10} | {:>12} {:>12} | {:>8} {:>8}",
        "hosts", "topo up", "topo down", "ip-batch up", "ip-batch down", "up x", "down x"
    );
    println!("{}", "-".repeat(82));
    for &n in &sizes {
        let (mut tu, mut td, mut iu, mut id) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in 0..reps {
            let p = format!("bu{}r{r}-", std::process::id() % 10000);
            let t = star(n, &p);
            let t0 = Instant::now();
            let run = topo::up(&t, &opts).expect("topo up");
            tu.push(t0.elapsed());
            if std::env::var_os("BENCH_STEPS").is_some() {
                eprintln!("n={n} steps: {:?}", run.timings());
            }
            let t0 = Instant::now();
            run.down().expect("topo down");
            td.push(t0.elapsed());
            // Let the kernel finish freeing the namespaces before the next build.
            std::thread::sleep(Duration::from_millis(500));
            let p = format!("bi{}r{r}-", std::process::id() % 10000);
            iu.push(ip_up(n, &p));
            id.push(ip_down(n, &p));
            std::thread::sleep(Duration::from_millis(500));
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e3
        };
        let (tu, td, iu, id) = (med(&mut tu), med(&mut td), med(&mut iu), med(&mut id));
        println!(
            "{n:>6} | {tu:>8.1}ms {td:>8.1}ms | {iu:>10.1}ms {id:>11.1}ms | {:>7.2}x {:>7.2}x",
            iu / tu,
            id / td
        );
    }
    println!("(median of {reps}; ratio = ip-batch time / topo time, >1 means topo is faster)");
    let _ = std::fs::remove_dir_all(&state);
}
