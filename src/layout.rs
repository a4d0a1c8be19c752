//! Learned record layouts: the fast way to read a stream whose records repeat their keys.
//!
//! The records of one Envoy sidecar all have the same keys in the same order: FireLens adds
//! the same envelope (`container_id`, `source`, `log`, `ecs_cluster`, ...) and Envoy writes
//! the same access-log format into `log`. The general reader ([`crate::read`]) finds this out
//! again for every record: it scans each key, looks it up, checks it for duplicates, decodes
//! the escaped `log` string into a buffer and then reads that buffer a second time.
//!
//! A [`Layout`] remembers what the general path found for one such record: the keys, byte for
//! byte, with their ids and meanings, and which member is `log`. A later record is then read in
//! one pass that compares each key with the expected bytes and decodes `log` while collecting
//! its members, straight from the escaped form. It produces exactly what the general reader
//! would have (the same member spans, the same decoded `log`), so the rest of the transform
//! does not know which reader ran. Anything unexpected (another key, white space, an escape
//! inside a value of `log`, a nested value in `log`) makes it give up, and the general reader
//! reads the record instead. A layout also tells the writer which members need more than
//! copying, and which mean something, so that the others cost nothing per member; and when
//! every byte it passed was ASCII, the record needs no separate UTF-8 validation.
//!
//! A layout also keeps the envelope of the last record it read, byte for byte ([`LastEnvelope`]):
//! FireLens writes the same envelope into every record of a container, so a record whose bytes
//! before and after `log` are the last record's has its envelope members found by comparing
//! those bytes, and only `log` is read.
//!
//! Records whose `log` holds text (an Envoy text access log, Envoy's own messages, an
//! application's plain lines) have layouts too, of the envelope alone: `log` is decoded whole
//! and the transform goes on with it as if the general reader had read the record. A layout
//! tells JSON from text by the first byte of `log`, and hands a record of the other kind to
//! a layout that agrees on the members before `log`.
//!
//! A layout is learned only from a record the general path read successfully, after the same
//! keys were seen three times in a row, and only after the fast reader has read that record
//! back to the same result. Layouts must pay their way: the bytes they read count for them,
//! the bytes that failed attempts and learning went through count against them, and when the
//! balance runs out they rest for a number of records (longer each time, up to
//! [`MAX_REST`]), so a stream whose records do not repeat pays little for them.

use crate::keys::Meaning;
use crate::read::{self, Kind, Member, Span};
use crate::scan;

/// The most layouts kept at once: a sidecar's stream has one or two (access logs with and
/// without a field that some tasks add, say); more would only cost failed attempts.
const MAX_LAYOUTS: usize = 4;

/// Limits of what is learned, so that learning never allocates once a transformer is warm:
/// every buffer below is allocated at these sizes, once, and never grows. A record with more
/// keys is read by the general reader; one larger than `MAX_LEARNED_RECORD` is not learned
/// from, but a layout learned from a smaller one reads it.
const MAX_KEYS: usize = 128;
const MAX_KEY_BYTES: usize = 8 * 1024;
const MAX_LEARNED_RECORD: usize = 16 * 1024;

/// How long an envelope [`LastEnvelope`] keeps may be, in bytes before and after `log`.
const MAX_LAST_ENVELOPE: usize = 2048;
/// After this many records in a row whose envelope was not the previous record's, a layout
/// stops comparing envelopes for [`ENVELOPE_REST`] records.
const ENVELOPE_MISSES: u16 = 3;
const ENVELOPE_REST: u16 = 256;

/// The bounds of [`Layouts::credit`], in bytes, and of a rest, in records.
const MAX_CREDIT: i64 = 16 * 1024;
const MIN_REST: u32 = 64;
const MAX_REST: u32 = 4096;

/// The keys of one kind of record, and where `log` is among them.
pub(crate) struct Layout {
    /// The byte strings to expect and write, back to back, each key with the byte before it
    /// (`{` or `,`), its quotes and colon:
    /// * each envelope key as it is written: `,"source":`;
    /// * each key of the object inside `log`, as escaped inside the string: `,\"method\":`;
    /// * the same keys decoded: `,"method":`;
    /// * what ends the `log` string, escaped (`}\n"`), and the same decoded (`}` and a
    ///   newline, without the quote).
    ///
    /// Eight zero bytes follow the last, so that they can be copied a word at a time.
    bytes: Vec<u8>,
    /// Where each of those ends in `bytes`.
    ends: Vec<u32>,
    /// The same strings, each as words to compare and copy at once.
    literals: Vec<Literal>,
    /// The key ids: the envelope's, then the record's.
    ids: Vec<u32>,
    /// The members the writer must look at one by one (the others are copied as they are):
    /// `log` and those named `dd`, `hash` or `phase` in the envelope, then those named `dd`,
    /// `hash`, `phase` or `duration` in the record.
    specials: Vec<u32>,
    envelope_specials: usize,
    /// The members that mean something to the transform (see `Meaning::scanned`), with
    /// their meanings: the envelope's (but `log`), then the record's.
    scanned: Vec<(u32, Meaning)>,
    envelope_scanned: usize,
    envelope_len: usize,
    record_len: usize,
    /// The envelope member whose string value holds the log.
    log_index: usize,
    /// The log is text, not a JSON object: it is decoded whole, and there are no record
    /// keys or tail parts.
    text_log: bool,
    /// A key means `_log` (see the transform's collision rules).
    uses_displaced: bool,
    /// The key cache epoch the ids belong to.
    epoch: u32,
    /// The envelope of the last record this layout read.
    last: LastEnvelope,
}

/// The envelope of the last record a layout read, byte for byte: what comes before `log`'s
/// member and what comes after its value. A log router serves the containers of one task, and
/// FireLens writes the same envelope into every record of a container: when a record's bytes
/// there are the same, so are its envelope members, found by comparing instead of reading.
struct LastEnvelope {
    /// That record's bytes before `log`'s member (up to the `,` or `{` before its key, that
    /// byte excluded) and after `log`'s value (to the end of the record).
    before: Vec<u8>,
    after: Vec<u8>,
    /// Where `after` started in that record.
    after_start: u32,
    /// The envelope members read from that record.
    members: Vec<Member>,
    /// Every byte of `before` and `after` is ASCII.
    ascii: bool,
    /// An envelope is kept, and the next record's is to be compared with it.
    compare: bool,
    /// How many records in a row had another envelope than the one before (see
    /// [`ENVELOPE_MISSES`]).
    misses: u16,
}

impl LastEnvelope {
    fn empty() -> LastEnvelope {
        LastEnvelope {
            before: Vec::with_capacity(MAX_LAST_ENVELOPE),
            after: Vec::with_capacity(MAX_LAST_ENVELOPE),
            after_start: 0,
            members: Vec::with_capacity(MAX_KEYS),
            ascii: false,
            compare: false,
            misses: 0,
        }
    }

    fn forget(&mut self) {
        self.compare = false;
        self.misses = 0;
    }

    /// Whether `input` starts with the envelope before `log`.
    #[inline(always)]
    fn starts(&self, input: &[u8]) -> bool {
        self.compare
            && input
                .get(..self.before.len())
                .is_some_and(|b| scan::same(b, &self.before))
    }

    /// Whether `input` ends with the envelope after `log`, from `pos`.
    #[inline(always)]
    fn ends(&self, input: &[u8], pos: usize) -> bool {
        self.compare && input.get(pos..).is_some_and(|a| scan::same(a, &self.after))
    }

