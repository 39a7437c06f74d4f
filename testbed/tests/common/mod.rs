//! Shared harness of the testbed tests: a unique prefix, state dir and run
//! folder per test, and a guard that takes everything down on drop (also
//! when the test panics).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// The stream of the shortened runs (`play`, `migrate`): small and at
/// half the default frame rate.
pub const SMALL_VIDEO: [&str; 6] = ["--width", "320", "--height", "180", "--fps", "30"];

/// The testbed binary under test.
pub fn testbed_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_testbed"))
}

/// Where the daemon binaries must be: next to the testbed binary. Panics
/// with the build command when one is missing.
pub fn require_daemon_bins() -> PathBuf {
    let dir = testbed_bin().parent().expect("bin dir").to_path_buf();
    let release = if cfg!(debug_assertions) {
        ""
    } else {
        " --release"
    };
    for b in ["upf", "smf", "gnb", "ue", "app"] {
        assert!(
            dir.join(b).is_file(),
            "daemon binary `{b}` is not built in {}: run `cargo build{release} --workspace --bins` first",
            dir.display()
        );
    }
    dir
}

/// One test's testbed: unique prefix, state dir and run folder.
pub struct Bed {
    pub prefix: String,
    pub root: PathBuf,
    pub state: PathBuf,
    pub run: PathBuf,
}

impl Bed {
    pub fn new(tag: &str) -> Bed {
        let n = N.fetch_add(1, Ordering::Relaxed);
        // Short: namespace names must stay readable; pid keeps parallel runs apart.
        let prefix = format!("tb{}{}{n}-", tag, std::process::id() % 10_000);
        let root = std::env::temp_dir().join(format!("testbed-{prefix}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("temp dir");
        Bed {
            state: root.join("state"),
            run: root.join("run"),
            prefix,
            root,
        }
    }

    /// A bed for a test that runs the daemons: checks for root and the
    /// daemon binaries first.
    pub fn with_daemons(tag: &str) -> Bed {
        testkit::require_root();
        require_daemon_bins();
        Bed::new(tag)
    }

    /// [`Bed::with_daemons`], then `testbed up` (asserted to succeed).
    pub fn up(tag: &str) -> Bed {
        let bed = Bed::with_daemons(tag);
        bed.ok(&bed.up_args());
        bed
    }

    /// `testbed --state-dir S ARGS...`.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(testbed_bin());
        c.arg("--state-dir").arg(&self.state).args(args);
        c.env("RUST_LOG", "warn");
        c
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd(args).output().expect("run testbed")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok<S: AsRef<OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "testbed {args:?} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `testbed up` with this test's prefix and run folder.
    pub fn up_args(&self) -> Vec<String> {
        self.job_args(&["up"])
    }

    /// `testbed COMMAND...` with this test's prefix and run folder.
    pub fn job_args(&self, command: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|a| a.to_string()).collect();
        args.extend([
            "--prefix".into(),
            self.prefix.clone(),
            "--run-dir".into(),
            self.run.display().to_string(),
        ]);
        args
    }

    /// `testbed COMMAND... --prefix P --run-dir R ARGS... --json`, asserted
    /// to succeed; its JSON report.
    pub fn job_json(&self, command: &[&str], args: &[&str]) -> serde_json::Value {
        let mut all = self.job_args(command);
        all.extend(args.iter().map(|a| a.to_string()));
        all.push("--json".into());
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("JSON report ({e}):\n{out}"))
    }

    /// Asserts that none of this test's namespaces is left (`who` took
    /// everything down).
    pub fn assert_nothing_left(&self, who: &str) {
        let left = self.namespaces();
        assert!(left.is_empty(), "{who} took everything down: {left:?}");
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix)
    }

    /// Namespaces with this test's prefix.
    pub fn namespaces(&self) -> Vec<String> {
        namespaces_with(&self.prefix)
    }

    pub fn state_json(&self) -> Option<serde_json::Value> {
        let p = self.state.join("testbed").join("paper.json");
        let t = std::fs::read_to_string(p).ok()?;
        serde_json::from_str(&t).ok()
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON")
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"]).output();
        // Belt and braces: whatever topo recorded under this state dir.
        let _ = topo::down_all(&topo::StateDir::new(&self.state));
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

pub fn proc_alive(pid: i64, start: u64) -> bool {
    topo::state::proc_start_time(pid as i32) == Some(start)
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
