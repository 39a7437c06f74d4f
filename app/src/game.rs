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

/// A heading (its wire code is part of the input datagram).
pub use wire::input::Dir;

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

/// Why a [`Delta`] cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameError {
    /// A delta for another tick than the next one: the world is at `have`,
    /// so it accepts only the delta for `have + 1`.
    #[error("delta for tick {got} does not follow the world's tick {have}")]
    OutOfOrder {
        /// The world's tick.
        have: u64,
        /// The delta's tick.
        got: u64,
    },
}

/// Length of a snake when it (re)spawns.
pub const SPAWN_LEN: usize = 3;
/// Food cells the world keeps on the grid at least.
pub const MIN_FOOD: usize = 3;

impl Snake {
    /// The head cell. A snake's body is never empty (spawned with
    /// [`SPAWN_LEN`] cells, a step pushes a head before popping a tail).
    pub fn head(&self) -> Option<Cell> {
        self.body.front().copied()
    }
}

/// splitmix64: one step of the world's generator.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl World {
    /// An empty world of `width` x `height` cells (each at least 1) with
    /// [`MIN_FOOD`] food cells placed from `seed`.
    pub fn new(width: u16, height: u16, seed: u64) -> World {
        let mut w = World {
            width: width.max(1),
            height: height.max(1),
            tick: 0,
            snakes: BTreeMap::new(),
            food: Vec::new(),
            rng: seed,
        };
        w.refill_food();
        w
    }

    /// Applies one tick's delta: its events in order, then one
    /// [`World::step`]. A delta that is not for `self.tick + 1` is refused
    /// and leaves the world unchanged.
    pub fn apply(&mut self, delta: &Delta) -> Result<(), GameError> {
        if delta.tick != self.tick.wrapping_add(1) {
            return Err(GameError::OutOfOrder {
                have: self.tick,
                got: delta.tick,
            });
        }
        for e in &delta.events {
            self.event(e);
        }
        self.step();
        Ok(())
    }

    /// Applies one event (without stepping).
    ///
    /// - `Join` of a player already present: ignored. Otherwise the snake
    ///   spawns on a random free cell with [`SPAWN_LEN`] cells and the
    ///   smallest colour index no other snake uses.
    /// - `Leave` of an absent player: ignored.
    /// - `Turn`: sets the heading unless it points into the snake's own
    ///   neck (the cell right behind its head), in which case the heading
    ///   is kept. Either way the input counts as applied:
    ///   `last_input = max(last_input, seq)`. A turn of an absent player is
    ///   ignored.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Join { player } => {
                if self.snakes.contains_key(player) {
                    return;
                }
                let color = (0..=u8::MAX)
                    .find(|c| self.snakes.values().all(|s| s.color != *c))
                    .unwrap_or(0);
                let snake = self.spawn_snake(color, 0, 0);
                self.snakes.insert(player.clone(), snake);
            }
            Event::Leave { player } => {
                self.snakes.remove(player);
            }
            Event::Turn { player, dir, seq } => {
                let (w, h) = (self.width, self.height);
                if let Some(s) = self.snakes.get_mut(player) {
                    let into_neck = match (s.body.front(), s.body.get(1)) {
                        (Some(head), Some(neck)) => {
                            let next = step_cell(*head, *dir, w, h);
                            next == *neck && next != *head
                        }
                        _ => false,
                    };
                    if !into_neck {
                        s.dir = *dir;
                    }
                    s.last_input = s.last_input.max(*seq);
                }
            }
        }
    }

    /// Advances the world one tick: every snake moves one cell (wrapping at
    /// the edges); a snake whose new head lands on food grows by one and
    /// scores; then a snake whose head is on any other snake cell (its own
    /// body or another snake, head-on collisions included) respawns at a
    /// random free cell with its score reset to 0 (the game never ends).
    /// Eaten food is replaced so that [`MIN_FOOD`] cells stay on the grid
    /// (when the grid has room).
    pub fn step(&mut self) {
        self.tick = self.tick.wrapping_add(1);
        let (w, h) = (self.width, self.height);
        // Move, eat.
        let names: Vec<PlayerId> = self.snakes.keys().cloned().collect();
        for name in &names {
            let Some(s) = self.snakes.get_mut(name) else {
                continue;
            };
            let Some(head) = s.body.front().copied() else {
                continue;
            };
            let next = step_cell(head, s.dir, w, h);
            s.body.push_front(next);
            if let Some(i) = self.food.iter().position(|f| *f == next) {
                self.food.swap_remove(i);
                s.score = s.score.saturating_add(1);
            } else {
                s.body.pop_back();
            }
        }
        // Collisions, decided on the moved world, then respawn in order.
        let mut occupied: BTreeMap<Cell, u32> = BTreeMap::new();
        for s in self.snakes.values() {
            for c in &s.body {
                *occupied.entry(*c).or_insert(0) += 1;
            }
        }
        let crashed: Vec<PlayerId> = self
            .snakes
            .iter()
            .filter(|(_, s)| {
                s.body
                    .front()
                    .is_some_and(|h| occupied.get(h).copied().unwrap_or(0) > 1)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in crashed {
            if let Some(old) = self.snakes.remove(&name) {
                let s = self.spawn_snake(old.color, 0, old.last_input);
                self.snakes.insert(name, s);
            }
        }
        self.refill_food();
    }

    /// Whether a cell holds a snake or food.
    pub fn is_free(&self, c: Cell) -> bool {
        !self.food.contains(&c) && self.snakes.values().all(|s| !s.body.contains(&c))
    }

    fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.rng)
    }

    /// A random free cell: a few random draws, then a scan from a random
    /// start; `None` when the grid is full.
    fn random_free_cell(&mut self) -> Option<Cell> {
        let n = u64::from(self.width) * u64::from(self.height);
        let at = |i: u64, w: u16| Cell {
            x: (i % u64::from(w)) as u16,
            y: (i / u64::from(w)) as u16,
        };
        for _ in 0..32 {
            let c = at(self.next_u64() % n, self.width);
            if self.is_free(c) {
                return Some(c);
            }
        }
        let start = self.next_u64() % n;
        (0..n)
            .map(|k| at((start + k) % n, self.width))
            .find(|c| self.is_free(*c))
    }

    fn spawn_snake(&mut self, color: u8, score: u32, last_input: u64) -> Snake {
        // Prefer a place where the whole body is free; settle for a free
        // head on a crowded grid.
        let mut body = VecDeque::with_capacity(SPAWN_LEN);
        let mut dir = Dir::Right;
        for attempt in 0..16 {
            dir = Dir::ALL[(self.next_u64() % 4) as usize];
            let head = self.random_free_cell().unwrap_or(Cell { x: 0, y: 0 });
            body.clear();
            let mut c = head;
            body.push_back(c);
            for _ in 1..SPAWN_LEN {
                c = step_cell(c, dir.opposite(), self.width, self.height);
                body.push_back(c);
            }
            let distinct = body
                .iter()
                .enumerate()
                .all(|(i, a)| !body.iter().skip(i + 1).any(|b| a == b));
            if attempt == 15 || (distinct && body.iter().all(|c| self.is_free(*c))) {
                break;
            }
        }
        Snake {
            body,
            dir,
            score,
            color,
            last_input,
        }
    }

    fn refill_food(&mut self) {
        while self.food.len() < MIN_FOOD {
            match self.random_free_cell() {
                Some(c) => self.food.push(c),
                None => break,
            }
        }
    }
}

