//! Counting per run: the packets of one owner (a tunnel, a rule) that come
//! one after another in a batch are added to its shared counters once,
//! when the run ends, instead of once per packet. Both daemons' packet
//! threads count this way (no shared cache line written per packet).

/// The run being counted: its owner, packets and bytes.
#[derive(Debug)]
pub struct Run<'a, T> {
    owner: Option<&'a T>,
    packets: u64,
    bytes: u64,
}

impl<T> Default for Run<'_, T> {
    fn default() -> Self {
        Run {
            owner: None,
            packets: 0,
            bytes: 0,
        }
    }
}

/// A run that ended: its owner, packets and bytes, to be written.
pub type Ended<'a, T> = (&'a T, u64, u64);

impl<'a, T> Run<'a, T> {
    /// Nothing counted.
    pub fn new() -> Self {
        Run::default()
    }

    /// Counts a packet of `bytes` for `owner` (the same owner is the same
    /// reference); returns the run it ended, another owner's, if any.
    pub fn add(&mut self, owner: &'a T, bytes: u64) -> Option<Ended<'a, T>> {
        let ended = match self.owner {
            Some(o) if std::ptr::eq(o, owner) => None,
            _ => {
                let ended = self.take();
                self.owner = Some(owner);
                ended
            }
        };
        self.packets += 1;
        self.bytes += bytes;
        ended
    }

    /// Ends the run held, if any.
    pub fn take(&mut self) -> Option<Ended<'a, T>> {
        let ended = self.owner.take().map(|o| (o, self.packets, self.bytes));
        self.packets = 0;
        self.bytes = 0;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_ends_at_another_owner_or_when_taken() {
        let (a, b) = (1u8, 1u8); // equal values, two owners
        let mut r = Run::new();
        assert_eq!(r.add(&a, 10), None);
        assert_eq!(r.add(&a, 20), None);
        let (o, p, by) = r.add(&b, 5).expect("a's run ended");
        assert!(std::ptr::eq(o, &a));
        assert_eq!((p, by), (2, 30));
        let (o, p, by) = r.take().expect("b's run");
        assert!(std::ptr::eq(o, &b));
        assert_eq!((p, by), (1, 5));
        assert_eq!(r.take(), None);
        assert_eq!(r.add(&a, 1), None, "a new run after a take");
    }
}
