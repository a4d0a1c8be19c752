//! Key names and what they mean, remembered across records.
//!
//! Log records of one stream repeat the same twenty-odd keys. Normalising a name and matching
//! it against the role tables costs far more than looking it up, so [`KeyCache`] keeps each
//! name it has seen with its [`Meaning`]. The same lookup also finds duplicate keys: each entry
//! remembers the last record that used it, so a repeat within a record is one comparison.

use crate::envoy::{self, Role};
use crate::read;
use crate::scan::swar::{half, same_name, word};
use crate::trace;

/// Names that envoy-dd writes or reads itself, matched exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    Other,
    Log,
    Dd,
    Hash,
    Phase,
    Http,
    Network,
    /// `grpc`, where the gRPC status goes.
    Grpc,
    /// `graphql`, where the logged GraphQL operation name goes.
    Graphql,
    Duration,
    /// `_log`, where displaced values go.
    Displaced,
}

/// What a key means to envoy-dd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meaning {
    pub name: Name,
    /// The role of its normalised form, if any.
    pub role: Option<Role>,
}

impl Meaning {
    /// Works out the meaning of a (decoded) key name.
    pub fn of(name: &[u8]) -> Meaning {
        let exact = match name {
            b"log" => Name::Log,
            b"dd" => Name::Dd,
            b"hash" => Name::Hash,
            b"phase" => Name::Phase,
            b"http" => Name::Http,
            b"network" => Name::Network,
            b"grpc" => Name::Grpc,
            b"graphql" => Name::Graphql,
            b"duration" => Name::Duration,
            b"_log" => Name::Displaced,
            _ => Name::Other,
        };
        let mut buf = [0u8; 32];
        let role = match exact {
            // `_log` holds what envoy-dd displaced; it is not the record's message.
            Name::Displaced => None,
            _ => trace::normalize_key(name, &mut buf).and_then(envoy::role),
        };
        Meaning { name: exact, role }
    }

    /// Whether the writer handles an envelope member of this meaning itself (besides `log`),
    /// rather than copying it (`_log` takes a `duration`'s milliseconds).
    pub fn special_on_envelope(self) -> bool {
        matches!(
            self.name,
            Name::Dd | Name::Hash | Name::Phase | Name::Displaced
        )
    }

    /// Whether the writer handles a member of the log of this meaning itself, rather than
    /// copying it (one that may move into a standard attribute among them).
    pub fn special_in_record(self) -> bool {
        matches!(
            self.name,
            Name::Dd | Name::Hash | Name::Phase | Name::Duration | Name::Displaced
        ) || self.role.is_some_and(Role::may_move)
    }

    /// Whether planning (`plan::Found`) does anything with a member of this meaning.
    pub fn scanned(self) -> bool {
        self.role.is_some()
            || matches!(
                self.name,
                Name::Dd
                    | Name::Hash
                    | Name::Phase
                    | Name::Http
                    | Name::Network
                    | Name::Grpc
                    | Name::Graphql
                    | Name::Duration
            )
    }
}

/// Which of a record's two objects a member belongs to (and which buffer it lives in): the
/// envelope is the top level around a `log` that is merged; the record is that parsed `log`,
/// or the top level itself when nothing is merged. Readers see the top level as the envelope
/// until they know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Envelope,
    Record,
}

/// What [`KeyCache::see`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The first use of this key at this level.
    First,
    /// The key was used before at the same level.
    Duplicate,
    /// A `log` key that the top level also has, at this member index.
    AlsoAtTop(u32),
}

/// The names seen so far, with their meanings and their last use.
#[derive(Default)]
pub(crate) struct KeyCache {
    /// Open addressing over `entries`: 0 is empty, otherwise entry index + 1.
    slots: Vec<u32>,
    entries: Vec<Entry>,
    /// The decoded names, back to back.
    names: Vec<u8>,
    /// Bumped per record; an entry stamped with it was used in the current record.
    generation: u32,
    /// Decoding space for the rare key that contains an escape.
    decoded: Vec<u8>,
    /// The key ids of the previous record, per side and position: records of one stream
    /// repeat their keys in the same order, so the guess is usually right and saves hashing.
    previous: [Vec<u32>; 2],
    /// Bumped whenever the cache starts afresh, which invalidates every id handed out.
    epoch: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    hash: u32,
    name: (u32, u32),
    meaning: Meaning,
    top_generation: u32,
    top_member: u32,
    log_generation: u32,
}

/// A stream with more distinct names than this (random keys, say) is not worth remembering:
/// the cache starts afresh between records rather than grow without bound.
const MAX_NAMES: usize = 4096;