/// The neighbour of `c` towards `dir` on a `w` x `h` torus.
pub fn step_cell(c: Cell, dir: Dir, w: u16, h: u16) -> Cell {
    let (w, h) = (w.max(1), h.max(1));
    match dir {
        Dir::Up => Cell {
            x: c.x,
            y: if c.y == 0 || c.y > h { h - 1 } else { c.y - 1 },
        },
        Dir::Down => Cell {
            x: c.x,
            y: if u32::from(c.y) + 1 >= u32::from(h) {
                0
            } else {
                c.y + 1
            },
        },
        Dir::Left => Cell {
            x: if c.x == 0 || c.x > w { w - 1 } else { c.x - 1 },
            y: c.y,
        },
        Dir::Right => Cell {
            x: if u32::from(c.x) + 1 >= u32::from(w) {
                0
            } else {
                c.x + 1
            },
            y: c.y,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn join(p: &str) -> Event {
        Event::Join {
            player: p.to_string(),
        }
    }

    fn turn(p: &str, dir: Dir, seq: u64) -> Event {
        Event::Turn {
            player: p.to_string(),
            dir,
            seq,
        }
    }

    fn delta(w: &World, events: Vec<Event>) -> Delta {
        Delta {
            tick: w.tick + 1,
            events,
        }
    }

    #[test]
    fn new_world_has_food_and_no_snakes() {
        let w = World::new(64, 36, 7);
        assert_eq!((w.width, w.height, w.tick), (64, 36, 0));
        assert!(w.snakes.is_empty());
        assert_eq!(w.food.len(), MIN_FOOD);
        assert!(w.food.iter().all(|c| c.x < 64 && c.y < 36));
        assert_eq!(w, World::new(64, 36, 7), "same seed, same world");
        assert_ne!(w.food, World::new(64, 36, 8).food, "seed matters");
    }

    #[test]
    fn join_turn_leave() {
        let mut w = World::new(64, 36, 1);
        w.apply(&delta(&w, vec![join("a"), join("b"), join("a")]))
            .expect("next tick");
        assert_eq!(w.tick, 1);
        assert_eq!(w.snakes.len(), 2);
        let (ca, cb) = (w.snakes["a"].color, w.snakes["b"].color);
        assert_ne!(ca, cb);
        assert_eq!(w.snakes["a"].body.len(), SPAWN_LEN);
        // Put "a" somewhere known, moving right, with no food around.
        w.food = vec![Cell { x: 60, y: 30 }];
        let body: VecDeque<Cell> = [(10, 10), (9, 10), (8, 10)]
            .iter()
            .map(|&(x, y)| Cell { x, y })
            .collect();
        if let Some(a) = w.snakes.get_mut("a") {
            a.body = body;
            a.dir = Dir::Right;
        }
        w.snakes.retain(|k, _| k == "a");
        // Reversal into the neck is ignored, but the input counts.
        w.apply(&delta(&w, vec![turn("a", Dir::Left, 5)]))
            .expect("next");
        let a = &w.snakes["a"];
        assert_eq!(a.last_input, 5);
        assert_eq!(a.dir, Dir::Right);
        assert_eq!(a.head(), Some(Cell { x: 11, y: 10 }));
        // A perpendicular turn is taken; a turn of an absent player and an
        // older seq change nothing.
        w.apply(&delta(
            &w,
            vec![
                turn("a", Dir::Up, 7),
                turn("nobody", Dir::Down, 1),
                turn("a", Dir::Up, 6),
            ],
        ))
        .expect("next");
        let a = &w.snakes["a"];
        assert_eq!(a.dir, Dir::Up);
        assert_eq!(a.head(), Some(Cell { x: 11, y: 9 }));
        assert_eq!(a.last_input, 7);
        assert_eq!(a.body.len(), SPAWN_LEN);
        // Two turns in one tick cannot reverse into the neck either: Left
        // is taken, then Down (into the neck at (11, 10)) is refused.
        w.apply(&delta(
            &w,
            vec![turn("a", Dir::Left, 8), turn("a", Dir::Down, 9)],
        ))
        .expect("next");
        let a = &w.snakes["a"];
        assert_eq!(a.dir, Dir::Left);
        assert_eq!(a.head(), Some(Cell { x: 10, y: 9 }));
        assert_eq!(a.last_input, 9);
        w.apply(&delta(&w, vec![join("b")])).expect("next");
        assert_ne!(w.snakes["b"].color, w.snakes["a"].color);
        let _ = (ca, cb);
        w.apply(&delta(&w, vec![Event::Leave { player: "a".into() }]))
            .expect("next");
        assert!(!w.snakes.contains_key("a"));
        assert!(w.snakes.contains_key("b"));
    }

    #[test]
    fn out_of_order_refused_and_world_unchanged() {
        let mut w = World::new(16, 16, 3);
        let d1 = delta(&w, vec![join("a")]);
        w.apply(&d1).expect("first");
        let before = w.clone();
        assert_eq!(w.apply(&d1), Err(GameError::OutOfOrder { have: 1, got: 1 }));
        let d5 = Delta {
            tick: 5,
            events: vec![],
        };
        assert_eq!(w.apply(&d5), Err(GameError::OutOfOrder { have: 1, got: 5 }));
        assert_eq!(w, before);
    }

    #[test]
    fn wraps_around_edges() {
        let c = Cell { x: 0, y: 0 };
        assert_eq!(step_cell(c, Dir::Left, 10, 5), Cell { x: 9, y: 0 });
        assert_eq!(step_cell(c, Dir::Up, 10, 5), Cell { x: 0, y: 4 });
        let c = Cell { x: 9, y: 4 };
        assert_eq!(step_cell(c, Dir::Right, 10, 5), Cell { x: 0, y: 4 });
        assert_eq!(step_cell(c, Dir::Down, 10, 5), Cell { x: 9, y: 0 });
        // A lone snake crossing an edge stays on the grid for many ticks.
        let mut w = World::new(8, 4, 11);
        w.apply(&delta(&w, vec![join("a")])).expect("next");
        for _ in 0..100 {
            w.step();
            for s in w.snakes.values() {
                assert!(s.body.iter().all(|c| c.x < 8 && c.y < 4));
            }
        }
    }

    #[test]
    fn eating_grows_and_scores() {
        let mut w = World::new(20, 20, 5);
        w.apply(&delta(&w, vec![join("a")])).expect("next");
        let s = w.snakes["a"].clone();
        let h = s.head().expect("non-empty");
        let target = step_cell(h, s.dir, 20, 20);
        w.food = vec![target];
        w.step();
        let s2 = &w.snakes["a"];
        assert_eq!(s2.score, 1);
        assert_eq!(s2.body.len(), SPAWN_LEN + 1);
        assert_eq!(s2.head(), Some(target));
        assert_eq!(w.food.len(), MIN_FOOD, "food refilled");
        assert!(!w.food.contains(&target));
    }

    #[test]
    fn head_on_collision_respawns_both_with_score_reset() {
        let mut w = World::new(20, 20, 9);
        w.food.clear();
        let mk = |cells: &[(u16, u16)], dir, color| Snake {
            body: cells.iter().map(|&(x, y)| Cell { x, y }).collect(),
            dir,
            score: 4,
            color,
            last_input: 3,
        };
        w.snakes
            .insert("a".into(), mk(&[(5, 5), (4, 5), (3, 5)], Dir::Right, 0));
        w.snakes
            .insert("b".into(), mk(&[(7, 5), (8, 5), (9, 5)], Dir::Left, 1));
        // Far away, not involved.
        w.snakes
            .insert("c".into(), mk(&[(5, 15), (4, 15), (3, 15)], Dir::Right, 2));
        w.step();
        for p in ["a", "b"] {
            let s = &w.snakes[p];
            assert_eq!(s.score, 0, "{p} score reset");
            assert_eq!(s.body.len(), SPAWN_LEN);
            assert_eq!(s.last_input, 3, "{p} keeps its last input");
        }
        assert_eq!(w.snakes["c"].score, 4);
        assert_eq!(w.snakes["c"].head(), Some(Cell { x: 6, y: 15 }));
        // Nobody overlaps after respawn.
        let mut all: Vec<Cell> = w.snakes.values().flat_map(|s| s.body.clone()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn self_collision_respawns() {
        let mut w = World::new(20, 20, 9);
        w.food.clear();
        // A loop: head at (5,5) moving down into (5,6), which is its body.
        w.snakes.insert(
            "a".into(),
            Snake {
                body: [(5, 5), (6, 5), (6, 6), (5, 6), (4, 6)]
                    .iter()
                    .map(|&(x, y)| Cell { x, y })
                    .collect(),
                dir: Dir::Down,
                score: 2,
                color: 0,
                last_input: 0,
            },
        );
        w.step();
        assert_eq!(w.snakes["a"].score, 0);
        assert_eq!(w.snakes["a"].body.len(), SPAWN_LEN);
    }

    #[test]
    fn tiny_grids_do_not_panic() {
        for (wd, ht) in [(0, 0), (1, 1), (1, 3), (2, 2), (3, 1)] {
            let mut w = World::new(wd, ht, 1);
            w.apply(&delta(&w, vec![join("a"), join("b"), join("c")]))
                .expect("next");
            for _ in 0..20 {
                w.step();
            }
        }
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let player = prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
        prop_oneof![
            player.clone().prop_map(|player| Event::Join { player }),
            player.clone().prop_map(|player| Event::Leave { player }),
            (player, 0u8..4, 1u64..1000).prop_map(|(player, d, seq)| Event::Turn {
                player,
                dir: Dir::from_code(d).unwrap_or(Dir::Up),
                seq,
            }),
        ]
    }

    fn arb_events() -> impl Strategy<Value = Vec<Vec<Event>>> {
        prop::collection::vec(prop::collection::vec(arb_event(), 0..4), 0..60)
    }

    proptest! {
        /// Two worlds fed the same deltas stay equal; the deltas are what a
        /// server would broadcast.
        #[test]
        fn replicas_stay_equal(seed in any::<u64>(), w in 4u16..40, h in 4u16..30, ticks in arb_events()) {
            let mut server = World::new(w, h, seed);
            let mut replica = World::new(w, h, seed);
            for events in ticks {
                let d = Delta { tick: server.tick + 1, events };
                server.apply(&d).expect("in order");
                replica.apply(&d).expect("in order");
                prop_assert_eq!(&server, &replica);
                for s in server.snakes.values() {
                    prop_assert!(!s.body.is_empty());
                    prop_assert!(s.body.iter().all(|c| c.x < w && c.y < h));
                }
            }
        }

        /// A world rebuilt from a serialized snapshot plus the later deltas
        /// equals the original.
        #[test]
        fn snapshot_plus_deltas(seed in any::<u64>(), cut in 0usize..60, ticks in arb_events()) {
            let mut server = World::new(64, 36, seed);
            let mut late: Option<World> = None;
            for (i, events) in ticks.into_iter().enumerate() {
                if i == cut {
                    let json = serde_json::to_string(&server).expect("serializable");
                    late = Some(serde_json::from_str(&json).expect("round trip"));
                }
                let d = Delta { tick: server.tick + 1, events };
                server.apply(&d).expect("in order");
                if let Some(l) = late.as_mut() {
                    l.apply(&d).expect("in order");
                }
            }
            if let Some(l) = late {
                prop_assert_eq!(l, server);
            }
        }
    }
}
