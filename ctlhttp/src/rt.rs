//! Real-time priority for the threads a video frame crosses on its way to
//! the screen: the instance's frame loop (draw, encode, send), the UPF's
//! and the gNB's packet threads, the UE's stream decoders and its display.
//!
//! On a host shared by every part of the testbed (two cores here for the
//! UE, two edges and the core) a frame waits at each hop for whatever else
//! runs. `testbed migrate --count 30 --countdown 1s`, two alternated runs
//! each on a quiet machine (CPUs 57-61% busy): render -> display p50 42-44
//! ms with the normal scheduler, 24-26 ms with these threads at SCHED_FIFO
//! 1; input -> display p50 83-92 -> 44-51 ms; the display stall goal met
//! at 23 and 23 of 30 switches -> 26 and 26. Each of these threads blocks
//! between packets or frames, so what it takes is bounded by the traffic;
//! the kernel's real-time throttling (`/proc/sys/kernel/sched_rt_runtime_us`)
//! still keeps 5% of each CPU for the rest.
//!
//! `MINEDGE_REALTIME=0` in a daemon's environment keeps every thread under
//! the normal scheduler (the environment passes from `testbed` to every
//! daemon and from an edge agent to its instances).

/// The environment variable that turns real-time priority off (`0`).
pub const ENV: &str = "MINEDGE_REALTIME";

/// Priority of the threads that carry frames and packets.
pub const MEDIA_PRIORITY: libc::c_int = 1;

/// Niceness of those threads when real-time priority is refused (no
/// CAP_SYS_NICE) or turned off.
pub const MEDIA_NICE: libc::c_int = -5;

/// What the calling thread got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// SCHED_FIFO at this priority.
    Realtime(libc::c_int),
    /// The normal scheduler at this niceness.
    Nice(libc::c_int),
    /// Unchanged: turned off, or both refused.
    Unchanged,
}

/// Whether [`ENV`] allows real-time priority (anything but `0`, `false`,
/// `off` or `no`).
pub fn enabled() -> bool {
    std::env::var(ENV).map_or(true, |v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        )
    })
}

/// Raises the calling thread to SCHED_FIFO `priority`, or, when that is
/// refused or [`ENV`] turns it off, to niceness `nice`; makes its timers
/// precise (1 us slack instead of 50) either way. Logs what it got when it
/// is not what was asked, naming the thread `what`.
pub fn raise(what: &str, priority: libc::c_int, nice: libc::c_int) -> Priority {
    // SAFETY: a plain prctl on the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
    let rt = if enabled() {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: a plain syscall on the calling thread; `param` outlives
        // the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
            return Priority::Realtime(priority);
        }
        std::io::Error::last_os_error().to_string()
    } else {
        format!("{ENV}=0")
    };
    // SAFETY: as above; gettid names the calling thread.
    let niced = unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0
    };
    if niced {
        tracing::info!(thread = what, realtime = %rt, nice, "real-time priority not set: nice instead");
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

/// [`raise`] at [`MEDIA_PRIORITY`] or [`MEDIA_NICE`]: for a thread on a
/// frame's or a packet's way.
pub fn media_thread(what: &str) -> Priority {
    raise(what, MEDIA_PRIORITY, MEDIA_NICE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn a_thread_is_raised_and_the_environment_turns_it_off() {
        // Each case on a thread of its own: the test harness's thread keeps
        // its priority.
        let got = std::thread::spawn(|| (media_thread("test"), policy()))
            .join()
            .expect("thread");
        // SAFETY: reads the process's effective user id.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(got, (Priority::Realtime(MEDIA_PRIORITY), libc::SCHED_FIFO));
        } else {
            assert_ne!(got.0, Priority::Realtime(MEDIA_PRIORITY));
        }
        for (v, on) in [
            ("0", false),
            ("off", false),
            (" FALSE ", false),
            ("1", true),
            ("", true),
        ] {
            std::env::set_var(ENV, v);
            assert_eq!(enabled(), on, "{ENV}={v:?}");
        }
        std::env::set_var(ENV, "0");
        let got = std::thread::spawn(|| (media_thread("test"), policy()))
            .join()
            .expect("thread");
        std::env::remove_var(ENV);
        assert_eq!(got.1, libc::SCHED_OTHER);
        assert_ne!(got.0, Priority::Realtime(MEDIA_PRIORITY));
    }
}
