//! Playing: streaming clients, the display sink and the input bot together
//! for a while, then the report (`ue play`; `testbed play` drives the same
//! through [`Player`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::bot::{BotConfig, InputBot, InputTarget, DEFAULT_RATE};
use super::buffer::{one_frame_buffer, Wake};
use super::client::StreamClient;
use super::display::{Chief, DisplayHandle, DisplaySink};
use super::report::PlayReport;
use super::StreamError;

/// A stream to receive: its name and the local address to bind
/// (`NAME=ADDR:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Name (shown in records and the report).
    pub name: String,
    /// Local address (the session's address) and port.
    pub bind: SocketAddr,
}

impl FromStr for StreamSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected NAME=ADDR:PORT"))?;
        if name.is_empty() {
            return Err(format!("`{s}`: empty stream name"));
        }
        let bind = addr
            .parse()
            .map_err(|e| format!("`{addr}`: {e} (expected ADDR:PORT)"))?;
        Ok(StreamSpec {
            name: name.into(),
            bind,
        })
    }
}

/// A local address to bind: `ADDR` (any port) or `ADDR:PORT`.
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|e| format!("`{s}`: {e} (expected ADDR or ADDR:PORT)"))
}

/// A duration: `10s`, `500ms`, `2m`, or seconds as a plain number.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 10s, 500ms, 2m"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("`{s}`: negative or not finite"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// Settings of a play run.
#[derive(Debug, Clone)]
pub struct PlayConfig {
    /// The streams; the first is the chief pilot.
    pub streams: Vec<StreamSpec>,
    /// The chief pilot's input address (no inputs without it).
    pub input_to: Option<SocketAddr>,
    /// Local address the inputs go from.
    pub input_from: SocketAddr,
    /// Inputs per second.
    pub input_rate: f64,
    /// Seed of the bot's policy.
    pub seed: u64,
    /// How long to play.
    pub duration: Duration,
    /// The inputs stop this long before the end, so that the last ones can
    /// still be displayed.
    pub drain: Duration,
    /// Write the displayed video here (Y4M).
    pub video: Option<PathBuf>,
    /// Frame rate announced in the Y4M header.
    pub fps: u32,
}

impl Default for PlayConfig {
    fn default() -> Self {
        PlayConfig {
            streams: Vec::new(),
            input_to: None,
            input_from: SocketAddr::from(([0, 0, 0, 0], 0)),
            input_rate: DEFAULT_RATE,
            seed: 1,
            duration: Duration::from_secs(10),
            drain: Duration::from_millis(500),
            video: None,
            fps: 60,
        }
    }
}

/// A play run in progress.
#[derive(Debug)]
pub struct Player {
    started: Instant,
    clients: Vec<StreamClient>,
    display: DisplayHandle,
    chief: Chief,
    bot: Option<InputBot>,
    video: bool,
}

impl Player {
    /// Starts the streaming clients, the display sink and the bot.
    pub fn start(cfg: &PlayConfig) -> Result<Player, StreamError> {
        let Some(first) = cfg.streams.first() else {
            return Err(StreamError::Config("no stream to play".into()));
        };
        for (i, s) in cfg.streams.iter().enumerate() {
            if cfg.streams[..i].iter().any(|o| o.name == s.name) {
                return Err(StreamError::Config(format!(
                    "stream name `{}` given twice",
                    s.name
                )));
            }
        }
        let wake = Wake::new();
        let mut clients = Vec::new();
        let mut readers = Vec::new();
        for s in &cfg.streams {
            let (w, r) = one_frame_buffer(s.name.as_str(), Some(wake.clone()));
            clients.push(StreamClient::spawn(s.bind, w)?);
            readers.push(r);
        }
        let chief = Chief::new(first.name.clone());
        let mut sink = DisplaySink::new(readers, chief.clone(), Some(wake));
        if let Some(v) = &cfg.video {
            sink = sink.with_video(v, cfg.fps)?;
        }
        let display = sink.spawn()?;
        let bot = match cfg.input_to {
            Some(to) => Some(InputBot::spawn(BotConfig {
                bind: cfg.input_from,
                to,
                rate: cfg.input_rate,
                seed: cfg.seed,
                initial: None,
            })?),
            None => None,
        };
        Ok(Player {
            started: Instant::now(),
            clients,
            display,
            chief,
            bot,
            video: cfg.video.is_some(),
        })
    }

    /// The shared chief-pilot setting (which stream is displayed).
    pub fn chief(&self) -> &Chief {
        &self.chief
    }

    /// Where the inputs go, if the bot runs.
    pub fn input_target(&self) -> Option<&InputTarget> {
        self.bot.as_ref().map(|b| b.target())
    }

    /// The streaming clients.
    pub fn clients(&self) -> &[StreamClient] {
        &self.clients
    }

    /// Stops the bot, waits `drain`, stops the rest; the report.
    pub fn finish(mut self, drain: Duration) -> Result<PlayReport, StreamError> {
        let bot = match self.bot.take() {
            Some(b) => Some(b.stop()?),
            None => None,
        };
        std::thread::sleep(drain);
        let duration = self.started.elapsed().as_secs_f64();
        let shown = self.display.stop()?;
        let mut stats = Vec::new();
        for c in self.clients {
            stats.push(c.stop()?);
        }
        let (sent, errs) = bot.map(|b| (b.sent, b.send_errors)).unwrap_or_default();
        Ok(PlayReport::compute(
            duration,
            &shown.records,
            &sent,
            errs,
            &stats,
            self.video.then_some(shown.video_frames),
        ))
    }
}

/// Plays for `cfg.duration` and reports.
pub fn run(cfg: &PlayConfig) -> Result<PlayReport, StreamError> {
    let drain = cfg.drain.min(cfg.duration / 2);
    let p = Player::start(cfg)?;
    std::thread::sleep(cfg.duration.saturating_sub(drain));
    p.finish(drain)
}
