//! What the host gives a run: its CPUs, whether its kernel preempts a
//! thread that is in a kernel path, and how much CPU time the run's
//! processes had (busy, and stolen by a hypervisor).
//!
//! The UE's display is a SCHED_FIFO thread: on a kernel built with
//! preemption (`full`, `rt`) it runs as soon as it wakes; on a `none` or
//! `voluntary` kernel it waits until whatever runs on its CPU leaves the
//! kernel or yields, which a thread in a long kernel path (a socket send
//! whose softirq carries the packet through the namespaces, a page-fault
//! storm) may take milliseconds to do. A hypervisor's steal stops every
//! thread of the vCPU alike. Both show as display stalls that the project
//! cannot remove, so a run says which the host had (DESIGN.md section 7:
//! say what the kernel lacks).

use std::io::Read;

use serde::Serialize;

/// The kernel's preemption model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preemption {
    /// A thread in the kernel runs until it leaves or blocks.
    None,
    /// As `none`, plus preemption points in long kernel loops.
    Voluntary,
    /// Any kernel path outside a critical section can be preempted.
    Full,
    /// As `full` for a real-time thread; a normal one waits for the tick.
    Lazy,
    /// PREEMPT_RT.
    Rt,
}

impl Preemption {
    fn parse(s: &str) -> Option<Preemption> {
        match s.trim() {
            "none" => Some(Preemption::None),
            "voluntary" => Some(Preemption::Voluntary),
            "full" => Some(Preemption::Full),
            "lazy" => Some(Preemption::Lazy),
            "rt" => Some(Preemption::Rt),
            _ => None,
        }
    }

    /// Whether a woken real-time thread may wait for another thread's
    /// kernel path.
    pub fn holds_off_realtime(self) -> bool {
        matches!(self, Preemption::None | Preemption::Voluntary)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preemption::None => "none",
            Preemption::Voluntary => "voluntary",
            Preemption::Full => "full",
            Preemption::Lazy => "lazy",
            Preemption::Rt => "rt",
        }
    }
}

/// The preemption model in force, and where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PreemptionFound {
    pub model: Preemption,
    pub source: &'static str,
}

/// The active model from `/sys/kernel/debug/sched/preempt`'s text: the
/// one in parentheses among the choices (`none (voluntary) full`).
fn from_debugfs(text: &str) -> Option<Preemption> {
    let open = text.find('(')?;
    let close = open + text[open..].find(')')?;
    Preemption::parse(&text[open + 1..close])
}

/// `preempt=` on the kernel command line (a dynamic kernel's boot choice).
fn from_cmdline(text: &str) -> Option<Preemption> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("preempt="))
        .and_then(Preemption::parse)
}

/// The model the kernel was built with (a dynamic kernel's default):
/// exactly one of the four choices is `=y` in its configuration.
fn from_config(text: &str) -> Option<Preemption> {
    text.lines().find_map(|l| match l.trim() {
        "CONFIG_PREEMPT_RT=y" => Some(Preemption::Rt),
        "CONFIG_PREEMPT=y" => Some(Preemption::Full),
        "CONFIG_PREEMPT_VOLUNTARY=y" => Some(Preemption::Voluntary),
        "CONFIG_PREEMPT_NONE=y" => Some(Preemption::None),
        _ => None,
    })
}

fn gunzip(path: &str) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Whether a build configuration makes the preemption model a boot-time
/// choice (`preempt=` on the kernel command line).
fn dynamic_in_config(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "CONFIG_PREEMPT_DYNAMIC=y")
}

/// This kernel's build configurations with where each was read, in the
/// order they are trusted: `/proc/config.gz`, `/boot/config-<release>`;
/// each read only when the one before did not do.
fn kernel_configs() -> impl Iterator<Item = (String, &'static str)> {
    let proc = || gunzip("/proc/config.gz").map(|t| (t, "/proc/config.gz"));
    let boot = || {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let t = std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
        Some((t, "/boot/config-<release>"))
    };
    std::iter::once_with(proc)
        .chain(std::iter::once_with(boot))
        .flatten()
}

/// Whether this kernel chooses its preemption model at boot
/// (`CONFIG_PREEMPT_DYNAMIC`); false when its configuration is unreadable.
pub fn preemption_is_dynamic() -> bool {
    kernel_configs()
        .next()
        .is_some_and(|(t, _)| dynamic_in_config(&t))
}

