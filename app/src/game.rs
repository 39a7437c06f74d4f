//! The snake world: a grid, snakes (one per account), food, scores.
//!
//! The world is a pure value. [`World::step`] advances it one tick from the
//! events of that tick, deterministically (its random numbers come from a
//! seeded generator inside the world), so that the cloud and every edge
//! instance that applies the same [`Delta`]s to the same snapshot hold the
//! same world, and render the same frames.
//!
//! The public fields below are a contract with the renderer and the sync
//! protocol; add fields, do not change the meaning of these.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// A player is a user account.
pub type PlayerId = String;

/// A grid cell, (0, 0) at the top left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cell {
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
}

/// A heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dir {
    /// Towards row 0.
    Up,
    /// Towards the last row.
    Down,
    /// Towards column 0.
    Left,
    /// Towards the last column.
    Right,
}

impl Dir {
    /// Wire code (the input datagram): 0 up, 1 down, 2 left, 3 right.
    pub fn code(self) -> u8 {
        match self {
            Dir::Up => 0,
            Dir::Down => 1,
            Dir::Left => 2,
            Dir::Right => 3,
        }
    }

    /// The heading of a wire code, `None` for an unknown code.
    pub fn from_code(c: u8) -> Option<Dir> {
        match c {
            0 => Some(Dir::Up),
            1 => Some(Dir::Down),
            2 => Some(Dir::Left),
            3 => Some(Dir::Right),
            _ => None,
        }
    }
}

/// One player's snake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snake {
    /// Head first.
    pub body: VecDeque<Cell>,
    /// Current heading.
    pub dir: Dir,
    /// Food eaten.
    pub score: u32,
    /// Colour index (the renderer's palette).
    pub color: u8,
    /// Sequence number of the last input of this player the logic server
    /// applied (0: none yet). Rendered frames carry it, so the UE can time
    /// input -> displayed frame.
    pub last_input: u64,
}

/// The whole game state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// Ticks since the world began.
    pub tick: u64,
    /// Snakes by player, in a deterministic order.
    pub snakes: BTreeMap<PlayerId, Snake>,
    /// Food cells.
    pub food: Vec<Cell>,
    /// State of the world's deterministic random generator.
    pub rng: u64,
}

/// What happened in one tick, as the logic server broadcasts it: applying
/// `events` in order and then stepping turns the world at `tick - 1` into
/// the world at `tick`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The tick this delta produces.
    pub tick: u64,
    /// Events of the tick, in the order the server applied them.
    pub events: Vec<Event>,
}

/// A change the logic server applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A player joined (first login of the account).
    Join {
        /// The player.
        player: PlayerId,
    },
    /// A player left (last session of the account logged out).
    Leave {
        /// The player.
        player: PlayerId,
    },
    /// A player's input, numbered by the UE.
    Turn {
        /// The player.
        player: PlayerId,
        /// New heading.
        dir: Dir,
        /// The UE's input sequence number.
        seq: u64,
    },
}
