//! Prometheus text helpers shared by the daemons' `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// Sum and count of one kind of timed operation, served as a Prometheus
/// summary (the gNB's and the UE daemon's).
#[derive(Debug, Default)]
pub struct Timed {
    sum_ns: std::sync::atomic::AtomicU64,
    count: std::sync::atomic::AtomicU64,
}

impl Timed {
    /// One more operation, begun at `since`.
    pub fn observe(&self, since: std::time::Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the summary `metric` with its `help` and `labels`
    /// (`name="value",...`).
    pub fn write(&self, out: &mut String, metric: &str, help: &str, labels: &str) {
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} summary\n{metric}_sum{{{labels}}} {}\n{metric}_count{{{labels}}} {}",
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            self.count.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_sums() {
        let t = Timed::default();
        let mut out = String::new();
        t.write(&mut out, "x_seconds", "help", "a=\"b\"");
        assert!(out.contains("x_seconds_count{a=\"b\"} 0"), "{out}");
        let since = std::time::Instant::now();
        t.observe(since);
        t.observe(since);
        let mut out = String::new();
        t.write(&mut out, "x_seconds", "help", "a=\"b\"");
        assert!(out.contains("# TYPE x_seconds summary"), "{out}");
        assert!(out.contains("x_seconds_count{a=\"b\"} 2"), "{out}");
    }
}
