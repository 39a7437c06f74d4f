//! `dpio`: the I/O under the packet threads of `gnb` and `upf`.
//!
//! - [`tun`]: one TUN module for both daemons: TUNSETIFF by ioctl, every
//!   `fcntl` checked, the link's MTU, state and routes by netlink (no `ip`
//!   subprocess), each setup step's error naming the step;
//! - [`udp`]: batched datagram I/O: `recvmmsg` fills a ring of
//!   preallocated slots in one syscall, `sendmmsg` sends what a batch
//!   produced in one syscall (each datagram to its own peer);
//! - [`offload`]: TUN offloads without I/O: the virtio-net header, TSO/USO
//!   super-packets cut into wire-sized packets, TCP segments joined again.
//! - [`reuseport`]: one UDP port served by several workers, each datagram
//!   steered to a worker by its source port, and the workers' own sender
//!   ports; [`reuseport::workers`], how many workers to run.
//! - [`run`]: counting per run of one owner's packets, so a batch writes
//!   each shared counter once.
//!
//! The packet-loop design both daemons follow (see `gnb::datapath` and
//! `upf::n3`): a worker waits for readiness, takes a bounded batch
//! ([`udp::recv_batch`], or up to [`BATCH`] TUN reads until `EAGAIN`),
//! asks its I/O-free core for a verdict per packet against one snapshot
//! load per batch, queues the outputs ([`udp::Outbox`]) and flushes them
//! with one syscall, then adds the batch's counts to the shared counters
//! once (no shared cache line written per packet). Control-plane work
//! never runs on these threads: they only queue events.
//!
//! Why a crate of its own rather than `topo`: these are the daemons' hot
//! loops and their benchmarks, not topology building; `topo` is used only
//! for its synchronous netlink client.

pub mod offload;
pub mod reuseport;
pub mod run;
pub mod tun;
pub mod udp;

/// Packets a worker handles per wake-up (and slots in a batch).
pub const BATCH: usize = 32;