    /// Notes whether a record's envelope was the last one's, and keeps the record's (read
    /// into `envelope`, `log` at `log_index`) when the next one is to be compared with it.
    fn note(&mut self, input: &[u8], envelope: &[Member], log_index: usize, same: bool) {
        if same {
            self.misses = 0;
            return;
        }
        self.misses += 1;
        if self.misses == ENVELOPE_MISSES + ENVELOPE_REST {
            // Rested: the next record is compared again, once.
            self.misses = ENVELOPE_MISSES - 1;
        }
        self.compare = false;
        if self.misses >= ENVELOPE_MISSES {
            return;
        }
        let log = &envelope[log_index];
        let (before, after) = (log.key.start as usize - 2, log.value.end as usize);
        let (Some(head), Some(tail)) = (input.get(..before), input.get(after..)) else {
            return;
        };
        if head.len() > MAX_LAST_ENVELOPE || tail.len() > MAX_LAST_ENVELOPE {
            return;
        }
        self.before.clear();
        self.before.extend_from_slice(head);
        self.after.clear();
        self.after.extend_from_slice(tail);
        self.after_start = after as u32;
        self.members.clear();
        self.members.extend_from_slice(envelope);
        self.ascii = head.is_ascii() && tail.is_ascii();
        self.compare = true;
    }
}

/// The layouts learned so far, and what is needed to learn another.
#[derive(Default)]
pub(crate) struct Layouts {
    layouts: Vec<Layout>,
    /// The layout that read the previous record, tried first.
    last_hit: usize,
    /// Where the next learned layout goes once all places are taken.
    next_slot: usize,
    /// A digest of the keys of the last record the general path read, and how many records
    /// before it had the same keys.
    last_keys: u64,
    repeats: u8,
    /// How many records a layout read.
    pub hits: u64,
    /// Bytes that layouts saved (records they read) less bytes they wasted (failed attempts,
    /// learning): in a stream whose records do not repeat their keys, layouts cost more than
    /// they save, and rest once this falls below `-MAX_CREDIT`.
    credit: i64,
    /// Records left to read without trying layouts.
    resting: u32,
    /// How long the next rest is.
    rest_next: u32,
    /// Where a layout is built and checked before it is kept.
    candidate: Option<Box<Candidate>>,
    /// Empty layouts for the places not taken yet.
    spare: Vec<Layout>,
    /// For each two layouts, how many leading envelope members they agree on (keys, ids
    /// and, for `log`, everything inside it).
    agree: [[u16; MAX_LAYOUTS]; MAX_LAYOUTS],
}

/// Why a layout did not read a record.
#[derive(Clone, Copy)]
enum Stop {
    /// Envelope member `member`, at `pos`, is not the expected key (or the record ends, or
    /// does not end, before it), or it is a `log` of the other kind (JSON or text). What came
    /// before was read.
    OtherKey { member: usize, pos: usize },
    /// Anything else.
    Failed,
}

struct Candidate {
    layout: Layout,
    envelope: Vec<Member>,
    record: Vec<Member>,
    log: Vec<u8>,
}

/// What the fast reader produced, besides the members and the decoded `log`.
#[derive(Clone, Copy)]
pub(crate) struct Hit {
    /// Which layout read the record (see [`Layouts::ids`], [`Layouts::specials`]).
    pub layout: usize,
    pub log_index: usize,
    /// The layout's `log` is text: `record` is left empty, and the transform goes on as for
    /// a record the general reader read, but without reading the envelope again.
    pub text_log: bool,
    pub uses_displaced: bool,
    /// Every byte of the record is ASCII, so it needs no UTF-8 validation.
    pub ascii: bool,
}

/// Whether every byte read so far is sure to be ASCII. Keys are the learned bytes, and numbers
/// and literals are ASCII when valid; string values are scanned to their first non-ASCII
/// byte, and anything read by the general reader makes it unsure.
#[derive(Default)]
struct Ascii {
    unsure: bool,
}

impl Ascii {
    fn sure(&self) -> bool {
        !self.unsure
    }
}

/// The buffers a layout reads into.
type Buffers<'b> = (
    &'b mut Vec<Member>,
    &'b mut Vec<Member>,
    &'b mut Vec<u8>,
    &'b mut read::Stack,
);

/// What the general path read: the envelope, the decoded `log` and its members, with ids.
pub(crate) struct Learned<'a> {
    pub envelope: &'a [Member],
    pub envelope_ids: &'a [u32],
    pub log_index: usize,
    pub log: &'a [u8],
    pub record: &'a [Member],
    pub record_ids: &'a [u32],
    pub uses_displaced: bool,
    /// `log` is text (an Envoy text access log, a plain message), not a JSON object:
    /// `record` and `record_ids` are empty.
    pub text_log: bool,
}

impl Layouts {
    /// Reads `input` with a learned layout, filling `envelope`, `record` and `log` exactly as
    /// the general reader would (with `log` decoded). `None` if no layout fits; the buffers
    /// then hold debris.
    pub fn read(
        &mut self,
        input: &[u8],
        epoch: u32,
        envelope: &mut Vec<Member>,
        record: &mut Vec<Member>,
        log: &mut Vec<u8>,
        stack: &mut read::Stack,
    ) -> Option<Hit> {
        if self.resting > 0 {
            self.resting -= 1;
            return None;
        }
        let count = self.layouts.len();
        let mut ascii = Ascii::default();
        stack.take_repeated();
        let mut untried = (1u32 << count) - 1;
        // Roughly how many bytes the failed attempts went through.
        let mut wasted = 0;
        let (mut current, mut member, mut pos) = (self.last_hit, 0, 0);
        while untried != 0 {
            untried &= !(1 << current);
            let layout = &self.layouts[current];
            if layout.epoch != epoch {
                // Its key ids are stale (the key cache started afresh): it is never tried.
                (current, member, pos) = (untried.trailing_zeros() as usize, 0, 0);
                continue;
            }
            let buffers = (&mut *envelope, &mut *record, &mut *log, &mut *stack);
            match layout.read_from(input, member, pos, buffers, &mut ascii) {
                // A nested object that repeats a key is left to the general reader, which
                // notes it for the writer.
                Ok(_) if stack.take_repeated() => break,
                Ok(same_envelope) => {
                    self.last_hit = current;
                    self.hits += 1;
                    self.credit = (self.credit + input.len() as i64).min(MAX_CREDIT);
                    if self.credit == MAX_CREDIT {
                        // Layouts pay in this stream: should they stop paying, rest briefly.
                        self.rest_next = MIN_REST;
                    }
                    let hit = Hit {
                        layout: current,
                        log_index: layout.log_index,
                        text_log: layout.text_log,
                        uses_displaced: layout.uses_displaced,
                        ascii: ascii.sure(),
                    };
                    let last = &mut self.layouts[current].last;
                    last.note(input, envelope, hit.log_index, same_envelope);
                    return Some(hit);
                }
                // Another key than expected: a layout that agrees on the members read so far
                // goes on from here (records of one stream often differ only at the end).
                Err(Stop::OtherKey {
                    member: at,
                    pos: here,
                }) => {
                    wasted += here.saturating_sub(pos);
                    let agrees = (0..count).find(|&other| {
                        untried & (1 << other) != 0 && self.agree[current][other] as usize >= at
                    });
                    (current, member, pos) = match agrees {
                        Some(other) => (other, at, here),
                        None => (untried.trailing_zeros() as usize, 0, 0),
                    };
                }
                Err(Stop::Failed) => {
                    wasted += input.len();
                    (current, member, pos) = (untried.trailing_zeros() as usize, 0, 0)
                }
            }
        }
        self.spend(wasted);
        None
    }

    /// Takes `bytes` of work that did not pay off from the credit; when the credit runs out,
    /// layouts rest for a while: longer each time, until the credit is full again.
    fn spend(&mut self, bytes: usize) {
        self.credit -= bytes as i64;
        if self.credit < -MAX_CREDIT {
            self.credit = 0;
            self.resting = self.rest_next.max(MIN_REST);
            self.rest_next = (2 * self.resting).min(MAX_REST);
        }
    }

