//! The instance's counters (lock-free atomics, written by its threads) and
//! their Prometheus text exposition (`GET /metrics`).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use ctlhttp::metrics::Kind;

use crate::sync::Role;

/// Counters of an instance (lock-free; rendered by [`Metrics::prometheus`]).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Frames rendered.
    pub frames_rendered: AtomicU64,
    /// Frames encoded.
    pub frames_encoded: AtomicU64,
    /// Frames whose datagrams were all sent.
    pub frames_sent: AtomicU64,
    /// IDR frames.
    pub idr_frames: AtomicU64,
    /// Frame slots skipped because the loop fell behind.
    pub frames_late: AtomicU64,
    /// RTP datagrams sent.
    pub packets_sent: AtomicU64,
    /// Octets of RTP sent (UDP payload).
    pub bytes_sent: AtomicU64,
    /// Datagrams the socket refused.
    pub send_errors: AtomicU64,
    /// Encoder errors.
    pub encode_errors: AtomicU64,
    /// Sum of render times, ns.
    pub render_ns_total: AtomicU64,
    /// Sum of encode times, ns.
    pub encode_ns_total: AtomicU64,
    /// Last encode time, ns.
    pub encode_ns_last: AtomicU64,
    /// Valid input datagrams that carry an input (seq != 0).
    pub inputs_received: AtomicU64,
    /// Inputs forwarded as writes.
    pub inputs_forwarded: AtomicU64,
    /// Inputs dropped because the session is secondary.
    pub inputs_dropped_secondary: AtomicU64,
    /// Datagrams on the input port that are not inputs.
    pub inputs_malformed: AtomicU64,
    /// Datagrams on the input port from another address than the UE's
    /// session address (the instance's `--ue`): dropped unread.
    pub inputs_foreign: AtomicU64,
    /// Writes (or switching signals) that failed to send.
    pub forward_errors: AtomicU64,
    /// Sequence number of the last forwarded input.
    pub last_input_forwarded: AtomicU64,
    /// Writes the server reported dropped.
    pub writes_dropped_by_server: AtomicU64,
    /// Deltas applied.
    pub deltas: AtomicU64,
    /// Deltas that did not apply.
    pub delta_errors: AtomicU64,
    /// The world copy's tick.
    pub world_tick: AtomicU64,
    /// Switching signals sent (by `POST /switch` or by an input).
    pub switches: AtomicU64,
    /// When the instance became ready (logged in, endpoints up), Unix ns.
    pub ready_unix_ns: AtomicU64,
    /// When the first frame's datagrams had all been sent, Unix ns (0: not yet).
    pub first_frame_unix_ns: AtomicU64,
    /// Switching signals sent because an input datagram carried SWITCH
    /// (also counted in [`Metrics::switches`]).
    pub switches_by_input: AtomicU64,
    /// Key frames requested by input datagrams (KEY_FRAME) and granted.
    pub key_frame_requests: AtomicU64,
    /// KEY_FRAME requests refused by the rate limit.
    pub key_frame_requests_limited: AtomicU64,
    /// openh264's SIMD flags in this build (`media::h264::simd_flags`; 0:
    /// built without its assembly).
    pub h264_simd_flags: AtomicU64,
    /// 1 primary, 0 secondary.
    pub primary: AtomicU8,
}

