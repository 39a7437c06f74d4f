//! An application instance on an edge (`app instance`): logs in to the
//! cloud logic server, keeps its copy of the world from the snapshot and
//! the deltas, renders it at a fixed frame rate, encodes it (H.264),
//! streams it as RTP to the UE, and turns the UE's input datagrams into
//! writes while its session is primary.
//!
//! The parts that do not touch the network are usable on their own:
//! [`Streamer`] turns worlds into RTP datagrams, [`WorldCopy`] follows the
//! sync messages, [`InputPort`] decides what an input datagram becomes
//! (a write, the switching signal, a key frame), [`Metrics`] counts and
//! renders Prometheus text.
//!
//! Threads of the running instance: the frame loop (main thread), the sync
//! receiver (world copy, role), the input receiver (UDP), and the
//! metrics/control HTTP server (`GET /metrics`, `POST /switch`, `POST /idr`).
//! SIGTERM/SIGINT end them all and log the session out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use media::h264::{is_idr, Encoder, EncoderConfig};
use media::rtp::{FrameMeta, Packetizer, CLOCK_RATE, DEFAULT_MTU, PAYLOAD_TYPE};
use media::{Frame, MediaError};
use tracing::{debug, error, info, warn};

use crate::game::World;
use crate::input::Input;
use crate::scene::Scene;
use crate::sync::{Role, ServerMsg, SyncClient, SyncError, SyncWriter};

mod input_port;
mod metrics;

pub use input_port::{
    InputOutcome, InputPort, InputReport, InputSink, KeyFrame, RateLimit, KEY_FRAME_MIN_GAP,
};
pub use metrics::Metrics;

/// Default UDP address the instance takes input on.
pub const DEFAULT_INPUT_LISTEN: &str = "0.0.0.0:7500";

/// Command-line arguments of `app instance`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstanceArgs {
    /// The cloud logic server's sync address (ADDR:PORT).
    #[arg(long)]
    pub cloud: String,
    /// The account (player) to log in as.
    #[arg(long)]
    pub account: String,
    /// The account's token.
    #[arg(long)]
    pub token: String,
    /// This instance's name (logs, the server's stats).
    #[arg(long, default_value = "instance")]
    pub name: String,
    /// Where to send the RTP stream (the UE's ADDR:PORT).
    #[arg(long)]
    pub ue: SocketAddr,
    /// Source address of the RTP stream (default: the routing decides).
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// UDP address to receive the UE's input datagrams on.
    #[arg(long, default_value = DEFAULT_INPUT_LISTEN)]
    pub input_listen: SocketAddr,
    /// Frame width.
    #[arg(long, default_value_t = 640)]
    pub width: u16,
    /// Frame height.
    #[arg(long, default_value_t = 360)]
    pub height: u16,
    /// Frames per second.
    #[arg(long, default_value_t = 60)]
    pub fps: u32,
    /// Encoder target bitrate, bit/s.
    #[arg(long, default_value_t = 2_000_000)]
    pub bitrate: u32,
    /// Largest RTP datagram (UDP payload), octets.
    #[arg(long, default_value_t = DEFAULT_MTU)]
    pub mtu: usize,
    /// Frames between IDR frames (0: only the first and on request).
    #[arg(long)]
    pub idr_interval: Option<u32>,
    /// Write the stream's SDP here at start.
    #[arg(long)]
    pub sdp: Option<PathBuf>,
    /// Serve `GET /metrics` and `POST /switch` on this TCP address.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// What to draw: snake, textured (motion and texture over the whole
    /// frame) or static.
    #[arg(long, default_value_t = Scene::Snake)]
    pub scene: Scene,
}

