//! The application under test (issue 6, DESIGN.md sections 1 and 5): a
//! multiplayer snake game, edge-rendered, synchronized through the cloud,
//! streamed to the UE, with the CSM changes of the paper (section V-A).
//!
//! - [`game`]: the world (grid, snakes, food, scores) and its deterministic step.
//! - [`session`]: the CSM session manager, Algorithm 1, as an I/O-free state machine.
//! - [`sync`]: the state-synchronization protocol (TCP) between an edge
//!   instance and the cloud logic server, and its client.
//! - [`cloud`]: the cloud logic server.
//! - [`input`]: the UE's numbered input datagrams (UDP, UE -> chief pilot).
//! - [`render`]: deterministic frames from the world.
//! - [`scene`]: what an instance draws (snake, textured, static), from the
//!   world and its tick only.
//! - [`instance`]: an application instance on an edge: login, world copy,
//!   render, encode, RTP to the UE, input to writes.
//! - [`repo`], [`agent`]: the application repositories (cloud and edge) and
//!   the edge migration agent's API.

pub mod agent;
pub mod cloud;
pub mod game;
pub mod input;
pub mod instance;
pub mod render;
pub mod repo;
pub mod scene;
pub mod session;
pub mod sync;