impl Metrics {
    /// Every single-valued series: name, help, type, value.
    #[rustfmt::skip]
    fn series(&self) -> [(&'static str, &'static str, Kind, &AtomicU64); 30] {
        use Kind::{Counter, Gauge};
        [
            ("app_instance_frames_rendered_total", "Frames rendered.", Counter, &self.frames_rendered),
            ("app_instance_frames_encoded_total", "Frames encoded.", Counter, &self.frames_encoded),
            ("app_instance_frames_sent_total", "Frames sent.", Counter, &self.frames_sent),
            ("app_instance_idr_frames_total", "IDR frames.", Counter, &self.idr_frames),
            ("app_instance_frames_late_total", "Frame slots skipped, loop behind.", Counter, &self.frames_late),
            ("app_instance_rtp_packets_sent_total", "RTP datagrams sent.", Counter, &self.packets_sent),
            ("app_instance_rtp_bytes_sent_total", "RTP octets sent (UDP payload).", Counter, &self.bytes_sent),
            ("app_instance_send_errors_total", "Datagrams the socket refused.", Counter, &self.send_errors),
            ("app_instance_encode_errors_total", "Encoder errors.", Counter, &self.encode_errors),
            ("app_instance_render_ns_total", "Time spent rendering, ns.", Counter, &self.render_ns_total),
            ("app_instance_encode_ns_total", "Time spent encoding, ns.", Counter, &self.encode_ns_total),
            ("app_instance_encode_ns_last", "Last frame's encode time, ns.", Gauge, &self.encode_ns_last),
            ("app_instance_inputs_received_total", "Valid input datagrams.", Counter, &self.inputs_received),
            ("app_instance_inputs_forwarded_total", "Inputs forwarded as writes.", Counter, &self.inputs_forwarded),
            ("app_instance_inputs_dropped_secondary_total", "Inputs dropped, session secondary.", Counter, &self.inputs_dropped_secondary),
            ("app_instance_inputs_malformed_total", "Malformed input datagrams.", Counter, &self.inputs_malformed),
            ("app_instance_inputs_foreign_total", "Input datagrams from another address than the UE's, dropped.", Counter, &self.inputs_foreign),
            ("app_instance_forward_errors_total", "Writes that failed to send.", Counter, &self.forward_errors),
            ("app_instance_last_input_forwarded", "Seq of the last forwarded input.", Gauge, &self.last_input_forwarded),
            ("app_instance_writes_dropped_by_server_total", "Writes the server dropped.", Counter, &self.writes_dropped_by_server),
            ("app_instance_deltas_total", "Deltas applied.", Counter, &self.deltas),
            ("app_instance_delta_errors_total", "Deltas that did not apply.", Counter, &self.delta_errors),
            ("app_instance_world_tick", "The world copy's tick.", Gauge, &self.world_tick),
            ("app_instance_ready_unix_ns", "When the instance became ready, Unix ns.", Gauge, &self.ready_unix_ns),
            ("app_instance_first_frame_unix_ns", "When its first frame had been sent, Unix ns (0: not yet).", Gauge, &self.first_frame_unix_ns),
            ("app_instance_switches_total", "Switching signals sent.", Counter, &self.switches),
            ("app_instance_switches_by_input_total", "Switching signals sent because an input carried SWITCH.", Counter, &self.switches_by_input),
            ("app_instance_key_frame_requests_total", "Key frames requested by inputs (KEY_FRAME).", Counter, &self.key_frame_requests),
            ("app_instance_key_frame_requests_limited_total", "KEY_FRAME requests refused by the rate limit.", Counter, &self.key_frame_requests_limited),
            ("app_instance_h264_simd_flags", "openh264's SIMD flags in this build (0: built without its assembly).", Gauge, &self.h264_simd_flags),
        ]
    }

    /// Prometheus text exposition (through `ctlhttp::metrics`): the
    /// values are read now, the text is written from the copy.
    pub fn prometheus(&self, instance: &str) -> String {
        let instance = instance.replace(['"', '\\', '\n'], "_");
        let series: Vec<_> = self
            .series()
            .into_iter()
            .map(|(name, help, kind, v)| (name, help, kind, v.load(Ordering::Relaxed)))
            .collect();
        let primary = self.primary.load(Ordering::Relaxed) == 1;
        ctlhttp::metrics::encode_fn(move |f| {
            let l = ("instance", instance.as_str());
            for (name, help, kind, v) in &series {
                f.single(*kind, name, help, [l], *v)?;
            }
            f.gauge(
                "app_instance_role",
                "The session's role (1 for the current one).",
                [
                    ([l, ("role", "primary")], u32::from(primary)),
                    ([l, ("role", "secondary")], u32::from(!primary)),
                ],
            )
        })
    }

    pub(super) fn set_role(&self, r: Role) {
        self.primary
            .store(u8::from(r == Role::Primary), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_once_with_help_type_and_labels() {
        let m = Metrics::default();
        for (i, (_, _, _, v)) in m.series().iter().enumerate() {
            v.store(1000 + i as u64, Ordering::Relaxed);
        }
        m.set_role(Role::Primary);
        let text = m.prometheus("e\"1");
        let names: Vec<&str> = m.series().iter().map(|s| s.0).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a series listed twice");
        for (i, name) in names.iter().enumerate() {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(
                text.contains(&format!("\n{name}{{instance=\"e_1\"}} {}\n", 1000 + i)),
                "{name}: {text}"
            );
        }
        assert!(text.contains(
            "# TYPE app_instance_encode_ns_last gauge\napp_instance_encode_ns_last{instance=\"e_1\"} 1011\n"
        ));
        assert!(text.ends_with(
            "app_instance_role{instance=\"e_1\",role=\"primary\"} 1\napp_instance_role{instance=\"e_1\",role=\"secondary\"} 0\n"
        ));
    }
}
