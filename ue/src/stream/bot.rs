//! The input bot: plays the game by sending numbered inputs
//! ([`wire::input::Input`], seq from 1, `sent_ns` = CLOCK_REALTIME) at a
//! steady rate to the current chief pilot's input address.
//!
//! The target is a shared setting ([`InputTarget`]) so that a migration
//! can steer the input to the destination without restarting the bot. The
//! headings come from a seeded [`Policy`] that never reverses into the
//! snake's own neck. Every input sent is recorded ([`SentInput`]); an
//! input whose send fails is not recorded and its sequence number is used
//! by the next attempt, so the recorded seqs are 1, 2, 3, ... with no gap.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use wire::input::{Dir, Flags, Input};

use super::{realtime_ns, StreamError};

/// Default input rate, inputs per second.
pub const DEFAULT_RATE: f64 = 10.0;

/// The reverse of a heading.
pub fn reverse(d: Dir) -> Dir {
    d.opposite()
}

/// The seeded heading policy: each step goes straight, turns left or turns
/// right with equal odds; never the reverse of the current heading. With
/// no known heading the first step is any of the four.
#[derive(Debug, Clone)]
pub struct Policy {
    state: u64,
    heading: Option<Dir>,
}

impl Policy {
    /// A policy from `seed`, the snake heading `initial` (if known).
    pub fn new(seed: u64, initial: Option<Dir>) -> Policy {
        Policy {
            state: seed,
            heading: initial,
        }
    }

    /// The current heading (the last one chosen).
    pub fn heading(&self) -> Option<Dir> {
        self.heading
    }

    fn rand(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next heading.
    pub fn next_dir(&mut self) -> Dir {
        let d = match self.heading {
            None => Dir::ALL[(self.rand() % 4) as usize],
            Some(h) => {
                let options: Vec<Dir> = Dir::ALL.into_iter().filter(|&d| d != reverse(h)).collect();
                options[(self.rand() % options.len() as u64) as usize]
            }
        };
        self.heading = Some(d);
        d
    }
}

/// The input bot's settings.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Local address to send from (the UE session's address; port 0 picks
    /// one).
    pub bind: SocketAddr,
    /// The chief pilot's input address at the start.
    pub to: SocketAddr,
    /// Inputs per second.
    pub rate: f64,
    /// Seed of the heading policy.
    pub seed: u64,
    /// The snake's heading at the start, if known.
    pub initial: Option<Dir>,
}

/// One input sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentInput {
    /// Its sequence number.
    pub seq: u64,
    /// When it was sent (CLOCK_REALTIME ns, as in the datagram).
    pub sent_ns: u64,
    /// Heading (wire code: 0 up, 1 down, 2 left, 3 right).
    pub dir: u8,
    /// Where it went.
    pub to: SocketAddr,
}

/// Where the input goes: the chief pilot's input address, and the socket
/// it goes from (the session's address). Clones share it.
///
/// [`InputTarget::switch_to`] is CSM's input steering at a stream switch:
/// the next datagram goes to the destination, from the destination
/// session's socket, carrying the SWITCH flag, and the last `resend` inputs
/// go again first (the cloud dedupes them), so that no input is lost
/// whichever instance was primary when it arrived.
#[derive(Debug, Clone)]
pub struct InputTarget(Arc<Mutex<Route>>);

/// The current route of the inputs.
#[derive(Debug, Clone)]
struct Route {
    to: SocketAddr,
    /// `None`: the bot's own socket.
    from: Option<Arc<UdpSocket>>,
    /// Bumped by every switch.
    generation: u64,
    /// Inputs to send again at the switch.
    resend: usize,
}