/// This kernel's preemption model, from the first source that tells:
/// debugfs (the model now), the command line, `uname -v` for RT, then the
/// build configuration (`/proc/config.gz`, `/boot/config-<release>`).
/// None when no source is readable.
pub fn preemption() -> Option<PreemptionFound> {
    let found = |model, source| Some(PreemptionFound { model, source });
    let read = |p: &str| std::fs::read_to_string(p).ok();
    if let Some(m) = read("/sys/kernel/debug/sched/preempt").and_then(|t| from_debugfs(&t)) {
        return found(m, "/sys/kernel/debug/sched/preempt");
    }
    if let Some(m) = read("/proc/cmdline").and_then(|t| from_cmdline(&t)) {
        return found(m, "/proc/cmdline");
    }
    if read("/proc/sys/kernel/version").is_some_and(|v| v.contains("PREEMPT_RT")) {
        return found(Preemption::Rt, "/proc/sys/kernel/version");
    }
    kernel_configs().find_map(|(t, source)| found(from_config(&t)?, source))
}

/// The host's CPU time so far (`/proc/stat`'s first line, in USER_HZ
/// ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Every column summed (guest time is inside user and nice already).
    pub total: u64,
    /// Idle and iowait.
    pub idle: u64,
    /// Time the hypervisor ran something else while a vCPU wanted to run.
    pub steal: u64,
}

impl CpuTimes {
    /// From `/proc/stat`'s text.
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        if v.len() < 4 {
            return None;
        }
        // user nice system idle iowait irq softirq steal [guest guest_nice]
        let col = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(CpuTimes {
            total: v.iter().take(8).sum(),
            idle: col(3) + col(4),
            steal: col(7),
        })
    }

    /// Now.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// How the CPUs were used from `earlier` to `self`.
    pub fn since(&self, earlier: &CpuTimes) -> Option<CpuUse> {
        let total = self.total.checked_sub(earlier.total).filter(|&t| t > 0)? as f64;
        let idle = self.idle.saturating_sub(earlier.idle) as f64;
        let steal = self.steal.saturating_sub(earlier.steal) as f64;
        Some(CpuUse {
            busy_percent: 100.0 * (total - idle - steal).max(0.0) / total,
            steal_percent: 100.0 * steal / total,
        })
    }
}

/// Shares of all CPUs' time over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUse {
    /// Running anything (user, system, interrupts), %.
    pub busy_percent: f64,
    /// Stolen by the hypervisor, %.
    pub steal_percent: f64,
}

/// CPU use from which a run's timing figures measure contention (%).
pub const SATURATED_PERCENT: f64 = 95.0;

/// What a run report says of its host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub cpus: usize,
    /// Null: no source told.
    pub preemption: Option<Preemption>,
    pub preemption_source: Option<&'static str>,
    /// The model is chosen at boot (`preempt=none|voluntary|full`).
    pub preemption_dynamic: bool,
    /// Over the run; null when `/proc/stat` could not be read.
    pub cpu: Option<CpuUse>,
    /// openh264's SIMD flags in the build of the instances that encoded
    /// the run's video (as the first instance reported them to its agent);
    /// null: built without its assembly, encoding takes ~2.8x the CPU.
    pub h264_simd: Option<u32>,
}

impl HostReport {
    /// The host now, with the CPU use since `start` and the instances'
    /// openh264 SIMD flags.
    pub fn since(start: Option<CpuTimes>, h264_simd: Option<u32>) -> HostReport {
        let p = preemption();
        HostReport {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            preemption: p.map(|p| p.model),
            preemption_source: p.map(|p| p.source),
            preemption_dynamic: preemption_is_dynamic(),
            cpu: start.and_then(|s| CpuTimes::now()?.since(&s)),
            h264_simd,
        }
    }

    /// One line for a run's text report.
    pub fn line(&self) -> String {
        let preempt = match (self.preemption, self.preemption_source) {
            (Some(m), Some(src)) => format!("kernel preemption {} ({src})", m.as_str()),
            _ => "kernel preemption unknown (no debugfs, command line or configuration to read)"
                .into(),
        };
        let cpu = self.cpu.map_or("CPU use not read".into(), |c| {
            format!(
                "CPUs {:.0}% busy and {:.1}% stolen by the hypervisor during the run",
                c.busy_percent, c.steal_percent
            )
        });
        let mut s = format!("host: {} CPUs, {preempt}; {cpu}", self.cpus);
        if self
            .cpu
            .is_some_and(|c| c.busy_percent + c.steal_percent >= SATURATED_PERCENT)
        {
            s.push_str(
                "\n  (the CPUs were saturated: frames waited for CPU time, and the latency and stall figures show that wait)",
            );
        }
        if self.h264_simd.is_none() && media::h264::ARCH_HAS_ASM {
            s.push_str(&format!(
                "\n  (the instances' {})",
                media::h264::NO_SIMD_WARNING
            ));
        }
        if self.preemption.is_some_and(Preemption::holds_off_realtime) {
            s.push_str(
                "\n  (this kernel does not preempt a thread in a kernel path: the UE's real-time display thread can wait for one, which shows as display stalls",
            );
            if self.preemption_dynamic {
                s.push_str(
                    "; it is built with PREEMPT_DYNAMIC: booted with `preempt=full` it would",
                );
            }
            s.push(')');
        }
        s
    }
}