    /// The key ids of the envelope and of the record, for a record `layout` read.
    pub fn ids(&self, layout: usize) -> [&[u32]; 2] {
        let layout = &self.layouts[layout];
        let (envelope, record) = layout.ids.split_at(layout.envelope_len);
        [envelope, record]
    }

    /// The members of the envelope and of the record that need more than copying (see
    /// [`Layout::specials`]).
    pub fn specials(&self, layout: usize) -> [&[u32]; 2] {
        let layout = &self.layouts[layout];
        let (envelope, record) = layout.specials.split_at(layout.envelope_specials);
        [envelope, record]
    }

    /// The members of the envelope and of the record that mean something, with their
    /// meanings.
    pub fn scanned(&self, layout: usize) -> [&[(u32, Meaning)]; 2] {
        let layout = &self.layouts[layout];
        let (envelope, record) = layout.scanned.split_at(layout.envelope_scanned);
        [envelope, record]
    }

    /// Called after the general path read a record with a JSON `log` and no collisions, or
    /// with a text `log`: learns its layout when the two records before had the same keys and
    /// the fast reader reads this record back to the same result.
    pub fn consider(
        &mut self,
        input: &[u8],
        read: Learned<'_>,
        epoch: u32,
        stack: &mut read::Stack,
        meaning_of: impl Fn(u32) -> Meaning,
    ) {
        let digest = read.digest();
        self.repeats = match digest == self.last_keys {
            true => self.repeats.saturating_add(1),
            false => 0,
        };
        self.last_keys = digest;
        if self.repeats < 2 || input.len() > MAX_LEARNED_RECORD || self.resting > 0 {
            return;
        }
        // Learning reads the record again; a layout that never reads another wastes that.
        self.spend(2 * input.len());
        if self.candidate.is_none() {
            // Everything learning will ever need, at once: learning never allocates again,
            // and a long-running Fluent Bit instance keeps a flat memory.
            self.candidate = Some(Box::new(Candidate {
                layout: Layout::empty(),
                envelope: Vec::with_capacity(MAX_KEYS),
                record: Vec::with_capacity(MAX_KEYS),
                log: Vec::with_capacity(MAX_LEARNED_RECORD + read::DECODE_SPARE),
            }));
            self.layouts.reserve_exact(MAX_LAYOUTS);
            self.spare = (0..MAX_LAYOUTS).map(|_| Layout::empty()).collect();
        }
        let Some(c) = self.candidate.as_deref_mut() else {
            return;
        };
        if !c.layout.learn(input, &read, epoch, meaning_of) {
            return;
        }
        let buffers = (&mut c.envelope, &mut c.record, &mut c.log, stack);
        let same = c
            .layout
            .read_from(input, 0, 0, buffers, &mut Ascii::default())
            .is_ok()
            && c.envelope == read.envelope
            && c.record == read.record
            && c.log == read.log;
        if !same {
            return;
        }
        let slot = if let Some(spare) = self.spare.pop() {
            self.layouts.push(spare);
            self.layouts.len() - 1
        } else {
            let slot = self.next_slot;
            self.next_slot = (slot + 1) % MAX_LAYOUTS;
            slot
        };
        core::mem::swap(&mut self.layouts[slot], &mut c.layout);
        self.last_hit = slot;
        for other in 0..self.layouts.len() {
            let agree = self.layouts[slot].agreement(&self.layouts[other]);
            self.agree[slot][other] = agree;
            self.agree[other][slot] = agree;
        }
    }
}

