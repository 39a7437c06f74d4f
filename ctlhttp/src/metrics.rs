//! The daemons' `/metrics`: one exposition layer on `prometheus-client`.
//!
//! Every daemon (UPF, gNB, SMF, UE, the app's agent, instance, cloud and
//! repository) describes its metrics in a [`Collector`] that reads its own
//! counters when a scrape encodes it; [`encode`] puts it in a
//! `prometheus-client` registry and writes the Prometheus text format
//! (version 0.0.4, [`CONTENT_TYPE`]), the format the testbed's readers
//! (`testbed::bed::parse_prometheus`, `app`'s `gauge`) and Prometheus parse.
//! Counters are written with the `_total` suffix on the HELP, TYPE and
//! sample lines, label values are escaped (`\\`, `\"`, `\n`) by the encoder.
//!
//! Nothing on a data path writes into `prometheus-client` metrics: the
//! UPF's and gNB's packet counters stay what they are (per batch, per
//! worker or per tunnel) and their collectors load them at encode time.
//!
//! Our names stay the project's; where 3GPP TS 28.552 defines the
//! measurement a series corresponds to, its HELP text names it
//! (`TS 28.552 <measurement>`). The ones that have one (clause numbers
//! where checked):
//!
//! | Series (labels) | TS 28.552 measurement |
//! |---|---|
//! | `upf_n3_rx_packets_total` | GTP.InDataPktN3UPF (5.4.1) |
//! | `upf_n3_rx_bytes_total` | GTP.InDataOctN3UPF (5.4.1) |
//! | `upf_n3_tx_packets_total` | GTP.OutDataPktN3UPF (5.4.1) |
//! | `upf_n3_tx_bytes_total` | GTP.OutDataOctN3UPF (5.4.1) |
//! | `upf_session_packets_total`, `upf_session_bytes_total` (`seid`, `direction`) | GTP.In/OutDataPkt/OctN3UPF per PDU session (the standard's are per S-NSSAI) |
//! | `upf_pfcp_messages_total{kind="session_report"}` | SM.N4SessionReport (reports the UPF sent) |
//! | `upf_n6_rx_super_packets_total`, `upf_n6_tx_super_packets_total` | none (the N6 TUN offload path) |
//! | `smf_sessions_created_total` | SM.PduSessionCreationSucc |
//! | `smf_sessions_failed_total` | SM.PduSessionCreationFail; SM.PduSessionCreationReq = Succ + Fail |
//! | `smf_sessions{state}` | SM.SessionNbrMean / SM.SessionNbrMax sample it |
//! | `smf_pfcp_session_reports_total` | SM.N4SessionReportSucc |
//! | `gnb_tunnel_ul_bytes_total`, `gnb_tunnel_dl_bytes_total` | the inner volume DRB.PdcpSduVolumeUL/DL (5.1.2.1) counts per cell |
//!
//! The N6 series (`upf_n6_*`), drops, the UE's, the app's and the testbed's
//! own series have no TS 28.552 counterpart.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