/// Cores, CPU, memory and kernel of this machine.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let mem = first_line_with("/proc/meminfo", "MemTotal").unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let preempt = preemption().map_or("?", |p| p.model.as_str());
    format!("{cores} cores ({cpu}), {mem} memory, Linux {kernel} (preemption {preempt})")
}

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_model_is_the_one_in_parentheses() {
        assert_eq!(
            from_debugfs("none (voluntary) full\n"),
            Some(Preemption::Voluntary)
        );
        assert_eq!(
            from_debugfs("(none) voluntary full lazy"),
            Some(Preemption::None)
        );
        assert_eq!(
            from_debugfs("none voluntary (full) lazy"),
            Some(Preemption::Full)
        );
        // Lazy preemption defers only normal threads: not an RT kernel.
        assert_eq!(
            from_debugfs("none voluntary full (lazy)"),
            Some(Preemption::Lazy)
        );
        assert!(!Preemption::Lazy.holds_off_realtime());
        assert_eq!(from_debugfs(""), None);
        assert_eq!(from_debugfs("(bogus)"), None);
    }

    #[test]
    fn the_command_line_and_the_build_configuration() {
        assert_eq!(
            from_cmdline("console=ttyS0 preempt=full quiet"),
            Some(Preemption::Full)
        );
        assert_eq!(from_cmdline("console=ttyS0 quiet"), None);
        // A dynamic kernel's configuration sets PREEMPT_BUILD and
        // PREEMPTION whatever its default is: only the choice counts.
        let dynamic_none = "CONFIG_PREEMPT_BUILD=y\nCONFIG_PREEMPT_NONE=y\n# CONFIG_PREEMPT_VOLUNTARY is not set\nCONFIG_PREEMPTION=y\nCONFIG_PREEMPT_DYNAMIC=y\n";
        assert_eq!(from_config(dynamic_none), Some(Preemption::None));
        assert_eq!(
            from_config("CONFIG_PREEMPT_BUILD=y\nCONFIG_PREEMPT=y\n"),
            Some(Preemption::Full)
        );
        assert_eq!(
            from_config("CONFIG_PREEMPT_VOLUNTARY=y"),
            Some(Preemption::Voluntary)
        );
        assert_eq!(from_config("CONFIG_PREEMPT_RT=y"), Some(Preemption::Rt));
        assert_eq!(from_config("CONFIG_HZ=250"), None);
        assert!(dynamic_in_config(dynamic_none));
        assert!(!dynamic_in_config(
            "CONFIG_PREEMPT=y\n# CONFIG_PREEMPT_DYNAMIC is not set\n"
        ));
    }

    #[test]
    fn cpu_use_between_two_reads_of_proc_stat() {
        let a = CpuTimes::parse("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").expect("a");
        // Guest time (the last two columns) is inside user already.
        let b = CpuTimes::parse("cpu  300 0 200 900 100 0 0 100 50 0\n").expect("b");
        let u = b.since(&a).expect("600 ticks");
        // 600 ticks: 200 idle, 100 stolen, 300 busy.
        assert_eq!(b.total - a.total, 600);
        assert!((u.steal_percent - 100.0 / 6.0).abs() < 1e-9, "{u:?}");
        assert!((u.busy_percent - 50.0).abs() < 1e-9, "{u:?}");
        assert_eq!(b.since(&b), None);
        assert_eq!(CpuTimes::parse("intr 1 2 3\n"), None);
        assert_eq!(CpuTimes::parse("cpu  1 x 3 4\n"), None);
    }

    #[test]
    fn this_host_reports_a_model_and_cpu_use() {
        // Every Linux host has /proc/stat; a model comes from one of the
        // sources on every kernel this project runs on (this one: its
        // config.gz).
        let start = CpuTimes::now().expect("/proc/stat");
        let r = HostReport::since(Some(start), Some(1));
        assert!(r.cpus >= 1);
        assert!(r.preemption.is_some(), "{r:?}");
        let line = r.line();
        assert!(line.starts_with("host: "), "{line}");
        assert!(!line.contains("nasm"), "{line}");
        // Instances without the codec's assembly are named in the report.
        let slow = HostReport::since(None, None).line();
        assert_eq!(
            slow.contains(media::h264::NO_SIMD_WARNING),
            media::h264::ARCH_HAS_ASM,
            "{slow}"
        );
    }
}
