//! Network namespaces, made the way `ip netns add` makes them: a bind mount of
//! the namespace file at `/run/netns/NAME`, so `ip netns exec` works on them.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where namespaces are bound (as iproute2).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// namespace `{0}` already exists
    #[error("namespace `{0}` already exists in /run/netns")]
    Exists(String),
    /// namespace `{0}` does not exist
    #[error("namespace `{0}` does not exist")]
    NotFound(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The thread running the closure panicked.
    #[error("thread in namespace `{0}` panicked")]
    Panicked(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> NetnsError {
    let what = what.into();
    move |e| NetnsError::Sys {
        what,
        source: std::io::Error::from(e),
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetnsError {
    let what = what.into();
    move |source| NetnsError::Sys { what, source }
}

/// Path of a namespace's bind mount.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Whether `/run/netns/NAME` exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Makes `/run/netns` exist and be a shared mount point, as iproute2 does,
/// so that namespaces bound later are visible in other mount namespaces.
pub fn ensure_run_dir() -> Result<(), NetnsError> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir).map_err(io("create /run/netns"))?;
    let flags = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, Some("none"), flags, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind-mount /run/netns onto itself"))?;
            mount(None::<&str>, dir, Some("none"), flags, None::<&str>)
                .map_err(sys("make /run/netns shared"))
        }
        Err(e) => Err(sys("make /run/netns shared")(e)),
    }
}

/// Opens a namespace by name (`/run/netns/NAME`).
pub fn open(name: &str) -> Result<OwnedFd, NetnsError> {
    match File::open(path(name)) {
        Ok(f) => Ok(f.into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(NetnsError::NotFound(name.into()))
        }
        Err(e) => Err(io(format!("open namespace `{name}`"))(e)),
    }
}

/// Opens the calling thread's current network namespace.
pub fn current() -> Result<OwnedFd, NetnsError> {
    File::open("/proc/thread-self/ns/net")
        .map(Into::into)
        .map_err(io("open /proc/thread-self/ns/net"))
}

/// Moves the calling thread into the namespace `fd`.
pub fn enter_fd(fd: &impl AsFd) -> Result<(), NetnsError> {
    setns(fd, CloneFlags::CLONE_NEWNET).map_err(sys("setns"))
}

/// Moves the calling thread into the namespace `name`. Only for threads that
/// you own (a dedicated thread): the thread stays there.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let fd = open(name)?;
    enter_fd(&fd).map_err(|e| match e {
        NetnsError::Sys { source, .. } => NetnsError::Sys {
            what: format!("setns into `{name}`"),
            source,
        },
        e => e,
    })
}

/// Runs `f` on a new thread that entered namespace `name`, and returns its result.
pub fn run_in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let fd = open(name)?;
    run_in_fd(name, fd, f)
}

/// Like [`run_in_netns`] for a closure that borrows from the caller: `f`
/// runs on a scoped thread that entered namespace `name`; a panic in `f`
/// goes on in the caller.
pub fn run_in_netns_scoped<T: Send>(
    name: &str,
    f: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    let fd = open(name)?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T, NetnsError> {
            enter_fd(&fd)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Like [`run_in_netns`] with an open namespace fd.
pub fn run_in_fd<T: Send + 'static>(
    label: &str,
    fd: OwnedFd,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let h = std::thread::Builder::new()
        .name(format!("netns-{label}"))
        .spawn(move || -> Result<T, NetnsError> {
            enter_fd(&fd)?;
            Ok(f())
        })
        .map_err(io("spawn thread"))?;
    h.join().map_err(|_| NetnsError::Panicked(label.into()))?
}

/// Creates namespace `name` from the calling thread: the thread is left
/// *inside* the new namespace (callers use a dedicated thread, then return
/// with [`enter_fd`]). `before_bind` runs inside the new namespace before it
/// becomes visible at `/run/netns/NAME` (used to mark it as ours first).
pub fn create_here<E: From<NetnsError>>(
    name: &str,
    before_bind: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    let p = path(name);
    // O_EXCL: fail if someone else owns the name.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(NetnsError::Exists(name.into()).into())
        }
        Err(e) => return Err(io(format!("create {}", p.display()))(e).into()),
    }
    let res = (|| -> Result<(), E> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(sys(format!("unshare(CLONE_NEWNET) for `{name}`")))?;
        before_bind()?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!("bind-mount namespace `{name}`")))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&p);
    }
    res
}

/// Whether `p` is a mount point (its device differs from its parent's).
fn is_mounted(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // A bound namespace file lives on nsfs, not on the directory's filesystem.
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(m), Some(Ok(d))) => m.dev() != d.dev(),
        _ => false,
    }
}

/// Removes namespace `name`: unmounts and unlinks `/run/netns/NAME`. The
/// kernel frees the namespace (and its veths) when nothing else holds it.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    let p = path(name);
    if !p.exists() {
        return Err(NetnsError::NotFound(name.into()));
    }
    if is_mounted(&p) {
        umount2(&p, MntFlags::MNT_DETACH).map_err(sys(format!("umount namespace `{name}`")))?;
    }
    std::fs::remove_file(&p).map_err(io(format!("remove {}", p.display())))
}

/// Whether `/run/netns/NAME` is a mounted namespace (false for a leftover empty file).
pub fn is_bound(name: &str) -> bool {
    is_mounted(&path(name))
}

/// Inode of a namespace (to compare with /proc/PID/ns/net).
pub fn inode(fd: &impl AsFd) -> Option<u64> {
    let st = nix::sys::stat::fstat(fd.as_fd()).ok()?;
    Some(st.st_ino)
}