impl Learned<'_> {
    /// A digest of the key ids, to notice a stream repeating its keys.
    fn digest(&self) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.log_index as u64 ^ (self.text_log as u64) << 32;
        for &id in self
            .envelope_ids
            .iter()
            .chain([u32::MAX].iter())
            .chain(self.record_ids)
        {
            h = (h ^ id as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

impl Layout {
    /// A layout that fits no record, with its buffers at their final sizes.
    fn empty() -> Layout {
        Layout {
            bytes: Vec::with_capacity(MAX_KEY_BYTES),
            ends: Vec::with_capacity(3 * MAX_KEYS + 2),
            literals: Vec::with_capacity(3 * MAX_KEYS + 2),
            ids: Vec::with_capacity(2 * MAX_KEYS),
            specials: Vec::with_capacity(2 * MAX_KEYS),
            envelope_specials: 0,
            scanned: Vec::with_capacity(2 * MAX_KEYS),
            envelope_scanned: 0,
            envelope_len: 0,
            record_len: 0,
            log_index: usize::MAX,
            text_log: false,
            uses_displaced: false,
            epoch: u32::MAX,
            last: LastEnvelope::empty(),
        }
    }

    /// Becomes the layout of a record the general path read, if it is one the fast reader
    /// handles: compact (no white space), keys without escapes, and a `log` holding a flat
    /// object or text, all within the limits above. Returns whether it did.
    fn learn(
        &mut self,
        input: &[u8],
        read: &Learned<'_>,
        epoch: u32,
        meaning_of: impl Fn(u32) -> Meaning,
    ) -> bool {
        self.bytes.clear();
        self.ends.clear();
        self.literals.clear();
        self.ids.clear();
        self.specials.clear();
        self.scanned.clear();
        self.last.forget();
        self.epoch = u32::MAX;
        // What follows the object in a JSON `log` (a newline, say); a text `log` has no parts.
        let tail = match (read.text_log, read.record.last()) {
            (true, _) => &[][..],
            (false, Some(last)) => match read.log.get(last.value.end as usize + 1..) {
                Some(tail) => tail,
                None => return false,
            },
            (false, None) => return false,
        };
        let names: usize = (read.envelope.iter().chain(read.record))
            .map(|m| (m.key.end - m.key.start) as usize)
            .sum();
        let bytes = 2 * names + 6 * (read.envelope.len() + 2 * read.record.len()) + 3 * tail.len();
        if read.envelope.len() > MAX_KEYS
            || read.record.len() > MAX_KEYS
            || bytes + 16 > MAX_KEY_BYTES
        {
            return false;
        }
        let compact = |buf: &[u8], m: &Member| {
            let (start, end) = (m.key.start as usize, m.key.end as usize);
            !m.key_escaped
                && start >= 2
                && buf.get(end + 1) == Some(&b':')
                && m.value.start as usize == end + 2
        };
        for m in read.envelope {
            if !compact(input, m) {
                return false;
            }
            let (start, end) = (m.key.start as usize, m.key.end as usize);
            self.bytes.extend_from_slice(&input[start - 2..end + 2]);
            self.ends.push(self.bytes.len() as u32);
        }
        for escaped in [true, false] {
            for m in read.record {
                let name = m.key.of(read.log);
                // Inside the `log` string, a key's quotes are escaped, and nothing else may
                // need escaping.
                let plain = |&b: &u8| b >= 0x20 && b != b'"' && b != b'\\' && b != b'/';
                if !compact(read.log, m) || !name.iter().all(plain) {
                    return false;
                }
                let quote: &[u8] = if escaped { b"\\\"" } else { b"\"" };
                self.bytes.push(read.log[m.key.start as usize - 2]);
                self.bytes.extend_from_slice(quote);
                self.bytes.extend_from_slice(name);
                self.bytes.extend_from_slice(quote);
                self.bytes.push(b':');
                self.ends.push(self.bytes.len() as u32);
            }
        }
        if !read.text_log {
            self.bytes.push(b'}');
            for &b in tail {
                match b {
                    b' ' => self.bytes.push(b' '),
                    b'\n' => self.bytes.extend_from_slice(b"\\n"),
                    b'\r' => self.bytes.extend_from_slice(b"\\r"),
                    b'\t' => self.bytes.extend_from_slice(b"\\t"),
                    _ => return false,
                }
            }
            self.bytes.push(b'"');
            self.ends.push(self.bytes.len() as u32);
            self.bytes.push(b'}');
            self.bytes.extend_from_slice(tail);
            self.ends.push(self.bytes.len() as u32);
        }
        self.bytes.extend_from_slice(&[0; 8]);
        for i in 0..self.ends.len() {
            let (start, end) = self.part(i);
            self.literals.push(Literal::new(&self.bytes[start..end]));
        }
        self.ids.extend_from_slice(read.envelope_ids);
        self.ids.extend_from_slice(read.record_ids);
        for (i, &id) in read.envelope_ids.iter().enumerate() {
            let meaning = meaning_of(id);
            if i == read.log_index || meaning.special_on_envelope() {
                self.specials.push(i as u32);
            }
            if i != read.log_index && meaning.scanned() {
                self.scanned.push((i as u32, meaning));
            }
        }
        self.envelope_specials = self.specials.len();
        self.envelope_scanned = self.scanned.len();
        for (i, &id) in read.record_ids.iter().enumerate() {
            let meaning = meaning_of(id);
            if meaning.special_in_record() {
                self.specials.push(i as u32);
            }
            if meaning.scanned() {
                self.scanned.push((i as u32, meaning));
            }
        }
        self.envelope_len = read.envelope.len();
        self.record_len = read.record.len();
        self.log_index = read.log_index;
        self.text_log = read.text_log;
        self.uses_displaced = read.uses_displaced;
        self.epoch = epoch;
        true
    }

    /// Where the `i`th of the byte strings in `bytes` starts and ends.
    #[inline(always)]
    fn part(&self, i: usize) -> (usize, usize) {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        (start, self.ends[i] as usize)
    }

    /// The position after part `i` if `input` has it at `pos`.
    #[inline(always)]
    fn expect(&self, input: &[u8], pos: usize, i: usize) -> Option<usize> {
        self.expect_literal(input, pos, &self.literals[i], i)
    }

    /// [`Layout::expect`] with the part's literal at hand.
    #[inline(always)]
    fn expect_literal(
        &self,
        input: &[u8],
        pos: usize,
        literal: &Literal,
        i: usize,
    ) -> Option<usize> {
        let len = literal.len as usize;
        let end = pos + len;
        let found = match input
            .get(pos..)
            .and_then(<[u8]>::first_chunk::<LITERAL_BYTES>)
        {
            Some(chunk) if len <= LITERAL_BYTES => literal.is_at(chunk),
            // The last keys of a record, less than a chunk from its end: compared the same
            // way, from a copy (in Wasm, a `memcmp` goes a byte at a time).
            _ if len <= LITERAL_BYTES => {
                let mut chunk = [0; LITERAL_BYTES];
                chunk[..len].copy_from_slice(input.get(pos..end)?);
                literal.is_at(&chunk)
            }
            _ => {
                let (start, stop) = self.part(i);
                input.get(pos..end)? == &self.bytes[start..stop]
            }
        };
        found.then_some(end)
    }

    /// Writes part `i` to `dst` at `o` (and up to [`LITERAL_BYTES`] past it, where there is
    /// room); returns the position after it.
    #[inline(always)]
    fn put(&self, dst: &mut [u8], o: usize, i: usize) -> Option<usize> {
        self.put_literal(dst, o, &self.literals[i], i)
    }

    /// [`Layout::put`] with the part's literal at hand.
    #[inline(always)]
    fn put_literal(&self, dst: &mut [u8], o: usize, literal: &Literal, i: usize) -> Option<usize> {
        let len = literal.len as usize;
        match dst
            .get_mut(o..)
            .and_then(<[u8]>::first_chunk_mut::<LITERAL_BYTES>)
        {
            Some(room) if len <= LITERAL_BYTES => literal.write(room),
            _ => {
                let (start, _) = self.part(i);
                copy(dst, o, &self.bytes, start, len)?;
            }
        }
        Some(o + len)
    }

    /// How many leading envelope members `self` and `other` read alike.
    fn agreement(&self, other: &Layout) -> u16 {
        let same_log = self.log_index == other.log_index
            && self.text_log == other.text_log
            && self.record_len == other.record_len
            && self.ids[self.envelope_len..] == other.ids[other.envelope_len..]
            && (0..self.log_parts()).all(|i| {
                let [a, b] = [self, other].map(|l| {
                    let (start, end) = l.part(l.envelope_len + i);
                    &l.bytes[start..end]
                });
                a == b
            });
        let mut agree = 0;
        while agree < self.envelope_len.min(other.envelope_len)
            && self.ids[agree] == other.ids[agree]
            && self.bytes[self.range(agree)] == other.bytes[other.range(agree)]
            && (agree != self.log_index || same_log)
            && (agree != other.log_index || same_log)
        {
            agree += 1;
        }
        agree as u16
    }

    /// How many of the byte strings belong to `log`: its keys, escaped and decoded, and
    /// what ends it, escaped and decoded; none for a text `log`.
    fn log_parts(&self) -> usize {
        match self.text_log {
            true => 0,
            false => 2 * self.record_len + 2,
        }
    }

    #[inline(always)]
    fn range(&self, i: usize) -> core::ops::Range<usize> {
        let (start, end) = self.part(i);
        start..end
    }

    /// Reads `input` if it has this layout, as [`Layouts::read`] describes, going on from
    /// envelope member `member` at `pos` (the members before it read already). Returns whether
    /// the envelope was the last record's (see [`LastEnvelope`]).
    fn read_from(
        &self,
        input: &[u8],
        mut member: usize,
        mut pos: usize,
        (envelope, record, log, stack): Buffers<'_>,
        ascii: &mut Ascii,
    ) -> Result<bool, Stop> {
        if input.len() > u32::MAX as usize {
            return Err(Stop::Failed);
        }
        // Sized once and written by index: the members before `member` were read already.
        envelope.resize(self.envelope_len, EMPTY_MEMBER);
        if member <= self.log_index && self.text_log {
            record.clear();
        }
        // The envelope before `log` as the last record had it: its members are known.
        let last = &self.last;
        let same_start = member == 0 && last.starts(input);
        if same_start {
            envelope[..self.log_index].copy_from_slice(&last.members[..self.log_index]);
            ascii.unsure |= !last.ascii;
            (member, pos) = (self.log_index, last.before.len());
        }
        let mut same_end = false;
        for (i, slot) in envelope.iter_mut().enumerate().skip(member) {
            let key_start = pos + 2;
            pos = self
                .expect(input, pos, i)
                .ok_or(Stop::OtherKey { member: i, pos })?;
            let value_start = pos;
            let (kind, value_escaped) = if i == self.log_index {
                // A JSON object and text are told apart by the first byte (a JSON `log`
                // layout expects `{` and a key there): a layout of the other kind, which
                // agrees on the members before, reads the record from here.
                if (input.get(pos + 1) == Some(&b'{')) == self.text_log {
                    let pos = key_start - 2;
                    return Err(Stop::OtherKey { member: i, pos });
                }
                let escaped;
                (pos, escaped) = match self.text_log {
                    true => read_text_log(input, pos, log, ascii),
                    // An object in a string has escaped quotes.
                    false => self
                        .read_log(input, pos, record, log, ascii)
                        .map(|p| (p, true)),
                }
                .ok_or(Stop::Failed)?;
                (Kind::String, escaped)
            } else if input.get(pos) == Some(&b'"') {
                // Strings without escapes are the common case: no need for the general reader.
                let end = scan_string_content(input, pos + 1, ascii);
                if input.get(end) == Some(&b'"') {
                    pos = end + 1;
                    (Kind::String, false)
                } else {
                    let (kind, escaped, end) =
                        read::value_at(input, pos, stack).ok_or(Stop::Failed)?;
                    ascii.unsure = true;
                    pos = end;
                    (kind, escaped)
                }
            } else {
                let (kind, escaped, end) = read::value_at(input, pos, stack).ok_or(Stop::Failed)?;
                // Numbers and literals are ASCII, or they would not be valid.
                ascii.unsure |= matches!(kind, Kind::Object | Kind::Array);
                pos = end;
                (kind, escaped)
            };
            *slot = Member {
                key: span(key_start, value_start - 2),
                value: span(value_start, pos),
                kind,
                key_escaped: false,
                value_escaped,
            };
            // The envelope after `log` as the last record had it: the rest is known.
            if i == self.log_index && last.ends(input, pos) {
                same_end = true;
                break;
            }
        }
        if same_end {
            let after = self.log_index + 1;
            let shift = |s: Span| {
                span(
                    s.start as usize - last.after_start as usize + pos,
                    s.end as usize - last.after_start as usize + pos,
                )
            };
            for (slot, m) in envelope[after..].iter_mut().zip(&last.members[after..]) {
                *slot = Member {
                    key: shift(m.key),
                    value: shift(m.value),
                    ..*m
                };
            }
            ascii.unsure |= !last.ascii;
            return Ok(same_start);
        }
        match pos + 1 == input.len() && input[pos] == b'}' {
            true => Ok(false),
            false => Err(Stop::OtherKey {
                member: self.envelope_len,
                pos,
            }),
        }
    }

    /// Reads the `log` string starting at its opening quote, decoding it into `log` and
    /// collecting the members of the object it holds. Returns the position after the string.
    ///
    /// `log` is sized up front and written by index, a word at a time: the decoded text is
    /// never longer than the escaped one, and spare bytes at the end take what whole words
    /// write past it.
    fn read_log(
        &self,
        input: &[u8],
        mut pos: usize,
        record: &mut Vec<Member>,
        log: &mut Vec<u8>,
        ascii: &mut Ascii,
    ) -> Option<usize> {
        if input.get(pos) != Some(&b'"') {
            return None;
        }
        pos += 1;
        // Not cleared first: only the bytes past the previous record's `log` need filling.
        log.resize(input.len() - pos + read::DECODE_SPARE, 0);
        let dst = log.as_mut_slice();
        let mut o = 0;
        let (escaped_keys, decoded_keys) = (self.envelope_len, self.envelope_len + self.record_len);
        // Sized once and written by index (the previous record's are overwritten).
        record.resize(self.record_len, EMPTY_MEMBER);
        let escaped = self.literals.get(escaped_keys..decoded_keys)?;
        let decoded = self
            .literals
            .get(decoded_keys..decoded_keys + self.record_len)?;
        for (i, (slot, (escaped, decoded))) in record
            .iter_mut()
            .zip(escaped.iter().zip(decoded))
            .enumerate()
        {
            pos = self.expect_literal(input, pos, escaped, escaped_keys + i)?;
            let key_start = o + 2;
            o = self.put_literal(dst, o, decoded, decoded_keys + i)?;
            let value_start = o;
            let kind = match input.get(pos) {
                Some(b'\\') if input.get(pos + 1) == Some(&b'"') => {
                    // A string without escapes of its own: its content is the same decoded.
                    let content = pos + 2;
                    *dst.get_mut(o)? = b'"';
                    let (end, written) = copy_string_content(input, content, dst, o + 1, ascii)?;
                    if input.get(end..end + 2) != Some(b"\\\"") {
                        return None;
                    }
                    o = written;
                    *dst.get_mut(o)? = b'"';
                    o += 1;
                    pos = end + 2;
                    Kind::String
                }
                _ => {
                    let (kind, end) = scalar(input, pos)?;
                    copy(dst, o, input, pos, end - pos)?;
                    o += end - pos;
                    pos = end;
                    kind
                }
            };
            *slot = Member {
                key: span(key_start, value_start - 2),
                value: span(value_start, o),
                kind,
                key_escaped: false,
                value_escaped: false,
            };
        }
        let end_escaped = decoded_keys + self.record_len;
        pos = self.expect(input, pos, end_escaped)?;
        o = self.put(dst, o, end_escaped + 1)?;
        log.truncate(o);
        Some(pos)
    }
}

/// Reads a text `log` string starting at its opening quote, decoding it whole into `log`.
/// Returns the position after the string and whether it had escapes. `None` at a `\u`
/// escape (rare in text logs, and left to the general reader), at anything invalid, and
/// at text that turns out to be a JSON object after white space.
fn read_text_log(
    input: &[u8],
    mut pos: usize,
    log: &mut Vec<u8>,
    ascii: &mut Ascii,
) -> Option<(usize, bool)> {
    if input.get(pos) != Some(&b'"') {
        return None;
    }
    pos += 1;
    // Sized as the general reader sizes it (see `read::DECODE_SPARE`).
    log.resize(input.len() - pos + read::DECODE_SPARE, 0);
    let dst = log.as_mut_slice();
    let (mut o, mut escaped) = (0, false);
    // One loop over the runs between escapes (a text line has a dozen `\"`), a chunk at a time
    // while both sides have one; the end of the input, and bytes from 0x80, as
    // `copy_string_content` takes them.
    loop {
        let chunks = (
            input
                .get(pos..)
                .and_then(<[u8]>::first_chunk::<{ scan::CHUNK }>),
            dst.get_mut(o..)
                .and_then(<[u8]>::first_chunk_mut::<{ scan::CHUNK }>),
        );
        match chunks {
            (Some(chunk), Some(out)) => {
                *out = *chunk;
                let hits = scan::string_stops(chunk);
                if hits == 0 {
                    (pos, o) = (pos + scan::CHUNK, o + scan::CHUNK);
                    continue;
                }
                let take = scan::first(hits);
                (pos, o) = (pos + take, o + take);
            }
            _ => (pos, o) = copy_rest_of_content(input, pos, dst, o, ascii)?,
        }
        match input.get(pos) {
            Some(b'"') => {
                log.truncate(o);
                if log.trim_ascii_start().first() == Some(&b'{') {
                    return None;
                }
                return Some((pos + 1, escaped));
            }
            Some(b'\\') => {
                let short = read::SHORT_ESCAPES[*input.get(pos + 1)? as usize];
                if short == 0 {
                    return None;
                }
                *dst.get_mut(o)? = short;
                (pos, o, escaped) = (pos + 2, o + 1, true);
            }
            // Bytes from 0x80 up to the next stop, which the next round looks at.
            Some(0x80..) => (pos, o) = copy_rest_of_content(input, pos, dst, o, ascii)?,
            _ => return None,
        }
    }
}

/// How long a key may be to be compared and written as words; longer ones take a slower path.
const LITERAL_BYTES: usize = scan::LITERAL_BYTES;
// A literal is written whole into the spare bytes of `log`.
const _: () = assert!(LITERAL_BYTES <= read::DECODE_SPARE);

/// A short byte string, zero-padded, with a mask that is 0xff over its bytes.
#[derive(Clone, Copy)]
struct Literal {
    bytes: [u8; LITERAL_BYTES],
    mask: [u8; LITERAL_BYTES],
    len: u32,
}

impl Literal {
    fn new(bytes: &[u8]) -> Literal {
        let mut literal = Literal {
            bytes: [0; LITERAL_BYTES],
            mask: [0; LITERAL_BYTES],
            len: bytes.len() as u32,
        };
        let n = bytes.len().min(LITERAL_BYTES);
        literal.bytes[..n].copy_from_slice(&bytes[..n]);
        literal.mask[..n].fill(0xff);
        literal
    }

    /// Whether `chunk` starts with this string (no longer than [`LITERAL_BYTES`]).
    #[inline(always)]
    fn is_at(&self, chunk: &[u8; LITERAL_BYTES]) -> bool {
        scan::starts_with(chunk, &self.bytes, &self.mask)
    }

    /// Writes this string (no longer than [`LITERAL_BYTES`]) at the start of `room`, and
    /// zeros after it.
    #[inline(always)]
    fn write(&self, room: &mut [u8; LITERAL_BYTES]) {
        *room = self.bytes;
    }
}

/// A number, `true`, `false` or `null` at `pos`: its kind and end. Short integers and `null`,
/// most of an access log's values, are recognised here; the rest by the general reader.
#[inline(always)]
fn scalar(input: &[u8], pos: usize) -> Option<(Kind, usize)> {
    match input.get(pos)? {
        b'1'..=b'9' => {
            let mut end = pos + 1;
            while let Some(b'0'..=b'9') = input.get(end) {
                end += 1;
            }
            match input.get(end) {
                Some(b',' | b'}') => Some((Kind::Number, end)),
                _ => read::scalar_at(input, pos),
            }
        }
        // A zero byte count or duration.
        b'0' if matches!(input.get(pos + 1), Some(b',' | b'}')) => Some((Kind::Number, pos + 1)),
        b'n' if input.get(pos..pos + 4) == Some(b"null") => Some((Kind::Null, pos + 4)),
        _ => read::scalar_at(input, pos),
    }
}

/// Copies `len` bytes from `src` at `from` to `dst` at `to`, a word at a time where both
/// have room for whole words (which may write past `to + len`: the caller's spare bytes).
/// `None` if either is too short.
#[inline(always)]
fn copy(dst: &mut [u8], to: usize, src: &[u8], from: usize, len: usize) -> Option<()> {
    // Short values (numbers, most of all) in one move.
    if len <= 16 {
        if let (Some(dst), Some(src)) = (
            dst.get_mut(to..).and_then(<[u8]>::first_chunk_mut::<16>),
            src.get(from..).and_then(<[u8]>::first_chunk::<16>),
        ) {
            *dst = *src;
            return Some(());
        }
    }
    let whole = len.div_ceil(8) * 8;
    match (dst.get_mut(to..to + whole), src.get(from..from + whole)) {
        (Some(dst), Some(src)) => {
            for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
                d.copy_from_slice(s);
            }
        }
        _ => dst
            .get_mut(to..to + len)?
            .copy_from_slice(src.get(from..from + len)?),
    }
    Some(())
}

/// Where the first `"`, `\\` or control character at or after `pos` is (or the end of
/// `input`), a chunk at a time, noting in `ascii` whether the bytes it passed are ASCII.
#[inline(always)]
fn scan_string_content(input: &[u8], mut pos: usize, ascii: &mut Ascii) -> usize {
    let rest = input.get(pos..).unwrap_or_default();
    let mut chunks = rest.chunks_exact(scan::CHUNK);
    for chunk in &mut chunks {
        let hits = scan::string_stops(chunk.try_into().unwrap_or(&[0; scan::CHUNK]));
        if hits != 0 {
            return past_non_ascii(input, pos + scan::first(hits), ascii);
        }
        pos += scan::CHUNK;
    }
    scan_tail(input, pos, ascii)
}

/// What [`scan_string_content`] does in the last bytes of `input`: a word, then bytes.
#[inline(always)]
fn scan_tail(input: &[u8], mut pos: usize, ascii: &mut Ascii) -> usize {
    if let Some(chunk) = input.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let hits = scan::swar::string_stops_in_word(u64::from_le_bytes(*chunk));
        if hits != 0 {
            return past_non_ascii(input, pos + (hits.trailing_zeros() / 8) as usize, ascii);
        }
        pos += 8;
    }
    while let Some(&b) = input.get(pos) {
        if matches!(b, b'"' | b'\\' | 0..=0x1f) {
            break;
        }
        ascii.unsure |= b >= 0x80;
        pos += 1;
    }
    pos
}

