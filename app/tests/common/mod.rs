//! Shared by app's tests and benches: games advanced through deltas exactly
//! as the logic server sends them.

#![allow(dead_code)]

use app::game::{Delta, Dir, Event, World};

/// The four directions in turning order.
pub const DIRS: [Dir; 4] = [Dir::Up, Dir::Left, Dir::Down, Dir::Right];

/// `ticks` worlds of a `width` x `height` game seeded with `seed`, each
/// after applying the delta of `events(t)` at tick `t` (from 0).
pub fn play(
    (width, height, seed): (u16, u16, u64),
    ticks: usize,
    mut events: impl FnMut(u64) -> Vec<Event>,
) -> Vec<World> {
    let mut w = World::new(width, height, seed);
    let mut out = Vec::with_capacity(ticks);
    for t in 0..ticks as u64 {
        w.apply(&Delta {
            tick: w.tick + 1,
            events: events(t),
        })
        .expect("in order");
        out.push(w.clone());
    }
    out
}

/// `ticks` worlds of a four-player game in which player `a` turns every
/// sixth tick.
pub fn four_players(ticks: usize) -> Vec<World> {
    play((64, 36, 7), ticks, |t| {
        let mut events = Vec::new();
        if t == 0 {
            for p in ["a", "b", "c", "d"] {
                events.push(Event::Join { player: p.into() });
            }
        }
        if t % 6 == 2 {
            events.push(Event::Turn {
                player: "a".into(),
                dir: DIRS[(t / 6) as usize % 4],
                seq: t,
            });
        }
        events
    })
}
