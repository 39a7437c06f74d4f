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
//!
//! One job per file: `streamer` (the video and the frame loop), `world`
//! (the world copy and the sync receiver), `input_port` (what an input
//! datagram becomes), `input_socket` (the input receiver), `http` (the
//! metrics/control server), `metrics`; this file holds the arguments, the
//! state the threads share, and [`run`], which starts and stops them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use media::h264::{Encoder, EncoderConfig};
use media::rtp::{DEFAULT_MTU, PAYLOAD_TYPE};
use media::MediaError;
use tracing::{debug, error, info, warn};

use crate::game::World;
use crate::input::Input;
use crate::scene::Scene;
use crate::sync::{Role, SyncClient, SyncError, SyncWriter};

mod http;
mod input_port;
mod input_socket;
mod metrics;
mod streamer;
mod world;

pub use input_port::{
    InputOutcome, InputPort, InputReport, InputSink, KeyFrame, RateLimit, KEY_FRAME_MIN_GAP,
};
pub use metrics::Metrics;
pub use streamer::{FrameReport, Streamer, StreamerConfig};
pub use world::{SyncEvent, WorldCopy};

use http::http_loop;
use input_socket::input_loop;
use streamer::frame_loop;
use world::sync_loop;

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
    if let Some(w) = media::h264::simd_warning() {
        warn!("{w}");
    }

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
    shared.metrics.h264_simd_flags.store(
        media::h264::simd_flags().map_or(0, u64::from),
        Ordering::Relaxed,
    );
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