pub use prometheus_client;
pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::{
    EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics` (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The label set of a series without labels.
pub const NO_LABELS: [(&str, &str); 0] = [];

/// The text of `collector` (Prometheus text format 0.0.4).
pub fn encode(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    // Writing into a String fails only if a collector fails; what it
    // wrote before that is served.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The text of the families `f` writes (a [`Collector`] made of a closure
/// that owns what it reads).
pub fn encode_fn<F>(f: F) -> String
where
    F: Fn(&mut Families<'_>) -> fmt::Result + Send + Sync + 'static,
{
    encode(FnCollector(f))
}

/// The `/metrics` answer: `body` with [`CONTENT_TYPE`].
pub fn response(body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// A [`Collector`] whose families a closure writes.
pub struct FnCollector<F>(pub F);

impl<F> fmt::Debug for FnCollector<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnCollector")
    }
}

impl<F> Collector for FnCollector<F>
where
    F: Fn(&mut Families<'_>) -> fmt::Result + Send + Sync + 'static,
{
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        (self.0)(&mut Families::new(encoder))
    }
}

/// The type of a single-valued series (see [`Families::single`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A counter (its name ends in `_total`).
    Counter,
    /// A gauge.
    Gauge,
}

/// Histogram figures of one series: `buckets` are (upper bound, count in
/// that bucket alone); the `+Inf` bucket is `count`.
#[derive(Debug, Clone, Copy)]
pub struct Histogram<'b> {
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Per-bucket (not cumulative) counts, by upper bound.
    pub buckets: &'b [(f64, u64)],
}

/// Writes metric families (HELP, TYPE and samples) through a
/// `prometheus-client` encoder. Names are the full series names: a counter's
/// ends in `_total` (the encoder writes that suffix itself).
pub struct Families<'a> {
    enc: DescriptorEncoder<'a>,
}

impl fmt::Debug for Families<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Families")
    }
}

impl<'a> Families<'a> {
    /// Families written through `enc` (what [`Collector::encode`] gets).
    pub fn new(enc: DescriptorEncoder<'a>) -> Self {
        Families { enc }
    }

    /// Counter `name` (ending in `_total`) with one sample per item.
    pub fn counter<L, V>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result
    where
        L: EncodeLabelSet,
        V: EncodeCounterValue,
    {
        debug_assert!(name.ends_with("_total"), "counter {name} without _total");
        let base = name.strip_suffix("_total").unwrap_or(name);
        let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
        self.family(base, help, MetricType::Counter, samples)
    }

    /// Family `name` of `kind` with one sample per item.
    fn family<L: EncodeLabelSet, M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: impl IntoIterator<Item = (L, M)>,
    ) -> fmt::Result {
        let mut m = self.enc.encode_descriptor(name, help, None, kind)?;
        for (labels, v) in samples {
            v.encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// Counter `name` without labels.
    pub fn counter_value<V: EncodeCounterValue>(
        &mut self,
        name: &str,
        help: &str,
        v: V,
    ) -> fmt::Result {
        self.counter(name, help, [(NO_LABELS, v)])
    }

    /// Gauge `name` with one sample per item.
    pub fn gauge<L, V>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result
    where
        L: EncodeLabelSet,
        V: EncodeGaugeValue,
    {
        let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
        self.family(name, help, MetricType::Gauge, samples)
    }

    /// Gauge `name` without labels.
    pub fn gauge_value<V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        v: V,
    ) -> fmt::Result {
        self.gauge(name, help, [(NO_LABELS, v)])
    }

    /// Family `name` of one sample, a counter or a gauge (tables of
    /// single-valued series).
    pub fn single<L, V>(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        labels: L,
        v: V,
    ) -> fmt::Result
    where
        L: EncodeLabelSet,
        V: EncodeCounterValue + EncodeGaugeValue,
    {
        match kind {
            Kind::Counter => self.counter(name, help, [(labels, v)]),
            Kind::Gauge => self.gauge(name, help, [(labels, v)]),
        }
    }

    /// Histogram `name` (`_bucket`, `_sum`, `_count`) with one series per
    /// item.
    pub fn histogram<'h, L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (L, Histogram<'h>)>,
    ) -> fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in samples {
            m.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, h.buckets, None)?;
        }
        Ok(())
    }
}

/// Sum and count of one kind of timed operation (the gNB's and the UE
/// daemon's), served as a histogram with the `+Inf` bucket only
/// (`_sum`, `_count`).
#[derive(Debug, Default)]
pub struct Timed {
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Timed {
    /// One more operation, begun at `since`.
    pub fn observe(&self, since: std::time::Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures now (seconds).
    pub fn histogram(&self) -> Histogram<'static> {
        Histogram {
            sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count.load(Ordering::Relaxed),
            buckets: &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn timed_counts_and_sums() {
        let t = Arc::new(Timed::default());
        let t2 = t.clone();
        let text = move || {
            let t = t2.clone();
            encode_fn(move |f| f.histogram("x_seconds", "help", [([("a", "b")], t.histogram())]))
        };
        assert!(
            text().contains("x_seconds_count{a=\"b\"} 0\n"),
            "{}",
            text()
        );
        let since = std::time::Instant::now();
        t.observe(since);
        t.observe(since);
        let out = text();
        assert!(out.contains("# TYPE x_seconds histogram\n"), "{out}");
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{a=\"b\"} 2\n"), "{out}");
    }

    /// Label pairs of a sample.
    type Labels = Vec<(String, String)>;
    /// A family as parsed: its type and samples.
    type Family = (String, Vec<(Labels, f64)>);

    /// A sample line `name{k="v",...} value`: (name, labels, value), with
    /// label values unescaped; `None` if it is not one.
    fn sample(line: &str) -> Option<(String, Labels, f64)> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        let name_end = line.find(['{', ' '])?;
        let name = &line[..name_end];
        if !valid(name) {
            return None;
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = r.split_once("=\"")?;
                if !valid(key) {
                    return None;
                }
                let (mut value, mut esc, mut end) = (String::new(), false, None);
                for (i, c) in after.char_indices() {
                    match (esc, c) {
                        (true, 'n') => value.push('\n'),
                        (true, '\\' | '"') => value.push(c),
                        (true, _) | (false, '\n') => return None,
                        (false, '\\') => {}
                        (false, '"') => {
                            end = Some(i + 1);
                            break;
                        }
                        (false, c) => value.push(c),
                    }
                    esc = !esc && c == '\\';
                }
                labels.push((key.to_string(), value));
                r = &after[end?..];
                r = r.strip_prefix(',').unwrap_or(r);
            }
        }
        let v = match rest.strip_prefix(' ')? {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        Some((name.to_string(), labels, v))
    }

    /// Checks `text` the way a Prometheus scraper would: every family has
    /// HELP then TYPE before its samples, samples belong to the family just
    /// declared (with its suffixes), no family twice; gives the samples.
    fn parse(text: &str) -> HashMap<String, Family> {
        let mut fams: HashMap<String, Family> = HashMap::new();
        let mut current: Option<(String, String)> = None;
        let mut help_for = None;
        assert!(text.ends_with('\n'), "{text}");
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("# HELP ") {
                let (n, _) = h.split_once(' ').expect("HELP name text");
                help_for = Some(n.to_string());
            } else if let Some(t) = line.strip_prefix("# TYPE ") {
                let (n, kind) = t.split_once(' ').expect("TYPE name kind");
                assert_eq!(help_for.as_deref(), Some(n), "TYPE without HELP: {line}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(!fams.contains_key(n), "family {n} twice");
                fams.insert(n.to_string(), (kind.to_string(), Vec::new()));
                current = Some((n.to_string(), kind.to_string()));
            } else {
                assert!(!line.starts_with('#'), "{line}");
                let (name, labels, v) = sample(line).unwrap_or_else(|| panic!("bad: {line}"));
                let (fam, kind) = current.clone().expect("sample before TYPE");
                let ok = match kind.as_str() {
                    "counter" => name == fam && fam.ends_with("_total"),
                    "histogram" => {
                        name == format!("{fam}_sum")
                            || name == format!("{fam}_count")
                            || (name == format!("{fam}_bucket")
                                && labels.iter().any(|(k, _)| k == "le"))
                    }
                    _ => name == fam,
                };
                assert!(ok, "{line} in family {fam} ({kind})");
                fams.get_mut(&fam).expect("declared").1.push((labels, v));
            }
        }
        fams
    }

    #[test]
    fn encoded_text_parses_with_help_type_total_and_escapes() {
        let text = encode_fn(|f| {
            f.counter_value(
                "a_packets_total",
                "Packets (TS 28.552 GTP.InDataPktN3UPF).",
                7u64,
            )?;
            f.counter(
                "a_drops_total",
                "Drops, by reason.",
                [
                    ([("reason", "quote\"d".to_string())], 1u64),
                    ([("reason", "back\\slash\nnl".to_string())], 2),
                ],
            )?;
            f.counter(
                "a_empty_total",
                "No sample yet.",
                Vec::<([(&str, &str); 0], u64)>::new(),
            )?;
            f.counter_value("a_seconds_total", "Seconds.", 0.25f64)?;
            f.gauge(
                "a_sessions",
                "Sessions.",
                [([("s", "x"), ("t", "y")], 3i64)],
            )?;
            f.gauge_value("a_ratio", "A ratio.", 0.5f64)?;
            f.histogram(
                "a_setup_seconds",
                "Setup.",
                [(
                    [("ue", "u1")],
                    Histogram {
                        sum: 0.003,
                        count: 3,
                        buckets: &[(0.001, 1), (0.002, 1)],
                    },
                )],
            )
        });
        let fams = parse(&text);
        let get = |f: &str| fams.get(f).unwrap_or_else(|| panic!("{f}: {text}"));
        assert_eq!(get("a_packets_total").0, "counter");
        assert_eq!(get("a_packets_total").1, vec![(vec![], 7.0)]);
        assert!(text.contains(
            "# HELP a_packets_total Packets (TS 28.552 GTP.InDataPktN3UPF).\n\
             # TYPE a_packets_total counter\na_packets_total 7\n"
        ));
        // Escaped on the wire, the same value once parsed.
        assert!(
            text.contains("a_drops_total{reason=\"quote\\\"d\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("a_drops_total{reason=\"back\\\\slash\\nnl\"} 2\n"),
            "{text}"
        );
        let drops = &get("a_drops_total").1;
        assert_eq!(drops[0].0, vec![("reason".into(), "quote\"d".into())]);
        assert_eq!(
            drops[1].0,
            vec![("reason".into(), "back\\slash\nnl".into())]
        );
        assert!(get("a_empty_total").1.is_empty());
        assert_eq!(get("a_seconds_total").1[0].1, 0.25);
        assert_eq!(get("a_sessions").0, "gauge");
        assert_eq!(get("a_sessions").1[0].0.len(), 2);
        assert_eq!(get("a_ratio").1[0].1, 0.5);
        let h = &get("a_setup_seconds").1;
        let v: Vec<f64> = h.iter().map(|s| s.1).collect();
        // Cumulative buckets, +Inf = count, then sum and count.
        assert_eq!(v, vec![1.0, 2.0, 3.0, 0.003, 3.0], "{text}");
        assert!(text.contains("a_setup_seconds_bucket{ue=\"u1\",le=\"0.001\"} 1\n"));
        for (name, (kind, _)) in &fams {
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
        }
    }
}