/// `pos` is where a string's run of plain ASCII ends: at a `"`, `\\` or control character,
/// `pos` itself; at a byte from 0x80, which is noted, where the next of those is.
#[inline(always)]
fn past_non_ascii(input: &[u8], pos: usize, ascii: &mut Ascii) -> usize {
    match input.get(pos) {
        Some(0x80..) => after_non_ascii(input, pos, ascii),
        _ => pos,
    }
}

/// What [`past_non_ascii`] does at a byte from 0x80, apart so that the loops it ends stay small.
#[cold]
#[inline(never)]
fn after_non_ascii(input: &[u8], pos: usize, ascii: &mut Ascii) -> usize {
    ascii.unsure = true;
    pos + scan::find_string_special(input, pos)
}

/// Copies a string's content from `input` at `pos` to `dst` at `o` up to the first `"`, `\\`
/// or control character, a chunk at a time, noting in `ascii` whether the bytes it passed are
/// ASCII. Returns where that byte is in `input`, and the position in `dst` after the copy;
/// `None` if `dst` is too short.
#[inline(always)]
fn copy_string_content(
    input: &[u8],
    mut pos: usize,
    dst: &mut [u8],
    mut o: usize,
    ascii: &mut Ascii,
) -> Option<(usize, usize)> {
    let (src, out) = (input.get(pos..)?, dst.get_mut(o..)?);
    for (chunk, out) in src
        .chunks_exact(scan::CHUNK)
        .zip(out.chunks_exact_mut(scan::CHUNK))
    {
        let chunk: &[u8; scan::CHUNK] = chunk.try_into().ok()?;
        out.copy_from_slice(chunk);
        let hits = scan::string_stops(chunk);
        if hits != 0 {
            let take = scan::first(hits);
            (pos, o) = (pos + take, o + take);
            return match input.get(pos) {
                Some(0x80..) => copy_rest_of_content(input, pos, dst, o, ascii),
                _ => Some((pos, o)),
            };
        }
        pos += scan::CHUNK;
        o += scan::CHUNK;
    }
    // Near the end of the input: the rest found as `scan_string_content` finds it.
    copy_rest_of_content(input, pos, dst, o, ascii)
}