/// Errors of the instance.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Video error.
    #[error("video: {0}")]
    Media(#[from] MediaError),
    /// Sync protocol or logic server error.
    #[error("sync: {0}")]
    Sync(#[from] SyncError),
    /// Socket or file error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A delta that does not follow the world copy.
    #[error("world copy: {0}")]
    World(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstanceError {
    let what = what.into();
    move |source| InstanceError::Io { what, source }
}

/// Nanoseconds of CLOCK_REALTIME.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Settings of a [`Streamer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamerConfig {
    /// Encoder settings (frame size, fps, bitrate).
    pub encoder: EncoderConfig,
    /// RTP SSRC.
    pub ssrc: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// Largest RTP datagram.
    pub mtu: usize,
    /// The account whose `last_input` goes into [`FrameMeta::input_seq`].
    pub account: String,
    /// Frames between IDRs (`None`: the encoder's default, one second).
    pub idr_interval: Option<u32>,
    /// What is drawn.
    pub scene: Scene,
}

impl StreamerConfig {
    /// Defaults (640x360, 60 fps, 2 Mbit/s, PT 96, MTU 1200) for `account`.
    pub fn new(account: &str, ssrc: u32) -> StreamerConfig {
        StreamerConfig {
            encoder: EncoderConfig::default(),
            ssrc,
            payload_type: PAYLOAD_TYPE,
            mtu: DEFAULT_MTU,
            account: account.to_string(),
            idr_interval: None,
            scene: Scene::Snake,
        }
    }
}

/// What one frame became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameReport {
    /// The metadata on its packets.
    pub meta: FrameMeta,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Size of the access unit.
    pub encoded_bytes: usize,
    /// Datagrams produced.
    pub packets: usize,
    /// Octets in those datagrams.
    pub datagram_bytes: usize,
    /// An IDR frame.
    pub idr: bool,
    /// Time spent rendering.
    pub render_ns: u64,
    /// Time spent encoding.
    pub encode_ns: u64,
}

/// World -> frame -> H.264 -> RTP datagrams; no I/O.
pub struct Streamer {
    cfg: StreamerConfig,
    frame: Frame,
    encoder: Encoder,
    packetizer: Packetizer,
    frames: u64,
    /// Frame slots so far (streamed or skipped): the RTP clock.
    slots: u64,
    ts0: u32,
    au: Vec<u8>,
}

impl Streamer {
    /// A streamer.
    pub fn new(cfg: StreamerConfig) -> Result<Streamer, MediaError> {
        let mut encoder = Encoder::new(cfg.encoder)?;
        if let Some(n) = cfg.idr_interval {
            encoder.set_idr_interval(n);
        }
        let packetizer = Packetizer::new(cfg.ssrc, cfg.payload_type, cfg.mtu);
        Ok(Streamer {
            frame: Frame::new(cfg.encoder.width, cfg.encoder.height),
            encoder,
            packetizer,
            frames: 0,
            slots: 0,
            // A stream-specific start, as RFC 3550 asks (derived, not random,
            // so tests are reproducible).
            ts0: cfg.ssrc.rotate_left(7) ^ 0x5a5a_5a5a,
            au: Vec::new(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StreamerConfig {
        &self.cfg
    }

    /// The last rendered frame.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The last access unit.
    pub fn access_unit(&self) -> &[u8] {
        &self.au
    }

    /// Frames streamed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Skips `n` frame slots (the loop fell behind): the next frame's RTP
    /// timestamp is that of its slot, so the timestamps stay the sampling
    /// instants (RFC 3550 5.1) and a receiver can pace display by them.
    pub fn skip_slots(&mut self, n: u64) {
        self.slots = self.slots.wrapping_add(n);
    }

    /// Makes the next frame an IDR frame.
    pub fn force_idr(&mut self) {
        self.encoder.force_idr();
    }

    /// The RTP timestamp of frame slot `n` (90 kHz, from a stream specific
    /// origin).
    pub fn timestamp_of(&self, n: u64) -> u32 {
        let fps = u64::from(self.cfg.encoder.fps.max(1));
        // Wraps like RTP timestamps do.
        self.ts0
            .wrapping_add((n.wrapping_mul(u64::from(CLOCK_RATE)) / fps) as u32)
    }

    /// Renders `world`, encodes it and appends its RTP datagrams to `out`.
    pub fn stream(
        &mut self,
        world: &World,
        rendered_ns: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<FrameReport, MediaError> {
        let t0 = Instant::now();
        self.cfg.scene.draw(world, &mut self.frame);
        let t1 = Instant::now();
        self.au.clear();
        self.encoder.encode_into(&self.frame, &mut self.au)?;
        let t2 = Instant::now();
        let meta = FrameMeta {
            tick: world.tick,
            input_seq: world
                .snakes
                .get(&self.cfg.account)
                .map_or(0, |s| s.last_input),
            rendered_ns,
        };
        let timestamp = self.timestamp_of(self.slots);
        let before = out.len();
        self.packetizer.packetize(&self.au, timestamp, &meta, out);
        self.frames += 1;
        self.slots = self.slots.wrapping_add(1);
        Ok(FrameReport {
            meta,
            timestamp,
            encoded_bytes: self.au.len(),
            packets: out.len() - before,
            datagram_bytes: out[before..].iter().map(Vec::len).sum(),
            idr: is_idr(&self.au),
            render_ns: dur_ns(t1 - t0),
            encode_ns: dur_ns(t2 - t1),
        })
    }
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The instance's copy of the world, kept from the login snapshot and the
/// deltas.
#[derive(Debug, Clone)]
pub struct WorldCopy {
    world: Arc<World>,
    role: Role,
}

/// What a sync message did to a [`WorldCopy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// The world advanced to this tick.
    Ticked(u64),
    /// The session's role changed.
    Role(Role),
    /// A write of this input was dropped by the server.
    WriteDropped(u64, String),
    /// The server reported an error.
    ServerError(String),
    /// A message with no effect on the copy.
    Ignored,
}

impl WorldCopy {
    /// From the login reply.
    pub fn new(snapshot: World, role: Role) -> WorldCopy {
        WorldCopy {
            world: Arc::new(snapshot),
            role,
        }
    }

    /// The world now (cheap to clone, immutable).
    pub fn world(&self) -> Arc<World> {
        Arc::clone(&self.world)
    }

    /// The session's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Takes one server message. A delta that does not apply (out of
    /// order) is an error and leaves the copy as it was.
    pub fn on_msg(&mut self, msg: ServerMsg) -> Result<SyncEvent, InstanceError> {
        match msg {
            ServerMsg::Delta(d) => {
                let mut w = World::clone(&self.world);
                w.apply(&d)
                    .map_err(|e| InstanceError::World(e.to_string()))?;
                let t = w.tick;
                self.world = Arc::new(w);
                Ok(SyncEvent::Ticked(t))
            }
            ServerMsg::Role { role } => {
                self.role = role;
                Ok(SyncEvent::Role(role))
            }
            ServerMsg::LoginOk(ok) => {
                // A fresh snapshot: take it whole.
                self.world = Arc::new(ok.snapshot);
                self.role = ok.role;
                Ok(SyncEvent::Ticked(self.world.tick))
            }
            ServerMsg::WriteDropped { seq, reason } => Ok(SyncEvent::WriteDropped(seq, reason)),
            ServerMsg::Error { message } => Ok(SyncEvent::ServerError(message)),
        }
    }
}

/// Set by SIGTERM/SIGINT.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let h = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; `signal` with a valid function pointer is sound.
    unsafe {
        libc::signal(libc::SIGTERM, h as libc::sighandler_t);
        libc::signal(libc::SIGINT, h as libc::sighandler_t);
    }
}

/// State shared by the instance's threads.
struct Shared {
    name: String,
    stop: AtomicBool,
    world: Mutex<Arc<World>>,
    role: AtomicU8,
    idr_request: AtomicBool,
    metrics: Metrics,
    writer: SyncWriter,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || SIGNALLED.load(Ordering::Relaxed)
    }

    fn role(&self) -> Role {
        if self.role.load(Ordering::Relaxed) == 1 {
            Role::Primary
        } else {
            Role::Secondary
        }
    }

    fn set_role(&self, r: Role) {
        self.role
            .store(u8::from(r == Role::Primary), Ordering::Relaxed);
        self.metrics.set_role(r);
    }

    fn world(&self) -> Arc<World> {
        match self.world.lock() {
            Ok(w) => Arc::clone(&w),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn set_world(&self, w: Arc<World>) {
        match self.world.lock() {
            Ok(mut g) => *g = w,
            Err(p) => *p.into_inner() = w,
        }
    }
}

/// The effects of the input port and of the control endpoint (`POST
/// /switch`, `POST /idr` take the same paths as SWITCH and KEY_FRAME).
impl InputSink for Shared {
    fn write(&self, input: &Input) -> Result<(), SyncError> {
        self.writer.write(input)
    }

    fn switch(&self) -> Result<(), SyncError> {
        self.writer.switch()?;
        self.metrics.switches.fetch_add(1, Ordering::Relaxed);
        // The server handles this connection's messages in order, so the
        // writes that follow are the primary's: act as primary now rather
        // than drop inputs until its `Role` confirmation arrives. A later
        // `Role` (another session switching) still overrides this.
        self.set_role(Role::Primary);
        info!("switching signal sent");
        Ok(())
    }

    fn key_frame(&self) {
        self.idr_request.store(true, Ordering::Relaxed);
    }
}

/// Runs the subcommand.
pub fn main(args: InstanceArgs) -> ExitCode {
    ctlhttp::daemon::init_logs("info");
    install_signal_handlers();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "instance failed");
            eprintln!("app instance: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an instance until SIGTERM/SIGINT or until the logic server goes away.
pub fn run(args: InstanceArgs) -> Result<(), InstanceError> {
    let ecfg = EncoderConfig {
        width: args.width,
        height: args.height,
        fps: args.fps,
        bitrate_bps: args.bitrate,
    };
    // Fail on bad video settings before logging in.
    drop(Encoder::new(ecfg)?);

    if let Some(path) = &args.sdp {
        let sdp = media::sdp::h264(args.ue.ip(), args.ue.port(), PAYLOAD_TYPE);
        std::fs::write(path, sdp).map_err(io(format!("writing {}", path.display())))?;
    }
    let input = UdpSocket::bind(args.input_listen)
        .map_err(io(format!("binding input {}", args.input_listen)))?;
    input
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(io("input socket"))?;
    let bind_ip = args.bind.unwrap_or(if args.ue.is_ipv6() {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let rtp = UdpSocket::bind(SocketAddr::new(bind_ip, 0))
        .map_err(io(format!("binding RTP source {bind_ip}")))?;
    rtp.connect(args.ue)
        .map_err(io(format!("RTP destination {}", args.ue)))?;
    let http = match args.metrics {
        Some(a) => {
            let l = TcpListener::bind(a).map_err(io(format!("binding metrics {a}")))?;
            l.set_nonblocking(true).map_err(io("metrics socket"))?;
            Some(l)
        }
        None => None,
    };

    let (mut client, ok) =
        SyncClient::connect(args.cloud.as_str(), &args.account, &args.token, &args.name)?;
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(InstanceError::Sync)?;
    info!(session = ?ok.session, role = ?ok.role, tick = ok.snapshot.tick, ue = %args.ue,
        input = %input.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
        "logged in; streaming");
    let copy = WorldCopy::new(ok.snapshot, ok.role);
    let shared = Arc::new(Shared {
        name: args.name.clone(),
        stop: AtomicBool::new(false),
        world: Mutex::new(copy.world()),
        role: AtomicU8::new(0),
        idr_request: AtomicBool::new(false),
        metrics: Metrics::default(),
        writer: client.writer(),
    });
    shared.set_role(copy.role());
    shared
        .metrics
        .world_tick
        .store(copy.world().tick, Ordering::Relaxed);

    // Ready from here on: the agent reads this from the metrics endpoint.
    shared
        .metrics
        .ready_unix_ns
        .store(realtime_ns(), Ordering::Relaxed);
    let mut threads = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(io(format!("spawning {name}")))
    };
    let sh = Arc::clone(&shared);
    let sync_thread = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || sync_loop(&mut client, copy, &sh))
        .map_err(io("spawning sync"))?;
    let sh = Arc::clone(&shared);
    let ue_ip = args.ue.ip();
    threads.push(spawn(
        "input",
        Box::new(move || input_loop(&input, &sh, ue_ip)),
    )?);
    if let Some(l) = http {
        let sh = Arc::clone(&shared);
        threads.push(spawn("http", Box::new(move || http_loop(&l, &sh)))?);
    }

    let cfg = StreamerConfig {
        encoder: ecfg,
        ssrc: (realtime_ns() as u32) ^ std::process::id().rotate_left(16),
        payload_type: PAYLOAD_TYPE,
        mtu: args.mtu,
        account: args.account.clone(),
        idr_interval: args.idr_interval,
        scene: args.scene,
    };
    let result = frame_loop(cfg, &rtp, &shared);

    shared.stop.store(true, Ordering::SeqCst);
    if let Err(e) = shared.writer.logout() {
        debug!(error = %e, "logout");
    }
    for t in threads {
        let _ = t.join();
    }
    let sync_result = sync_thread.join();
    info!(
        frames = shared.metrics.frames_sent.load(Ordering::Relaxed),
        bytes = shared.metrics.bytes_sent.load(Ordering::Relaxed),
        "instance stopped"
    );
    result?;
    match sync_result {
        Ok(r) => r,
        Err(_) => Err(InstanceError::World("sync thread panicked".into())),
    }
}

fn frame_loop(cfg: StreamerConfig, rtp: &UdpSocket, sh: &Shared) -> Result<(), InstanceError> {
    let fps = cfg.encoder.fps.max(1);
    let period = Duration::from_nanos(1_000_000_000 / u64::from(fps));
    let mut streamer = Streamer::new(cfg)?;
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut next = Instant::now();
    let m = &sh.metrics;
    while !sh.stopping() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        next += period;
        // Fell more than a frame behind: drop the missed slots.
        let now = Instant::now();
        while next + period < now {
            next += period;
            streamer.skip_slots(1);
            m.frames_late.fetch_add(1, Ordering::Relaxed);
        }
        if sh.idr_request.swap(false, Ordering::Relaxed) {
            streamer.force_idr();
        }
        let world = sh.world();
        out.clear();
        let rep = match streamer.stream(&world, realtime_ns(), &mut out) {
            Ok(r) => r,
            Err(e) => {
                m.encode_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "encoding a frame failed");
                continue;
            }
        };
        m.frames_rendered.fetch_add(1, Ordering::Relaxed);
        m.frames_encoded.fetch_add(1, Ordering::Relaxed);
        m.render_ns_total
            .fetch_add(rep.render_ns, Ordering::Relaxed);
        m.encode_ns_total
            .fetch_add(rep.encode_ns, Ordering::Relaxed);
        m.encode_ns_last.store(rep.encode_ns, Ordering::Relaxed);
        if rep.idr {
            m.idr_frames.fetch_add(1, Ordering::Relaxed);
        }
        let mut all = true;
        for d in &out {
            match rtp.send(d) {
                Ok(n) => {
                    m.packets_sent.fetch_add(1, Ordering::Relaxed);
                    m.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    all = false;
                    // Counted; logged at most once per hundred.
                    let n = m.send_errors.fetch_add(1, Ordering::Relaxed);
                    if n % 100 == 0 {
                        warn!(error = %e, errors = n + 1, "sending RTP failed");
                    }
                }
            }
        }
        // The first frame whose datagrams all left: the agent's first_frame_ms.
        if all && m.frames_sent.fetch_add(1, Ordering::Relaxed) == 0 {
            m.first_frame_unix_ns
                .store(realtime_ns(), Ordering::Relaxed);
        }
    }
    Ok(())
}

fn sync_loop(
    client: &mut SyncClient,
    mut copy: WorldCopy,
    sh: &Shared,
) -> Result<(), InstanceError> {
    let m = &sh.metrics;
    loop {
        if sh.stopping() {
            return Ok(());
        }
        let msg = match client.recv() {
            Ok(msg) => msg,
            Err(SyncError::Timeout) => continue,
            Err(e) => {
                // The server went away (or logged us out): stop everything.
                let stopping = sh.stopping();
                sh.stop.store(true, Ordering::SeqCst);
                if stopping {
                    return Ok(());
                }
                error!(error = %e, "sync connection lost");
                return Err(e.into());
            }
        };
        match copy.on_msg(msg) {
            Ok(SyncEvent::Ticked(t)) => {
                m.deltas.fetch_add(1, Ordering::Relaxed);
                m.world_tick.store(t, Ordering::Relaxed);
                sh.set_world(copy.world());
            }
            Ok(SyncEvent::Role(r)) => {
                info!(role = ?r, "role changed");
                sh.set_role(r);
            }
            Ok(SyncEvent::WriteDropped(seq, reason)) => {
                m.writes_dropped_by_server.fetch_add(1, Ordering::Relaxed);
                debug!(seq, reason, "write dropped by the server");
            }
            Ok(SyncEvent::ServerError(message)) => warn!(message, "logic server error"),
            Ok(SyncEvent::Ignored) => {}
            Err(e) => {
                let n = m.delta_errors.fetch_add(1, Ordering::Relaxed);
                if n % 100 == 0 {
                    warn!(error = %e, "delta did not apply");
                }
            }
        }
    }
}

/// Takes the UE's input datagrams: only from `ue_ip`, the session address
/// the instance streams to (DESIGN.md section 3: nobody else plays, or
/// switches, for the UE's account through this instance).
fn input_loop(sock: &UdpSocket, sh: &Shared, ue_ip: IpAddr) {
    let mut buf = [0u8; 2048];
    let mut port = InputPort::default();
    while !sh.stopping() {
        match sock.recv_from(&mut buf) {
            Ok((_, from)) if from.ip() != ue_ip => {
                let k = sh.metrics.inputs_foreign.fetch_add(1, Ordering::Relaxed) + 1;
                if k % 100 == 1 {
                    warn!(%from, ue = %ue_ip, foreign = k, "input datagram not from the UE's address: dropped");
                }
            }
            Ok((n, from)) => {
                let rep = port.handle(&buf[..n], Instant::now(), sh.role(), sh, &sh.metrics);
                if let InputOutcome::Malformed(e) = &rep.outcome {
                    let k = sh.metrics.inputs_malformed.load(Ordering::Relaxed);
                    if k % 100 == 1 {
                        warn!(%from, error = %e, malformed = k, "malformed input datagram");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                warn!(error = %e, "input socket");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn http_loop(l: &TcpListener, sh: &Shared) {
    while !sh.stopping() {
        match l.accept() {
            Ok((s, _)) => {
                if let Err(e) = serve_http(s, sh) {
                    debug!(error = %e, "http request");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                warn!(error = %e, "metrics listener");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One HTTP/1.x request: `GET /metrics`, `POST /switch`, `POST /idr`,
/// `GET /healthz`.
fn serve_http(s: TcpStream, sh: &Shared) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut clen = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                clen = v.trim().parse().unwrap_or(0).min(1 << 16);
            }
        }
    }
    let mut body = vec![0u8; clen];
    r.read_exact(&mut body)?;
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, text) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            sh.metrics.prometheus(&sh.name),
        ),
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("POST", "/switch") => match sh.switch() {
            Ok(()) => {
                // The UE starts showing this stream now: give it a keyframe.
                sh.key_frame();
                (
                    "200 OK",
                    "application/json",
                    "{\"switched\":true}\n".to_string(),
                )
            }
            Err(e) => (
                "503 Service Unavailable",
                "application/json",
                format!(
                    "{{\"error\":{}}}\n",
                    serde_json::Value::String(e.to_string())
                ),
            ),
        },
        ("POST", "/idr") => {
            sh.key_frame();
            ("200 OK", "application/json", "{\"idr\":true}\n".to_string())
        }
        (_, "/metrics" | "/switch" | "/idr" | "/healthz") => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let mut w = s;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Cell, Delta, Dir, Event};

    #[test]
    fn world_copy_follows_deltas_and_roles() {
        let mut w = World::new(64, 36, 7);
        w.event(&Event::Join { player: "a".into() });
        let mut copy = WorldCopy::new(w.clone(), Role::Secondary);
        let d = Delta {
            tick: w.tick + 1,
            events: vec![Event::Turn {
                player: "a".into(),
                dir: Dir::Up,
                seq: 4,
            }],
        };
        assert_eq!(
            copy.on_msg(ServerMsg::Delta(d.clone())).expect("applies"),
            SyncEvent::Ticked(w.tick + 1)
        );
        let mut expect = w.clone();
        expect.apply(&d).expect("applies");
        assert_eq!(*copy.world(), expect);
        // The same delta again is out of order: refused, copy unchanged.
        assert!(copy.on_msg(ServerMsg::Delta(d)).is_err());
        assert_eq!(*copy.world(), expect);
        assert_eq!(
            copy.on_msg(ServerMsg::Role {
                role: Role::Primary
            })
            .expect("role"),
            SyncEvent::Role(Role::Primary)
        );
        assert_eq!(copy.role(), Role::Primary);
    }

    #[test]
    fn streamer_meta_and_timestamps() {
        let mut w = World::new(64, 36, 1);
        w.event(&Event::Join {
            player: "acc".into(),
        });
        if let Some(s) = w.snakes.get_mut("acc") {
            s.last_input = 17;
            s.body[0] = Cell { x: 3, y: 3 };
        }
        let mut cfg = StreamerConfig::new("acc", 42);
        cfg.encoder.width = 320;
        cfg.encoder.height = 180;
        let mut st = Streamer::new(cfg).expect("streamer");
        let mut out = vec![];
        let r0 = st.stream(&w, 99, &mut out).expect("frame");
        assert!(r0.idr);
        assert_eq!(
            r0.meta,
            FrameMeta {
                tick: w.tick,
                input_seq: 17,
                rendered_ns: 99
            }
        );
        assert_eq!(r0.packets, out.len());
        let r1 = st.stream(&w, 100, &mut out).expect("frame");
        assert!(!r1.idr);
        assert_eq!(r1.timestamp.wrapping_sub(r0.timestamp), 1500);
        st.force_idr();
        let r2 = st.stream(&w, 101, &mut out).expect("frame");
        assert!(r2.idr);
        // Two slots skipped (the loop fell behind): the next timestamp is
        // its slot's, three frame periods on, not the next frame number's.
        st.skip_slots(2);
        let r3 = st.stream(&w, 150, &mut out).expect("frame");
        assert_eq!(r3.timestamp.wrapping_sub(r2.timestamp), 3 * 1500);
        assert_eq!(st.frames(), 4);
    }
}
