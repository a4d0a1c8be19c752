//! The request-id join: trace ids for access lines that carry none.
//!
//! ECS Service Connect's proxy logs no trace header, but it logs the request id it put in
//! `X-Request-Id`, and an application behind it logs that id too (Rails/lograge `request_id`,
//! envoy-dd's own tower layer, most frameworks) next to its tracer's `dd.trace_id`. In one
//! task's log router both lines pass through the same filter, so the filter remembers, for the
//! latest request ids, the trace context of a record that had both; an access line without a
//! trace id of its own then gets the context of its request id.
//!
//! [`RequestIds`] is that memory: a fixed number of entries, the oldest evicted first, all
//! allocated on first use, so a warm one allocates nothing. A request id seen with two
//! different trace ids gives none: the join never pairs a line with a trace that may not be
//! its own.

use crate::scan::swar;

/// The longest request id remembered, in bytes (a UUID has 36). Longer ones are not joined.
pub(crate) const MAX_ID_LEN: usize = 64;

/// The default number of entries: about a megabyte ([`RequestIds::memory`]).
pub const DEFAULT_ENTRIES: usize = 8192;

/// Request id → trace context, for the latest `capacity` request ids.
pub(crate) struct RequestIds {
    capacity: usize,
    /// The entries in a ring, in the order they came: `next` is the oldest once it is full.
    entries: Vec<Entry>,
    next: usize,
    /// Open addressing, linear probing: each slot is an entry's place + 1, or 0 when empty.
    slots: Vec<u32>,
}

/// 104 bytes: the ids as u64s (a u128 would align the entry to 16 bytes), 0 for no span.
#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    trace_high: u64,
    trace_low: u64,
    span_id: u64,
    id: Key,
    len: u8,
    /// Seen with two different trace ids: never joined.
    conflict: bool,
}

/// A request id, zero-padded: compared and hashed a word at a time ([`swar`]; no `memcmp`
/// call, which the Wasm build would run a byte at a time).
type Key = [u8; MAX_ID_LEN];

/// The padded bytes of `id` (at most [`MAX_ID_LEN`] bytes) and how many words it fills.
fn key(id: &[u8]) -> (Key, usize) {
    let mut key = [0; MAX_ID_LEN];
    key[..id.len()].copy_from_slice(id);
    (key, id.len().div_ceil(8))
}

impl Entry {
    fn trace_id(&self) -> u128 {
        u128::from(self.trace_high) << 64 | u128::from(self.trace_low)
    }
}

impl RequestIds {
    /// A map for the latest `capacity` request ids (0: the join is off). Allocates nothing
    /// until the first [`RequestIds::remember`].
    pub fn new(capacity: usize) -> RequestIds {
        RequestIds {
            // Places are u32 and slots twice as many.
            capacity: capacity.min(1 << 30),
            entries: Vec::new(),
            next: 0,
            slots: Vec::new(),
        }
    }

    /// The bytes the map takes once in use, for `capacity` entries.
    #[cfg(test)]
    pub fn memory(capacity: usize) -> usize {
        capacity * core::mem::size_of::<Entry>() + slot_count(capacity) * 4
    }

    /// The trace id and span id remembered for request id `id`, unless it was seen with two
    /// different trace ids.
    pub fn get(&self, id: &[u8]) -> Option<(u128, Option<u64>)> {
        if self.slots.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let (key, words) = key(id);
        let at = self.find(&key, id.len(), hash(&key, words))?;
        let entry = &self.entries[at];
        let span_id = (entry.span_id != 0).then_some(entry.span_id);
        (!entry.conflict).then_some((entry.trace_id(), span_id))
    }

    /// Remembers that request `id` belongs to trace `trace_id` (span `span_id`). The first
    /// span id of a trace stays (an application's first line of a request is most often its
    /// request span's); another trace id for the same request id makes it a conflict.
    pub fn remember(&mut self, id: &[u8], trace_id: u128, span_id: Option<u64>) {
        if self.capacity == 0 || id.is_empty() || id.len() > MAX_ID_LEN {
            return;
        }
        let (key, words) = key(id);
        let hash = hash(&key, words);
        if let Some(at) = self.find(&key, id.len(), hash) {
            let entry = &mut self.entries[at];
            entry.conflict |= entry.trace_id() != trace_id;
            return;
        }
        if self.slots.is_empty() {
            self.slots = vec![0; slot_count(self.capacity)];
            self.entries.reserve_exact(self.capacity);
        }
        let entry = Entry {
            hash,
            trace_high: (trace_id >> 64) as u64,
            trace_low: trace_id as u64,
            span_id: span_id.unwrap_or(0),
            id: key,
            len: id.len() as u8,
            conflict: false,
        };
        let at = self.next;
        if at < self.entries.len() {
            self.unlink(at);
            self.entries[at] = entry;
        } else {
            self.entries.push(entry);
        }
        self.next = (at + 1) % self.capacity;
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        while self.slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = at as u32 + 1;
    }