/// What [`copy_string_content`] does from a byte that is not ASCII, or near the end of
/// `input`.
#[inline(never)]
fn copy_rest_of_content(
    input: &[u8],
    pos: usize,
    dst: &mut [u8],
    o: usize,
    ascii: &mut Ascii,
) -> Option<(usize, usize)> {
    let end = scan_tail(input, pos, ascii);
    copy(dst, o, input, pos, end - pos)?;
    Some((end, o + (end - pos)))
}

/// What member buffers are filled with before they are written by index.
const EMPTY_MEMBER: Member = Member {
    key: Span { start: 0, end: 0 },
    value: Span { start: 0, end: 0 },
    kind: Kind::Null,
    key_escaped: false,
    value_escaped: false,
};

#[inline(always)]
fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        end: end as u32,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::{Config, TraceIdFormat, Transformer};

    fn fixture_records() -> Vec<Vec<u8>> {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files: Vec<_> = ["fixtures/input", "fixtures/text"]
            .iter()
            .flat_map(|dir| std::fs::read_dir(format!("{root}/{dir}")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
            .filter(|p| !p.to_string_lossy().ends_with(".expected.jsonl"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let bytes = std::fs::read(f).unwrap();
                bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn configs() -> Vec<Config> {
        vec![
            Config::default(),
            Config {
                hash: Some("4f9c2a17e0b3".into()),
                phase: Some("canary".into()),
                trace_id_128: TraceIdFormat::Hex,
                ..Config::default()
            },
            Config {
                standard_attributes: false,
                status: false,
                message: false,
                derive_phase: false,
                ..Config::default()
            },
        ]
    }

    /// Transforms `records` in order with and without layouts; both must write the same
    /// bytes and report the same outcome for every record. Returns the layout reads.
    fn alike(config: &Config, records: &[Vec<u8>]) -> Result<u64, String> {
        let mut fast = Transformer::new(config.clone());
        let mut general = Transformer::new(config.clone());
        general.set_layout_learning(false);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, record) in records.iter().enumerate() {
            a.clear();
            b.clear();
            let (outcome_a, outcome_b) = (
                fast.transform(record, &mut a),
                general.transform(record, &mut b),
            );
            if a != b || outcome_a != outcome_b {
                return Err(format!(
                    "record {i} differs:\n in:      {}\n layout:  {} ({outcome_a:?})\n general: {} ({outcome_b:?})",
                    String::from_utf8_lossy(record),
                    String::from_utf8_lossy(&a),
                    String::from_utf8_lossy(&b),
                ));
            }
        }
        assert_eq!(general.layout_hits(), 0);
        Ok(fast.layout_hits())
    }

    #[test]
    fn the_corpus_reads_alike_with_and_without_layouts() {
        let records = fixture_records();
        // In order, each record twice in a row, and interleaved from the two ends.
        let twice: Vec<_> = records
            .iter()
            .flat_map(|r| [r.clone(), r.clone()])
            .collect();
        let interleaved: Vec<_> = records
            .iter()
            .zip(records.iter().rev())
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect();
        for config in configs() {
            for sequence in [&records, &twice, &interleaved] {
                let hits = alike(&config, sequence).unwrap_or_else(|e| panic!("{e}"));
                // Most of the corpus is FireLens records of a few layouts.
                assert!(
                    hits as usize > sequence.len() / 2,
                    "{hits} of {}",
                    sequence.len()
                );
            }
        }
    }

    #[test]
    fn a_layout_is_learned_from_three_records_and_checked() {
        let record = |code: u32, tail: &str| {
            format!(
                r#"{{"source":"stdout","log":"{{\"response_code\":{code},\"method\":\"GET\",\"path\":\"/a\"}}{tail}","hash":"abc"}}"#
            )
            .into_bytes()
        };
        let mut t = Transformer::new(Config::default());
        let mut out = Vec::new();
        for (code, expected_hits) in [(200, 0), (201, 0), (202, 0), (203, 1), (204, 2)] {
            t.transform(&record(code, "\\n"), &mut out);
            assert_eq!(t.layout_hits(), expected_hits, "after {code}");
        }
        // Another tail is another layout. The keys are the ones the general reader saw last,
        // so it is learned at once.
        for (code, expected_hits) in [(200, 2), (201, 3), (202, 4)] {
            t.transform(&record(code, ""), &mut out);
            assert_eq!(t.layout_hits(), expected_hits, "after {code}");
        }
        // Both are kept.
        t.transform(&record(500, "\\n"), &mut out);
        t.transform(&record(500, ""), &mut out);
        assert_eq!(t.layout_hits(), 6);
    }

    #[test]
    fn near_misses_after_a_layout_read_as_the_general_reader_reads_them() {
        let good = br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary"}"#;
        let near_misses: &[&[u8]] = &[
            // The last string unterminated, a backslash before the closing brace.
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary\}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary}"#,
            // Escapes in the envelope's strings, valid and not.
            br#"{"source":"std\"out","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary"}"#,
            br#"{"source":"std\qout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary"}"#,
            // An escaped quote, backslash or newline inside a value of `log`.
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\\\"b\",\"n\":null}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\\\\\",\"n\":null}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\\nb\",\"n\":null}\n","phase":"canary"}"#,
            // A raw quote or control byte inside `log`.
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/"a\",\"n\":null}\n","phase":"canary"}"#,
            b"{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/\x01a\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}",
            // Numbers and literals that are not quite.
            br#"{"source":"stdout","log":"{\"code\":0200,\"path\":\"/a\",\"n\":null}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":2e,\"path\":\"/a\",\"n\":null}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":nul}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":nullx}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":nulL}\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":-1.5e3,\"path\":\"/a\",\"n\":true}\n","phase":"canary"}"#,
            // The last key, less than a chunk from the end: another case, shorter, white space.
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phasE":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phas":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase" :"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase""#,
            // Another tail, white space, a member more or less, the end cut off.
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\r\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary"} "#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary","x":1}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n"}"#,
            br#"{"source":"stdout","log":"{\"code\":200,\"path\":\"/a\",\"n\":null}\n","phase":"canary""#,
            // Non-ASCII, valid and not.
            "{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/é\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}".as_bytes(),
            b"{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/\xe9\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}",
            // Non-ASCII, then an escape, a byte that is not UTF-8 or a raw control byte; in
            // the envelope; past the first chunk.
            "{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/é\\\\\\\"\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}".as_bytes(),
            b"{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/\xc3\xa9/\xff\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}",
            b"{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/\xc3\xa9\x01\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}",
            "{\"source\":\"stdoüt\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/a\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}".as_bytes(),
            b"{\"source\":\"std\xffout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/a\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}",
            "{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/abcdefghijklmnopqrstuvwxyz/日本語/abcdefghijklmnopqrstuvwxyz\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}".as_bytes(),
            b"{\"source\":\"stdout\",\"log\":\"{\\\"code\\\":200,\\\"path\\\":\\\"/abcdefghijklmnopqrstuvwxyz/\xe6\x97\xa5/abcdefghijklmnopqrstuvwxyz\xe6\x97\\\",\\\"n\\\":null}\\n\",\"phase\":\"canary\"}",
        ];
        after_a_layout(good, near_misses);
    }

    #[test]
    fn an_envelope_like_the_last_one_is_read_as_the_general_reader_reads_it() {
        // The same envelope on every record, as FireLens writes it: after the first records,
        // it is compared with the last record's, before `log` and after it.
        let record = |phase: &str, log: &str, hash: &str| {
            format!(
                r#"{{"phase":{phase},"source":"stdout","log":"{{\"code\":200,\"path\":\"{log}\"}}\n","hash":{hash}}}"#
            )
            .into_bytes()
        };
        let good = record(r#""canary""#, "/a", r#""abc""#);
        let mut records = vec![good.clone(); 4];
        // Other logs in the same envelope.
        for log in ["/b", "/users/42", "/a/much/longer/path/than/before/it"] {
            records.push(record(r#""canary""#, log, r#""abc""#));
        }
        assert_eq!(alike(&Config::default(), &records), Ok(4));
        // Envelopes of the same length that differ: another string, an escape, another kind
        // of value, before `log` and after it.
        let near_misses = [
            record(r#""canarY""#, "/a", r#""abc""#),
            record(r#""can"y""#, "/a", r#""abc""#),
            record("12345678", "/a", r#""abc""#),
            record(r#""canary""#, "/a", r#""abC""#),
            record(r#""canary""#, "/a", r#""a"c""#),
            record(r#""canary""#, "/a", "12345"),
        ];
        for near_miss in &near_misses {
            let near: &[u8] = near_miss;
            after_a_layout(&good, &[near]);
            // And back to the usual envelope.
            let mut sequence = vec![good.clone(); 4];
            sequence.extend([near_miss.clone(), good.clone(), good.clone()]);
            alike(&Config::default(), &sequence).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn a_layout_reads_strings_that_are_not_ascii() {
        let record = |path: &str, source: &str| {
            format!(
                r#"{{"source":"{source}","log":"{{\"code\":200,\"path\":\"{path}\",\"n\":null}}\n","phase":"canary"}}"#
            )
            .into_bytes()
        };
        let mut records = vec![record("/a", "stdout"); 4];
        let paths = [
            "/é",
            r"/caf\\u00e9/é",
            "/abcdefghijklmnopqrstuvwxyz/日本語/€",
            r#"/a\\\"é\\\"b"#,
        ];
        for path in paths {
            records.push(record(path, "stdout"));
            records.push(record("/a", "stdoüt"));
        }
        let hits = alike(&Config::default(), &records).unwrap_or_else(|e| panic!("{e}"));
        // Escapes in `log` (`\u00e9`, `\"`) are for the general reader; the rest are read by the
        // layout.
        assert_eq!(hits, 1 + 8 - 2);
    }

    /// Four `good` records (a layout is learned from the third and reads the fourth), then each
    /// near miss: the output must be the general reader's.
    fn after_a_layout(good: &[u8], near_misses: &[&[u8]]) {
        for near_miss in near_misses {
            let mut sequence = vec![good.to_vec(); 4];
            sequence.push(near_miss.to_vec());
            let hits = alike(&Config::default(), &sequence).unwrap_or_else(|e| panic!("{e}"));
            assert!(hits >= 1, "{}", String::from_utf8_lossy(near_miss));
        }
    }

    #[test]
    fn a_text_log_layout_reads_the_envelope() {
        let line = |code: u32| {
            format!(
                r#"{{"source":"stdout","log":"[2024-06-03T14:00:00.000Z] \"GET /a HTTP/1.1\" {code} - 0 5 1 1 \"-\" \"curl\" \"r-1\" \"a\" \"10.0.0.1:80\"\n","hash":"abc"}}"#
            )
            .into_bytes()
        };
        let message = |n: u32| {
            format!(r#"{{"source":"stdout","log":"[info] cds: add {n} cluster(s)","hash":"abc"}}"#)
                .into_bytes()
        };
        let json = |code: u32| {
            format!(r#"{{"source":"stdout","log":"{{\"response_code\":{code}}}","hash":"abc"}}"#)
                .into_bytes()
        };
        let mut t = Transformer::new(Config::default());
        let mut out = Vec::new();
        for (code, expected_hits) in [(200, 0), (201, 0), (202, 0), (203, 1), (204, 2)] {
            t.transform(&line(code), &mut out);
            assert_eq!(t.layout_hits(), expected_hits, "after {code}");
        }
        // Any text: Envoy's own messages have the same envelope.
        t.transform(&message(1), &mut out);
        assert_eq!(t.layout_hits(), 3);
        // A JSON `log` is not for this layout; three of them teach their own.
        for (code, expected_hits) in [(200, 3), (201, 3), (202, 3), (203, 4)] {
            t.transform(&json(code), &mut out);
            assert_eq!(t.layout_hits(), expected_hits, "after {code}");
        }
        // Each goes on from `log` with the other's layout.
        for record in [line(200), json(200), message(2), json(201)] {
            t.transform(&record, &mut out);
        }
        assert_eq!(t.layout_hits(), 8);
        // A stream mixing them reads alike with and without layouts.
        let mixed: Vec<_> = (0..40)
            .map(|i| match i % 5 {
                0 | 1 => line(200 + i),
                2 => message(i),
                _ => json(200 + i),
            })
            .collect();
        let hits = alike(&Config::default(), &mixed).unwrap_or_else(|e| panic!("{e}"));
        assert!(hits > 30, "{hits}");
    }

    #[test]
    fn near_misses_after_a_text_layout_read_as_the_general_reader_reads_them() {
        let good = br#"{"source":"stdout","log":"GET /a \"x\" 200\n","phase":"canary"}"#;
        let near_misses: &[&[u8]] = &[
            // Other escapes, valid and not, and none at all.
            br#"{"source":"stdout","log":"GET /a \"x\" 200\t\\\/\b\f\r","phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a \u00e9 200\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a \ud83d\ude00 200\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a \ud83d 200\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a \q 200\n","phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a 200","phase":"canary"}"#,
            br#"{"source":"stdout","log":"","phase":"canary"}"#,
            // A raw control byte, an unterminated string, a backslash at the end.
            b"{\"source\":\"stdout\",\"log\":\"GET \x01 200\",\"phase\":\"canary\"}",
            br#"{"source":"stdout","log":"GET /a 200\n,"phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a 200\"#,
            // JSON after all, at once or after white space, valid and not.
            br#"{"source":"stdout","log":"{\"code\":200}","phase":"canary"}"#,
            br#"{"source":"stdout","log":" \n{\"code\":200}","phase":"canary"}"#,
            br#"{"source":"stdout","log":"{\"code\":","phase":"canary"}"#,
            // Not a string, another key, the end cut off.
            br#"{"source":"stdout","log":17,"phase":"canary"}"#,
            br#"{"source":"stdout","log":null,"phase":"canary"}"#,
            br#"{"source":"stdout","log":"GET /a 200","phase":"canary","log":"x"}"#,
            br#"{"source":"stdout","log":"GET /a 200","phase":"canary""#,
            // Non-ASCII, valid and not.
            "{\"source\":\"stdout\",\"log\":\"GET /é 200\",\"phase\":\"canary\"}".as_bytes(),
            b"{\"source\":\"stdout\",\"log\":\"GET /\xe9 200\",\"phase\":\"canary\"}",
        ];
        after_a_layout(good, near_misses);
    }

    /// The FireLens records of the fixture corpus whose `log` holds JSON, or those whose `log`
    /// holds text.
    fn firelens_records(text: bool) -> &'static [Vec<u8>] {
        static RECORDS: std::sync::OnceLock<[Vec<Vec<u8>>; 2]> = std::sync::OnceLock::new();
        let [json, texts] = RECORDS.get_or_init(|| {
            let has = |r: &[u8], s: &[u8]| r.windows(s.len()).any(|w| w == s);
            let (json, other): (Vec<_>, Vec<_>) = fixture_records()
                .into_iter()
                .partition(|r| has(r, br#""log":"{\"#));
            let text = other.into_iter().filter(|r| has(r, br#""log":""#));
            [json, text.collect()]
        });
        if text {
            texts
        } else {
            json
        }
    }

    /// Bytes inserted by [`apply`]: escapes, white space, UTF-8 and not, structure.
    const INSERTS: [&[u8]; 13] = [
        b"\\\\\\\"",
        b"\\\\n",
        b"\\u00e9",
        b"\\/",
        b" ",
        b"\\n",
        b"7",
        b"\\\"",
        b"\xc3\xa9",
        b"\xff",
        b"{}",
        b"\"",
        b",",
    ];

    /// An edit: remove a byte, cut the record, or insert one of [`INSERTS`].
    fn edit() -> impl Strategy<Value = (prop::sample::Index, usize)> {
        (any::<prop::sample::Index>(), 0..INSERTS.len() + 2)
    }

    fn apply(record: &[u8], edits: &[(prop::sample::Index, usize)]) -> Vec<u8> {
        let mut b = record.to_vec();
        for &(at, op) in edits {
            if b.is_empty() {
                break;
            }
            let i = at.index(b.len());
            match op {
                0 => {
                    b.remove(i);
                }
                1 => b.truncate(i),
                _ => {
                    b.splice(i..i, INSERTS[op - 2].iter().copied());
                }
            }
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            // `PROPTEST_CASES=100000` for a longer run.
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(20241123),
            ..ProptestConfig::default()
        })]

        /// A learned layout meets records that differ from it a little (a value spelled
        /// otherwise, an escape, white space, a broken byte): the output is always what the
        /// general reader gives.
        #[test]
        fn edited_records_read_alike(
            picks in proptest::collection::vec((any::<prop::sample::Index>(), proptest::collection::vec(edit(), 0..4)), 1..8),
            config in 0..3usize,
            text in proptest::bool::weighted(0.25),
        ) {
            let base = firelens_records(text);
            let least = if text { 30 } else { 2000 };
            prop_assert!(base.len() > least);
            let mut sequence = Vec::new();
            for (pick, edits) in &picks {
                let record = pick.get(base);
                // Three times unchanged, so that its layout is learned, then edited.
                sequence.extend([record.clone(), record.clone(), record.clone()]);
                sequence.push(apply(record, edits));
            }
            if let Err(e) = alike(&configs()[config], &sequence) {
                return Err(TestCaseError::fail(e));
            }
        }
    }
}
