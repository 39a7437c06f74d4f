//! The instance's copy of the world: [`WorldCopy`] follows the login
//! snapshot and the sync messages (deltas, role changes), and
//! `sync_loop`, the sync receiver thread, feeds it from the logic server
//! and publishes each new world to the other threads.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, error, info, warn};

use super::{InstanceError, Shared};
use crate::game::World;
use crate::sync::{Role, ServerMsg, SyncClient, SyncError};

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

pub(super) fn sync_loop(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Delta, Dir, Event};

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
}
