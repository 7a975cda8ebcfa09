//! Time-ordered 63-bit ids, sonyflake style, written as decimal strings.
//!
//! Layout: 39 bits of 10 ms ticks since 2024-01-01, 8 bits of sequence within a tick, 16 bits
//! of node id. The node id is handed out by the database at start-up (see
//! `storage::repo::nodes`), so several processes sharing one database never mint the same id.
//! When a tick's 256 ids are used up, or the clock steps back, the generator borrows the next
//! tick instead of waiting: ids stay unique and increasing.
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use super::clock::Clock;

const SEQUENCE_BITS: u32 = 8;
const NODE_BITS: u32 = 16;
const TICK_MILLIS: i64 = 10;

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("valid epoch")
}

pub struct IdGenerator {
    node: u16,
    clock: Arc<dyn Clock>,
    state: Mutex<(i64, u16)>,
}

impl IdGenerator {
    pub fn new(node: u16, clock: Arc<dyn Clock>) -> Self {
        IdGenerator {
            node,
            clock,
            state: Mutex::new((-1, 0)),
        }
    }

    pub fn node(&self) -> u16 {
        self.node
    }

    /// The next id as a number.
    pub fn next_u64(&self) -> u64 {
        let tick = ((self.clock.now() - epoch()).num_milliseconds() / TICK_MILLIS).max(0);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last_tick, seq) = *state;
        let (tick, seq) = if tick > last_tick {
            (tick, 0)
        } else if u32::from(seq) + 1 < (1 << SEQUENCE_BITS) {
            (last_tick, seq + 1)
        } else {
            (last_tick + 1, 0)
        };
        *state = (tick, seq);
        ((tick as u64) << (SEQUENCE_BITS + NODE_BITS))
            | (u64::from(seq) << NODE_BITS)
            | u64::from(self.node)
    }

    /// The next id, as the decimal string the API uses.
    pub fn next_id(&self) -> String {
        self.next_u64().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::ManualClock;

    #[test]
    fn ids_are_increasing_unique_and_carry_the_node() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let ids = IdGenerator::new(7, clock.clone());
        let mut last = 0;
        // More than one tick's worth, with the clock standing still: borrows future ticks.
        for _ in 0..1000 {
            let id = ids.next_u64();
            assert!(id > last);
            assert_eq!(id & 0xffff, 7);
            last = id;
        }
        // The clock stepping back does not produce an older id.
        clock.advance(chrono::Duration::seconds(-60));
        assert!(ids.next_u64() > last);
    }

    #[test]
    fn exact_id_for_a_pinned_clock() {
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 1).unwrap();
        let ids = IdGenerator::new(3, Arc::new(ManualClock::new(at)));
        // 1 s = 100 ticks; first id of the tick has sequence 0.
        assert_eq!(ids.next_id(), ((100u64 << 24) | 3).to_string());
        assert_eq!(ids.next_id(), ((100u64 << 24) | (1 << 16) | 3).to_string());
    }

    #[test]
    fn different_nodes_never_collide_on_the_same_tick() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(epoch()));
        let a = IdGenerator::new(1, clock.clone());
        let b = IdGenerator::new(2, clock);
        let from_a: std::collections::HashSet<u64> = (0..600).map(|_| a.next_u64()).collect();
        assert!((0..600).all(|_| !from_a.contains(&b.next_u64())));
    }
}