impl KeyCache {
    /// Starts a new record: forgets which keys the previous one used.
    pub fn start_record(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 || self.entries.len() > MAX_NAMES {
            self.slots.iter_mut().for_each(|s| *s = 0);
            self.previous.iter_mut().for_each(Vec::clear);
            self.entries.clear();
            self.names.clear();
            self.generation = 1;
            self.epoch = self.epoch.wrapping_add(1);
        }
    }

    /// Changes when ids handed out before stop being valid (see [`Self::start_record`]).
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The id of the key of member `index` on `side`, as [`Self::lookup`] gives it, trying
    /// the previous record's key at the same place first.
    #[inline(always)]
    pub fn lookup_at(&mut self, side: Side, index: usize, raw: &[u8], escaped: bool) -> u32 {
        let previous = &mut self.previous[side as usize];
        if let Some(&guess) = previous.get(index) {
            let (start, end) = self.entries[guess as usize].name;
            if !escaped && same_name(&self.names[start as usize..end as usize], raw) {
                return guess;
            }
        }
        self.lookup_and_remember(side, index, raw, escaped)
    }

    /// [`Self::lookup_at`] when the guess was wrong: out of line, so the guess stays small
    /// enough to inline.
    #[inline(never)]
    fn lookup_and_remember(&mut self, side: Side, index: usize, raw: &[u8], escaped: bool) -> u32 {
        let id = self.lookup(raw, escaped);
        let previous = &mut self.previous[side as usize];
        if index < previous.len() {
            previous[index] = id;
        } else if index == previous.len() {
            previous.push(id);
        }
        id
    }

    /// The id of a key, given as it appears in JSON (without quotes, `escaped` if it contains
    /// a backslash). Equal names get equal ids, however they were escaped.
    #[inline]
    pub fn lookup(&mut self, raw: &[u8], escaped: bool) -> u32 {
        if !escaped {
            return self.lookup_decoded(raw);
        }
        let mut decoded = core::mem::take(&mut self.decoded);
        decoded.clear();
        read::unescape_into(raw, &mut decoded);
        let id = self.lookup_decoded(&decoded);
        self.decoded = decoded;
        id
    }

    fn lookup_decoded(&mut self, name: &[u8]) -> u32 {
        let hash = hash(name);
        if self.slots.len() < 2 * (self.entries.len() + 1) {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                0 => break,
                slot => {
                    let entry = &self.entries[slot as usize - 1];
                    let (start, end) = entry.name;
                    if entry.hash == hash
                        && same_name(&self.names[start as usize..end as usize], name)
                    {
                        return slot - 1;
                    }
                }
            }
            i = (i + 1) & mask;
        }
        let id = self.entries.len() as u32;
        let start = self.names.len() as u32;
        self.names.extend_from_slice(name);
        self.entries.push(Entry {
            hash,
            name: (start, self.names.len() as u32),
            meaning: Meaning::of(name),
            top_generation: 0,
            top_member: 0,
            log_generation: 0,
        });
        self.slots[i] = id + 1;
        id
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        self.slots.clear();
        self.slots.resize(size, 0);
        let mask = size - 1;
        for (id, entry) in self.entries.iter().enumerate() {
            let mut i = entry.hash as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = id as u32 + 1;
        }
    }

    /// The meaning of key `id`.
    #[inline]
    pub fn meaning(&self, id: u32) -> Meaning {
        self.entries[id as usize].meaning
    }

    /// Records that member `member` on `side` of the current record uses key `id`.
    #[inline]
    pub fn see(&mut self, id: u32, side: Side, member: u32) -> Seen {
        let generation = self.generation;
        let entry = &mut self.entries[id as usize];
        match side {
            Side::Envelope if entry.top_generation == generation => Seen::Duplicate,
            Side::Envelope => {
                entry.top_generation = generation;
                entry.top_member = member;
                Seen::First
            }
            Side::Record if entry.log_generation == generation => Seen::Duplicate,
            Side::Record => {
                entry.log_generation = generation;
                match entry.top_generation == generation {
                    true => Seen::AlsoAtTop(entry.top_member),
                    false => Seen::First,
                }
            }
        }
    }

    /// The top-level member of the current record that uses key `id`, if any.
    #[inline]
    pub fn at_top(&self, id: u32) -> Option<u32> {
        let entry = &self.entries[id as usize];
        (entry.top_generation == self.generation).then_some(entry.top_member)
    }
}