    /// The place of the entry for the id of `len` bytes that `key` holds.
    fn find(&self, key: &Key, len: usize, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            let at = (self.slots[slot] as usize).checked_sub(1)?;
            let entry = &self.entries[at];
            if entry.hash == hash && entry.len as usize == len && swar::same(&entry.id, key) {
                return Some(at);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Takes the entry at `at` out of the slots, moving back the entries probed past it so
    /// that every entry stays reachable from its home slot.
    fn unlink(&mut self, at: usize) {
        let mask = self.slots.len() - 1;
        let mut hole = self.entries[at].hash as usize & mask;
        while self.slots[hole] as usize != at + 1 {
            hole = (hole + 1) & mask;
        }
        let mut slot = hole;
        loop {
            slot = (slot + 1) & mask;
            let Some(other) = (self.slots[slot] as usize).checked_sub(1) else {
                break;
            };
            let home = self.entries[other].hash as usize & mask;
            // Moves back unless its home lies cyclically in (hole, slot].
            if (slot.wrapping_sub(home) & mask) >= (slot.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[slot];
                hole = slot;
            }
        }
        self.slots[hole] = 0;
    }
}

/// Twice the entries, a power of two: probes stay short.
fn slot_count(capacity: usize) -> usize {
    (capacity.max(1) * 2).next_power_of_two()
}

/// The first `words` words of `key`, multiplied and rotated, then mixed: request ids are
/// short, and only this process sees them.
fn hash(key: &Key, words: usize) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let h = (0..words).fold(words as u64, |h, i| {
        (h ^ swar::word(key, 8 * i)).wrapping_mul(K).rotate_left(29)
    });
    (h ^ h >> 32).wrapping_mul(K)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, VecDeque};

    #[test]
    fn remembers_and_forgets_the_oldest() {
        let mut ids = RequestIds::new(3);
        assert_eq!(ids.get(b"a"), None);
        for (n, id) in [b"a", b"b", b"c"].iter().enumerate() {
            ids.remember(*id, n as u128 + 1, Some(10 + n as u64));
        }
        assert_eq!(ids.get(b"a"), Some((1, Some(10))));
        ids.remember(b"d", 4, None);
        assert_eq!(ids.get(b"a"), None);
        assert_eq!(ids.get(b"b"), Some((2, Some(11))));
        assert_eq!(ids.get(b"d"), Some((4, None)));
    }

    #[test]
    fn the_first_span_stays_and_another_trace_is_a_conflict() {
        let mut ids = RequestIds::new(8);
        ids.remember(b"r1", 7, Some(1));
        ids.remember(b"r1", 7, Some(2));
        assert_eq!(ids.get(b"r1"), Some((7, Some(1))));
        ids.remember(b"r1", 8, Some(3));
        assert_eq!(ids.get(b"r1"), None);
        ids.remember(b"r1", 7, Some(1));
        assert_eq!(ids.get(b"r1"), None);
    }

    #[test]
    fn off_empty_and_long_ids_are_not_kept() {
        let mut off = RequestIds::new(0);
        off.remember(b"r", 1, None);
        assert_eq!(off.get(b"r"), None);
        let mut ids = RequestIds::new(4);
        let long = [b'x'; MAX_ID_LEN + 1];
        ids.remember(&long, 1, None);
        ids.remember(b"", 1, None);
        assert_eq!(ids.get(&long), None);
        assert_eq!(ids.get(b""), None);
        ids.remember(&long[..MAX_ID_LEN], 2, None);
        assert_eq!(ids.get(&long[..MAX_ID_LEN]), Some((2, None)));
    }

    #[test]
    fn the_default_takes_about_a_megabyte() {
        let bytes = RequestIds::memory(DEFAULT_ENTRIES);
        assert!((768 << 10..=1 << 20).contains(&bytes), "{bytes}");
    }

    proptest! {
        /// Against a model (a map and a queue of the latest ids): the same answers for every
        /// id, after any sequence, with few slots so that probes collide and wrap.
        #[test]
        fn agrees_with_a_model(
            capacity in 1usize..12,
            ops in prop::collection::vec((0u8..24, 1u128..4), 0..200),
        ) {
            let mut ids = RequestIds::new(capacity);
            let mut model: HashMap<Vec<u8>, (u128, bool)> = HashMap::new();
            let mut order: VecDeque<Vec<u8>> = VecDeque::new();
            for (id, trace) in ops {
                let id = format!("req-{id}").into_bytes();
                ids.remember(&id, trace, None);
                match model.get_mut(&id) {
                    Some((t, conflict)) => *conflict |= *t != trace,
                    None => {
                        if order.len() == capacity {
                            model.remove(&order.pop_front().unwrap());
                        }
                        order.push_back(id.clone());
                        model.insert(id, (trace, false));
                    }
                }
                for n in 0..24u8 {
                    let id = format!("req-{n}").into_bytes();
                    let want = model.get(&id).filter(|(_, c)| !c).map(|&(t, _)| (t, None));
                    prop_assert_eq!(ids.get(&id), want);
                }
            }
        }
    }
}
