//! The progress of `testbed migrate` on stderr: a bar of the migrations
//! done (indicatif) when stderr is a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Observer;

/// Progress on stderr.
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
    total: u64,
}

impl Bar {
    /// A bar that appears when the migrations begin.
    pub fn new() -> Bar {
        Bar::default()
    }
}

impl Observer for Bar {
    fn line(&mut self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    fn begin(&mut self, total: u64) {
        self.total = total;
        if !std::io::stderr().is_terminal() {
            return;
        }
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} migrations  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        b.set_style(style);
        b.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(b);
    }

    fn step(&mut self, done: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(done);
                b.println(format!("[{done}/{}] {msg}", self.total));
            }
            None => eprintln!("[{done}/{}] {msg}", self.total),
        }
    }

    fn status(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => eprintln!("  {msg}"),
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
