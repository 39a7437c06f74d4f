//! Real-time priority for threads that must run on time: the UE's display
//! (always asked for), and, when [`ENV`] asks for it, the threads a video
//! frame crosses on its way there: the instance's frame loop (draw,
//! encode, send), the UPF's and the gNB's packet threads, the UE's stream
//! decoders.
//!
//! Why the frame's path is off by default: on a host shared by every part
//! of the testbed (two cores here for the UE, two edges and the core) it
//! shortens the display latency but slows what the normal scheduler runs
//! beside it, the migration's control plane and a new instance's start.
//! `testbed migrate --count 30 --countdown 1s`, two alternated runs each,
//! quiet machine: render -> display p50 42-44 ms without, 24-26 ms with;
//! the stall goal met at 23 and 23 of 30 switches without, 26 and 26 with;
//! migration time p99 71-76 ms without, 96-137 ms with. Over 100
//! migrations (one run each, `--count 100 --countdown 1s`): stall goal 73
//! of 100 without, 76 with; render -> display p50 45.8 -> 36.3 ms but p99
//! 62.3 -> 100.0 ms; full migrations p99 80 -> 396 ms (one of 628 ms); and
//! with the frame loop left out (packet threads and decoders only) 66 of
//! 100, p50 53.1 ms, full migrations p99 101 ms. A host with cores to
//! spare for the media path is where to turn it on.
//!
//! `MINEDGE_REALTIME=1` in the environment turns it on for every daemon
//! started from it (the environment passes from `testbed` to every daemon
//! and from an edge agent to its instances).

/// The environment variable that turns the media path's real-time
/// priority on (`1`).
pub const ENV: &str = "MINEDGE_REALTIME";

/// Priority of the threads that carry frames and packets, when on.
pub const MEDIA_PRIORITY: libc::c_int = 1;

/// Niceness of those threads when real-time priority is on but refused
/// (no CAP_SYS_NICE).
pub const MEDIA_NICE: libc::c_int = -5;

/// What the calling thread got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// SCHED_FIFO at this priority.
    Realtime(libc::c_int),
    /// The normal scheduler at this niceness.
    Nice(libc::c_int),
    /// Unchanged: not asked for, or both refused.
    Unchanged,
}

/// Whether [`ENV`] asks for the media path's real-time priority (`1`,
/// `true`, `on` or `yes`).
pub fn enabled() -> bool {
    std::env::var(ENV).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes"
        )
    })
}

/// Raises the calling thread to SCHED_FIFO `priority`, or, when that is
/// refused, to niceness `nice`; makes its timers precise (1 us slack
/// instead of 50) either way. Logs what it got when it is not what was
/// asked, naming the thread `what`.
pub fn raise(what: &str, priority: libc::c_int, nice: libc::c_int) -> Priority {
    // SAFETY: a plain prctl on the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a plain syscall on the calling thread; `param` outlives the
    // call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return Priority::Realtime(priority);
    }
    let rt = std::io::Error::last_os_error();
    // SAFETY: as above; gettid names the calling thread.
    let niced = unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0
    };
    if niced {
        tracing::info!(thread = what, realtime = %rt, nice, "real-time priority refused: nice instead");
        Priority::Nice(nice)
    } else {
        let err = std::io::Error::last_os_error();
        tracing::info!(
            thread = what,
            realtime = %rt,
            nice = %err,
            "priority not raised: frames may wait for other work on a busy machine"
        );
        Priority::Unchanged
    }
}

/// For a thread on a frame's or a packet's way: [`raise`] at
/// [`MEDIA_PRIORITY`] (else [`MEDIA_NICE`]) when [`ENV`] asks for it,
/// else nothing.
pub fn media_thread(what: &str) -> Priority {
    if enabled() {
        raise(what, MEDIA_PRIORITY, MEDIA_NICE)
    } else {
        Priority::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn media_threads_are_raised_only_when_the_environment_asks() {
        // Each case on a thread of its own: the test harness's thread keeps
        // its priority.
        let on_thread = || {
            std::thread::spawn(|| (media_thread("test"), policy()))
                .join()
                .expect("thread")
        };
        std::env::remove_var(ENV);
        assert_eq!(on_thread(), (Priority::Unchanged, libc::SCHED_OTHER));
        for (v, on) in [
            ("0", false),
            ("off", false),
            ("", false),
            ("1", true),
            (" ON ", true),
        ] {
            std::env::set_var(ENV, v);
            assert_eq!(enabled(), on, "{ENV}={v:?}");
        }
        std::env::set_var(ENV, "1");
        let got = on_thread();
        std::env::remove_var(ENV);
        // SAFETY: reads the process's effective user id.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(got, (Priority::Realtime(MEDIA_PRIORITY), libc::SCHED_FIFO));
        } else {
            assert_ne!(got.0, Priority::Realtime(MEDIA_PRIORITY));
        }
    }
}