impl InputTarget {
    /// A target.
    pub fn new(addr: SocketAddr) -> InputTarget {
        InputTarget(Arc::new(Mutex::new(Route {
            to: addr,
            from: None,
            generation: 0,
            resend: 0,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Route> {
        // A poisoned lock still holds a valid route.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Steers the next inputs to `addr` (same socket, no signal).
    pub fn set(&self, addr: SocketAddr) {
        self.lock().to = addr;
    }

    /// Switches the input to a new chief pilot: `to`, sent from `from`;
    /// the first datagram carries SWITCH and the last `resend` inputs are
    /// sent again. Returns the switch's number, by which
    /// [`InputBot::resent_at`] tells how many were resent.
    pub fn switch_to(&self, to: SocketAddr, from: Arc<UdpSocket>, resend: usize) -> u64 {
        let mut r = self.lock();
        r.to = to;
        r.from = Some(from);
        r.generation += 1;
        r.resend = resend;
        r.generation
    }

    /// The current target.
    pub fn get(&self) -> SocketAddr {
        self.lock().to
    }

    fn route(&self) -> Route {
        self.lock().clone()
    }
}

/// The running bot.
#[derive(Debug)]
pub struct InputBot {
    local: SocketAddr,
    target: InputTarget,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<Vec<SentInput>>>,
}

/// The bot's counters, read while it runs.
#[derive(Debug, Default)]
struct Counters {
    /// Inputs sent (each seq once).
    sent: AtomicU64,
    /// Sends that failed.
    errors: AtomicU64,
    /// Inputs sent again at switches.
    resent: AtomicU64,
    /// Per switch taken up: (its number, datagrams resent).
    resent_at: Mutex<Vec<(u64, u64)>>,
}

impl Counters {
    fn resent_at(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64)>> {
        // A poisoned lock still holds valid pairs.
        self.resent_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a bot run leaves.
#[derive(Debug, Clone, Default)]
pub struct BotOutcome {
    /// Every input sent, by seq.
    pub sent: Vec<SentInput>,
    /// Sends that failed (and were retried with the same seq).
    pub send_errors: u64,
    /// Inputs sent again at switches.
    pub resent: u64,
    /// Per switch taken up: (its number from [`InputTarget::switch_to`],
    /// datagrams resent).
    pub resent_at: Vec<(u64, u64)>,
}

impl InputBot {
    /// Binds `cfg.bind` and starts sending.
    pub fn spawn(cfg: BotConfig) -> Result<InputBot, StreamError> {
        if !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
            return Err(StreamError::Config(format!(
                "input rate {} is not a positive number",
                cfg.rate
            )));
        }
        let sock = UdpSocket::bind(cfg.bind).map_err(|source| StreamError::Bind {
            addr: cfg.bind,
            source,
        })?;
        let local = sock.local_addr().map_err(StreamError::Io)?;
        let target = InputTarget::new(cfg.to);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = {
            let (target, stop, errs) = (target.clone(), stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("input-bot".into())
                .spawn(move || play(sock, cfg, &target, &stop, &errs))
                .map_err(StreamError::Io)?
        };
        Ok(InputBot {
            local,
            target,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The address it sends from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Inputs sent again at switches so far.
    pub fn resent(&self) -> u64 {
        self.counters.resent.load(Ordering::Relaxed)
    }

    /// Inputs sent so far (each seq once, resends not counted).
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    /// Datagrams resent at the switch numbered `switch` (as
    /// [`InputTarget::switch_to`] returned it); `None` until the bot took
    /// that switch up (its next send), or if a later switch came first.
    pub fn resent_at(&self, switch: u64) -> Option<u64> {
        let v = self.counters.resent_at();
        v.iter().find(|(g, _)| *g == switch).map(|(_, n)| *n)
    }

    /// The shared target (change it to steer the input).
    pub fn target(&self) -> &InputTarget {
        &self.target
    }

    /// Stops sending; returns the inputs sent.
    pub fn stop(mut self) -> Result<BotOutcome, StreamError> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| StreamError::Panicked("input-bot".into()))?,
            None => Vec::new(),
        };
        Ok(BotOutcome {
            sent,
            send_errors: self.counters.errors.load(Ordering::Relaxed),
            resent: self.counters.resent.load(Ordering::Relaxed),
            resent_at: std::mem::take(&mut *self.counters.resent_at()),
        })
    }
}

impl Drop for InputBot {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn play(
    sock: UdpSocket,
    cfg: BotConfig,
    target: &InputTarget,
    stop: &AtomicBool,
    counters: &Counters,
) -> Vec<SentInput> {
    let period = Duration::from_secs_f64(1.0 / cfg.rate);
    let mut policy = Policy::new(cfg.seed, cfg.initial);
    let mut sent: Vec<SentInput> = Vec::new();
    let mut seq = 1u64;
    let mut dir = policy.next_dir();
    let start = Instant::now();
    let mut k = 0u32;
    let mut generation = 0u64;
    // The switching signal goes with the first datagram that leaves after
    // a switch.
    let mut signal = false;
    let flags = |signal: bool| if signal { Flags::SWITCH } else { Flags::NONE };
    while !stop.load(Ordering::Relaxed) {
        let route = target.route();
        let out = route.from.as_deref().unwrap_or(&sock);
        let to = route.to;
        if route.generation != generation {
            generation = route.generation;
            signal = true;
            // The last inputs again (the cloud dedupes them).
            let first = sent.len().saturating_sub(route.resend);
            let mut n = 0u64;
            for s in &sent[first..] {
                let mut again =
                    Input::new(Dir::from_code(s.dir).unwrap_or(Dir::Up), s.seq, s.sent_ns);
                again.flags = flags(signal);
                if out.send_to(&again.emit(), to).is_ok() {
                    signal = false;
                    n += 1;
                }
            }
            counters.resent.fetch_add(n, Ordering::Relaxed);
            counters.resent_at().push((generation, n));
        }
        let mut input = Input::new(dir, seq, realtime_ns());
        input.flags = flags(signal);
        match out.send_to(&input.emit(), to) {
            Ok(_) => {
                signal = false;
                counters.sent.fetch_add(1, Ordering::Relaxed);
                sent.push(SentInput {
                    seq,
                    sent_ns: input.sent_ns,
                    dir: dir.code(),
                    to,
                });
                seq += 1;
                dir = policy.next_dir();
            }
            Err(e) => {
                let n = counters.errors.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(%to, "input {seq}: {e} ({} failures so far)", n + 1);
                }
            }
        }
        // Absolute schedule: no drift; sleep in short steps to see `stop`.
        k += 1;
        let due = start + period * k;
        loop {
            let now = Instant::now();
            if now >= due || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
        }
    }
    sent
}