/// A fast non-cryptographic hash of a short name. Reads whole words only (the last one
/// overlapping), because copying a name's tail byte by byte costs more than hashing it.
#[inline]
fn hash(bytes: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let len = bytes.len();
    let mut h = len as u64;
    if len >= 8 {
        let mut i = 0;
        while i + 8 < len {
            h = mix(h, word(bytes, i));
            i += 8;
        }
        h = mix(h, word(bytes, len - 8));
    } else if len >= 4 {
        h = mix(
            h,
            (half(bytes, 0) as u64) << 32 | half(bytes, len - 4) as u64,
        );
    } else if len > 0 {
        h = mix(
            h,
            (bytes[0] as u64) << 16 | (bytes[len / 2] as u64) << 8 | bytes[len - 1] as u64,
        );
    }
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceKey;

    #[test]
    fn meanings() {
        assert_eq!(Meaning::of(b"dd").name, Name::Dd);
        assert_eq!(
            Meaning::of(b"duration"),
            Meaning {
                name: Name::Duration,
                role: Some(Role::Duration)
            }
        );
        assert_eq!(
            Meaning::of(b"X-Datadog-Trace-Id").role,
            Some(Role::Trace(TraceKey::DatadogTrace))
        );
        assert_eq!(Meaning::of(b"Duration").name, Name::Other);
        assert_eq!(
            Meaning::of(b"_log"),
            Meaning {
                name: Name::Displaced,
                role: None
            }
        );
        assert_eq!(Meaning::of(b"log").role, Some(Role::Message));
        // `Found::member` dispatches on the role: the names it looks at besides `duration`
        // must have none.
        for (key, name) in [
            (&b"dd"[..], Name::Dd),
            (b"hash", Name::Hash),
            (b"phase", Name::Phase),
            (b"http", Name::Http),
            (b"network", Name::Network),
            (b"grpc", Name::Grpc),
        ] {
            assert_eq!(Meaning::of(key), Meaning { name, role: None });
        }
        assert_eq!(
            Meaning::of(b"upstream_host"),
            Meaning {
                name: Name::Other,
                role: None
            }
        );
    }

    #[test]
    fn equal_names_share_an_id_however_escaped() {
        let mut cache = KeyCache::default();
        cache.start_record();
        let a = cache.lookup(b"path", false);
        assert_eq!(cache.lookup(br"p\u0061th", true), a);
        assert_ne!(cache.lookup(b"paths", false), a);
        assert_eq!(cache.lookup(b"path", false), a);
    }

    #[test]
    fn guesses_from_the_previous_record_are_checked() {
        let mut cache = KeyCache::default();
        cache.start_record();
        let a = cache.lookup_at(Side::Record, 0, b"a", false);
        let b = cache.lookup_at(Side::Record, 1, b"b", false);
        cache.start_record();
        assert_eq!(cache.lookup_at(Side::Record, 0, b"a", false), a);
        assert_eq!(cache.lookup_at(Side::Record, 1, b"a", false), a);
        assert_eq!(cache.lookup_at(Side::Record, 1, b"b", false), b);
        assert_eq!(cache.lookup_at(Side::Envelope, 0, b"b", false), b);
        assert_eq!(cache.lookup_at(Side::Envelope, 0, br"\u0062", true), b);
        assert_ne!(cache.lookup_at(Side::Record, 5, b"c", false), a);
    }

    #[test]
    fn duplicates_and_collisions() {
        let mut cache = KeyCache::default();
        for _ in 0..3 {
            cache.start_record();
            let (a, b) = (cache.lookup(b"a", false), cache.lookup(b"b", false));
            assert_eq!(cache.see(a, Side::Envelope, 0), Seen::First);
            assert_eq!(cache.see(a, Side::Envelope, 1), Seen::Duplicate);
            assert_eq!(cache.see(a, Side::Record, 0), Seen::AlsoAtTop(0));
            assert_eq!(cache.see(b, Side::Record, 1), Seen::First);
            assert_eq!(cache.see(b, Side::Record, 2), Seen::Duplicate);
            assert_eq!(cache.at_top(a), Some(0));
            assert_eq!(cache.at_top(b), None);
        }
    }

    #[test]
    fn hash_and_equality_over_every_length() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for len in 0..text.len() {
            let name = &text[..len];
            assert!(same_name(name, name));
            let mut other = name.to_vec();
            for at in 0..len {
                other[at] ^= 1;
                assert!(!same_name(name, &other), "{len} {at}");
                assert_ne!(hash(name), hash(&other), "{len} {at}");
                other[at] ^= 1;
            }
        }
    }

    #[test]
    fn many_names_grow_then_start_afresh() {
        let mut cache = KeyCache::default();
        for round in 0..3 {
            cache.start_record();
            let ids: Vec<u32> = (0..5000)
                .map(|i| cache.lookup(format!("k{round}-{i}").as_bytes(), false))
                .collect();
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(cache.lookup(format!("k{round}-{i}").as_bytes(), false), id);
                assert_eq!(cache.see(id, Side::Envelope, i as u32), Seen::First);
            }
        }
    }
}
