//! Reading a record: the first phase of the transform.
//!
//! [`Reader::read`] reads one record once: by a learned layout when the stream repeats its keys
//! ([`crate::layout`]), otherwise by the general reader ([`crate::read`]), whose keys are then
//! given meanings ([`crate::keys`]); a text access log in `log` is matched by
//! [`crate::text`]. Both readers give the same [`Record`]: each side's members with their key
//! ids, the buffers they live in, and which members planning and writing need to look at.

use crate::config::Setup;
use crate::error::{Error, LogKept, Shape};
use crate::keys::{KeyCache, Meaning, Name, Seen, Side};
use crate::layout::{self, Layouts};
use crate::read::{self, Decode, Kind, Member};
use crate::text::{self, TextFormat};

/// A record as read, for planning and writing.
pub(crate) struct Record<'a> {
    pub shape: Shape,
    /// The members of each side (indexed by `Side as usize`). Without a merged log, the top
    /// level is the record side and the envelope side is empty.
    pub sides: [Members<'a>; 2],
    pub bufs: Bufs<'a>,
    pub keys: &'a KeyCache,
    /// The envelope member that held the merged `log` (replaced by its members).
    pub log_at: Option<usize>,
    /// Some of the log's keys are the envelope's too: those members move to `_log`.
    pub collisions: bool,
    /// The record has no `_log` of its own, so members may be moved there.
    pub can_displace: bool,
    /// Per side, the members that mean something to planning, where a reader listed them
    /// (a layout, a text log); `None`: look at every member.
    pub scanned: [Option<&'a [(u32, Meaning)]>; 2],
    /// Per side, the members the writer must look at rather than copy, where listed.
    pub specials: [Option<&'a [u32]>; 2],
    /// Per side, the members whose values repeat a key in a nested object: they are written
    /// with each key once (see [`crate::dedup`]).
    pub repeating: [&'a [u32]; 2],
}

impl<'a> Record<'a> {
    #[inline(always)]
    pub fn side(&self, side: Side) -> Members<'a> {
        self.sides[side as usize]
    }
}

/// The two buffers members live in: the top level and the parsed `log`.
pub(crate) struct Bufs<'a> {
    pub env: &'a [u8],
    pub rec: &'a [u8],
}

impl<'a> Bufs<'a> {
    #[inline]
    pub fn of(&self, side: Side) -> &'a [u8] {
        match side {
            Side::Envelope => self.env,
            Side::Record => self.rec,
        }
    }
}

/// The members of one side with their key ids.
#[derive(Clone, Copy)]
pub(crate) struct Members<'m> {
    pub members: &'m [Member],
    pub keys: &'m [u32],
}

impl Members<'_> {
    const EMPTY: Members<'static> = Members {
        members: &[],
        keys: &[],
    };
}

/// Working memory of the readers, reused across records.
pub(crate) struct Reader {
    envelope: Vec<Member>,
    record: Vec<Member>,
    /// Key ids (see [`KeyCache`]) of `envelope` and `record`, index for index, when the
    /// general path read the record (a layout has its own).
    envelope_keys: Vec<u32>,
    record_keys: Vec<u32>,
    stack: read::Stack,
    log_text: Vec<u8>,
    /// A text `log` rewritten as a JSON object, which then plays the part of `log`.
    log_json: Vec<u8>,
    keys: KeyCache,
    pub(crate) layouts: Layouts,
    /// Read records with learned layouts (see [`crate::layout`]).
    pub(crate) learn_layouts: bool,
    /// The members of a text log that need more than copying, and those that mean
    /// something, as a layout lists them.
    text_specials: Vec<u32>,
    text_scanned: Vec<(u32, Meaning)>,
    text_keys: TextKeys,
    /// For each member of a text log (listed in `record` by the matching), its place among
    /// its format's member names.
    text_places: Vec<u16>,
    /// The members of the top level and of the log whose values repeat a key in a nested
    /// object (see [`crate::dedup`]).
    repeating: [Vec<u32>; 2],
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            envelope: Vec::new(),
            record: Vec::new(),
            envelope_keys: Vec::new(),
            record_keys: Vec::new(),
            stack: read::Stack::default(),
            log_text: Vec::new(),
            log_json: Vec::new(),
            keys: KeyCache::default(),
            layouts: Layouts::default(),
            learn_layouts: true,
            text_specials: Vec::new(),
            text_scanned: Vec::new(),
            text_keys: TextKeys::default(),
            text_places: Vec::new(),
            repeating: [Vec::new(), Vec::new()],
        }
    }
}

/// What [`Reader::read`] found, for [`Reader::record`].
#[derive(Clone, Copy)]
pub(crate) struct Read {
    read: RecordRead,
    /// The layout that read the record or its envelope, if one did.
    layout_read: Option<layout::Hit>,
}

impl Reader {
    /// Reads `input`: by a layout when one fits, else in full; [`Reader::record`] then gives
    /// what was read. `Err` when the record is not UTF-8, not one JSON object, or its top
    /// level repeats a key.
    #[inline(always)]
    pub fn read(
        &mut self,
        input: &[u8],
        format: Option<&TextFormat>,
        setup: &Setup,
    ) -> Result<Read, Error> {
        check_len(input.len())?;
        for list in &mut self.repeating {
            list.clear();
        }
        // Before the epoch is taken: starting a record may start the key cache afresh.
        self.keys.start_record();
        let epoch = self.keys.epoch();
        let layout_read = match self.learn_layouts {
            true => self.layouts.read(
                input,
                epoch,
                &mut self.envelope,
                &mut self.record,
                &mut self.log_text,
                &mut self.stack,
            ),
            false => None,
        };
        // The layout saw every byte when it is sure they are all ASCII.
        if !layout_read.is_some_and(|hit| hit.ascii) {
            check_utf8(input)?;
        }
        #[cfg(test)]
        if let Some(hit) = layout_read {
            let record = (!hit.text_log).then_some(&self.record[..]);
            check_layout_read(input, hit.log_index, &self.envelope, record, &self.log_text);
            assert!(!hit.ascii || input.is_ascii());
        }
        // A layout of a JSON `log` read everything; one of a text `log` read the envelope.
        let fast = layout_read.filter(|hit| !hit.text_log);
        let read = match fast {
            // A learned layout read the record: a JSON `log` without collisions.
            Some(hit) => RecordRead {
                log_at: Some(hit.log_index),
                shape: Shape::LogJson,
                collisions: false,
                uses_displaced: hit.uses_displaced,
                log_source: LogSource::Decoded,
            },
            None => {
                let text = TextSetup {
                    format,
                    braced: setup.braced_text_format,
                };
                self.read_in_full(input, layout_read, epoch, text)?
            }
        };
        Ok(Read { read, layout_read })
    }

    /// The record [`Reader::read`] read (`input`, and what it found).
    #[inline(always)]
    pub fn record<'s>(&'s self, input: &'s [u8], read: Read) -> Record<'s> {
        let Read { read, layout_read } = read;
        let fast = layout_read.filter(|hit| !hit.text_log);
        let s = self;
        let log = read
            .log_source
            .of(input, &s.envelope, &s.log_text, &s.log_json);
        // The key ids of the envelope's members and of the record's: the layout's own, when a
        // layout read the record, else those `read_in_full` worked out.
        let fast_ids = fast.map(|hit| s.layouts.ids(hit.layout));
        let [envelope_keys, record_keys] = fast_ids.unwrap_or([&s.envelope_keys, &s.record_keys]);
        let envelope = Members {
            members: &s.envelope,
            keys: envelope_keys,
        };

        // With a merged log, the top level is the envelope and the log is the record;
        // otherwise the top level is the record and there is no envelope.
        let shape = read.shape;
        if !shape.merges_log() {
            let uses_displaced = envelope_keys
                .iter()
                .any(|&id| s.keys.meaning(id).name == Name::Displaced);
            return Record {
                shape,
                sides: [Members::EMPTY, envelope],
                bufs: Bufs {
                    env: &[],
                    rec: input,
                },
                keys: &s.keys,
                log_at: None,
                collisions: false,
                can_displace: !uses_displaced,
                scanned: [None; 2],
                specials: [None; 2],
                repeating: [&[], &s.repeating[0]],
            };
        }
        let record = Members {
            members: &s.record,
            keys: record_keys,
        };

        // The members to look at, per side, where they are known: a layout lists them for
        // the envelope it read and for a JSON log, and `read_in_full` listed a text log's.
        // Otherwise every member is looked at.
        let mut scanned: [Option<&[(u32, Meaning)]>; 2] = [None; 2];
        let mut specials: [Option<&[u32]>; 2] = [None; 2];
        if let Some(hit) = layout_read {
            let [envelope, record] = s.layouts.scanned(hit.layout);
            let [envelope_specials, record_specials] = s.layouts.specials(hit.layout);
            scanned[Side::Envelope as usize] = Some(envelope);
            specials[Side::Envelope as usize] = Some(envelope_specials);
            if !hit.text_log {
                scanned[Side::Record as usize] = Some(record);
                specials[Side::Record as usize] = Some(record_specials);
            }
        }
        if shape == Shape::LogText && !read.collisions {
            scanned[Side::Record as usize] = Some(&s.text_scanned);
            specials[Side::Record as usize] = Some(&s.text_specials);
        }
        let repeating = [&s.repeating[0][..], &s.repeating[1][..]];
        // Only the general reader lists members that repeat a key, and then it lists no
        // specials: every member is looked at, these too.
        debug_assert!((0..2).all(|side| repeating[side].is_empty() || specials[side].is_none()));
        Record {
            shape,
            sides: [envelope, record],
            bufs: Bufs {
                env: input,
                rec: log,
            },
            keys: &s.keys,
            log_at: read.log_at,
            collisions: read.collisions,
            can_displace: !read.uses_displaced,
            scanned,
            specials,
            repeating,
        }
    }

    /// How many records were read with a learned layout.
    #[cfg(test)]
    pub(crate) fn layout_hits(&self) -> u64 {
        self.layouts.hits
    }
}

/// The user's text format, as the general path needs it.
#[derive(Clone, Copy)]
struct TextSetup<'f> {
    /// [`crate::Config::text_format`].
    format: Option<&'f TextFormat>,
    /// The format looks like JSON (see [`Setup::braced_text_format`]).
    braced: bool,
}

/// What reading a record found out: by a layout, or by [`Reader::read_in_full`].
#[derive(Clone, Copy)]
struct RecordRead {
    /// Which envelope member is a `log` string, if one is.
    log_at: Option<usize>,
    shape: Shape,
    /// Some of the log's keys are the envelope's too (they move to `_log`).
    collisions: bool,
    /// The record already has a `_log` key of its own (see [`Name::Displaced`]).
    uses_displaced: bool,
    log_source: LogSource,
}

impl Reader {
    /// Reads a record that no layout read whole (the general path): the envelope, with its
    /// key ids, unless `layout_read` (a layout of a text `log`) read it; what `log` holds (a
    /// JSON object, a text access log, or text to keep); and the log's key ids, collisions and
    /// duplicates. Learns a layout from the record when it is one to learn from. `Err` only
    /// when the record is not one JSON object or its top level repeats a key.
    fn read_in_full(
        &mut self,
        input: &[u8],
        layout_read: Option<layout::Hit>,
        epoch: u32,
        text: TextSetup<'_>,
    ) -> Result<RecordRead, Error> {
        let (log_at, mut shape, mut collisions, mut uses_displaced, log_source);
        let log_member = match layout_read {
            // The envelope as learned: its ids are known and unique, the top level still
            // has to know them for the log's keys.
            Some(hit) => {
                let [envelope_ids, _] = self.layouts.ids(hit.layout);
                self.envelope_keys.clear();
                self.envelope_keys.extend_from_slice(envelope_ids);
                for (i, &id) in envelope_ids.iter().enumerate() {
                    self.keys.see(id, Side::Envelope, i as u32);
                }
                uses_displaced = hit.uses_displaced;
                Some(hit.log_index)
            }
            None => {
                self.envelope.clear();
                // The `log` string is decoded while the record is read (it is most of
                // the bytes).
                let decode = Decode {
                    key: b"log",
                    into: &mut self.log_text,
                };
                let log_member = read::read_object_decoding(
                    input,
                    &mut self.envelope,
                    &mut self.stack,
                    Some(decode),
                )
                .map_err(Error::Json)?;
                self.repeating[0].clone_from(&self.stack.repeating);

                // Key ids, meanings, and duplicates: the top level must have unique keys.
                self.envelope_keys.clear();
                uses_displaced = false;
                for (i, m) in self.envelope.iter().enumerate() {
                    let id = self
                        .keys
                        .lookup_at(Side::Envelope, i, m.key.of(input), m.key_escaped);
                    if self.keys.see(id, Side::Envelope, i as u32) == Seen::Duplicate {
                        return Err(Error::DuplicateKey {
                            offset: m.key.start as usize,
                        });
                    }
                    uses_displaced |= self.keys.meaning(id).name == Name::Displaced;
                    self.envelope_keys.push(id);
                }
                log_member.or_else(|| self.escaped_log(input))
            }
        };
        self.record.clear();
        let envelope_uses_displaced = uses_displaced;

        // A `log` string holding a JSON object is merged into the record (shapes A, D);
        // other `log` strings stay as they are (B, E); without one the record is bare (C, F).
        log_at = log_member.filter(|&at| self.envelope[at].kind == Kind::String);
        let mut source = match log_at {
            Some(at) if !self.envelope[at].value_escaped => LogSource::Input(at),
            _ => LogSource::Decoded,
        };
        let decoded = source;
        let log = source.of(input, &self.envelope, &self.log_text, &[]);
        let text_log = log_at.is_some() && log.trim_ascii_start().first() != Some(&b'{');
        let custom = text.format;
        // A user's format may look like JSON (`{"method":"%REQ(:METHOD)%",...}`): a `log`
        // that opens with `{` is then matched with it first, and read as JSON only if it
        // does not match (Envoy does not escape the quotes in such a line's values).
        let braced = text.braced;
        let text_first = text_log || (log_at.is_some() && braced);
        let mut text_format = None;
        shape = match log_at {
            None => Shape::Bare,
            Some(_) if text_first => {
                let (json, places) = (&mut self.log_json, &mut self.text_places);
                match text::line_to_json(custom, log, json, &mut self.record, places) {
                    Some(n) => {
                        // The matching listed the members it wrote, and which each is.
                        text_format = text::formats(custom).nth(n).map(|f| (f, n));
                        #[cfg(test)]
                        {
                            let mut general = Vec::new();
                            text::members_of(&self.log_json, &mut general);
                            assert_eq!(self.record, general);
                        }
                        source = LogSource::Text;
                        Shape::LogText
                    }
                    None if text_log => Shape::LogKept(LogKept::NotJson),
                    None => match read::read_object(log, &mut self.record, &mut self.stack) {
                        Ok(()) => {
                            self.repeating[1].clone_from(&self.stack.repeating);
                            Shape::LogJson
                        }
                        Err(_) => Shape::LogKept(LogKept::InvalidJson),
                    },
                }
            }
            Some(_) => match read::read_object(log, &mut self.record, &mut self.stack) {
                Ok(()) => {
                    self.repeating[1].clone_from(&self.stack.repeating);
                    Shape::LogJson
                }
                Err(_) => Shape::LogKept(LogKept::InvalidJson),
            },
        };
        log_source = source;
        let log = source.of(input, &self.envelope, &self.log_text, &self.log_json);

        // The log's keys must be unique among themselves; those the top level also has are
        // displaced to `_log`. The envelope's own `log` is being replaced, so its key is free.
        collisions = false;
        self.record_keys.clear();
        if shape.merges_log() {
            // A text log's keys are its format's member names, in order, some left out:
            // what they mean is known, and so are the members that mean something.
            let format_keys = text_format.map(|(f, n)| self.text_keys.of(f, n, &mut self.keys));
            self.text_specials.clear();
            self.text_scanned.clear();
            for (i, m) in self.record.iter().enumerate() {
                let (id, meaning) = match format_keys {
                    Some(format) => {
                        let key = format.keys[self.text_places[i] as usize];
                        if key.special {
                            self.text_specials.push(i as u32);
                        }
                        if key.scanned {
                            self.text_scanned.push((i as u32, key.meaning));
                        }
                        (key.id, key.meaning)
                    }
                    None => {
                        let key = m.key.of(log);
                        let id = self.keys.lookup_at(Side::Record, i, key, m.key_escaped);
                        (id, self.keys.meaning(id))
                    }
                };
                // Unique keys need no check among themselves, only against the top level.
                let seen = match format_keys {
                    Some(format) if format.unique => {
                        self.keys.at_top(id).map_or(Seen::First, Seen::AlsoAtTop)
                    }
                    _ => self.keys.see(id, Side::Record, i as u32),
                };
                match seen {
                    Seen::First => {}
                    Seen::AlsoAtTop(top) => collisions |= Some(top as usize) != log_at,
                    Seen::Duplicate => {
                        shape = Shape::LogKept(LogKept::DuplicateKey);
                        break;
                    }
                }
                uses_displaced |= meaning.name == Name::Displaced;
                self.record_keys.push(id);
            }
            if shape.merges_log() && collisions && uses_displaced {
                shape = Shape::LogKept(LogKept::KeyConflict);
            }
        }
        // The members of a text log are compact and in a row, as a layout's are: the
        // writer copies stretches of them, and `Found` looks at those that mean something
        // (listed above).
        if shape != Shape::LogText || collisions {
            self.text_specials.clear();
            self.text_scanned.clear();
        }
        // A layout is learned from records the general reader read: with a JSON `log`
        // that merges without collisions, or with a text `log` (the envelope only). Not
        // with a JSON `log` when the user's format looks like JSON: such a layout would
        // read its lines as JSON without trying the format first.
        // Nor from a record whose `log` key is spelled with escapes, which layouts do not
        // decode.
        let escaped_key = log_at.is_some_and(|at| self.envelope[at].key_escaped);
        let learn = match (
            log_at,
            layout_read.is_none() && self.learn_layouts && !escaped_key,
        ) {
            (Some(at), true) if text_log => Some(at),
            (Some(at), true) if shape == Shape::LogJson && !collisions && !braced => Some(at),
            _ => None,
        };
        if let Some(log_index) = learn {
            // A text log's layout is of the envelope alone, with `log` as it was read.
            let (log, record, record_ids, uses_displaced) = match text_log {
                true => {
                    let log = decoded.of(input, &self.envelope, &self.log_text, &[]);
                    (log, &[][..], &[][..], envelope_uses_displaced)
                }
                false => (log, &self.record[..], &self.record_keys[..], uses_displaced),
            };
            let learned = layout::Learned {
                envelope: &self.envelope,
                envelope_ids: &self.envelope_keys,
                log_index,
                log,
                record,
                record_ids,
                uses_displaced,
                text_log,
            };
            let keys = &self.keys;
            let meaning_of = |id| keys.meaning(id);
            self.layouts
                .consider(input, learned, epoch, &mut self.stack, meaning_of);
        }
        Ok(RecordRead {
            log_at,
            shape,
            collisions,
            uses_displaced,
            log_source,
        })
    }
}

impl Reader {
    /// The `log` member of an envelope whose key is spelled with escapes (`"lo\u0067"`),
    /// which the reader did not decode on the way: keys are told by their decoded names.
    #[cold]
    fn escaped_log(&mut self, input: &[u8]) -> Option<usize> {
        let keys = &self.keys;
        let at = (self.envelope_keys.iter()).position(|&id| keys.meaning(id).name == Name::Log)?;
        let m = self.envelope[at];
        if m.kind == Kind::String && m.value_escaped {
            self.log_text.clear();
            read::unescape_into(m.str_content(input), &mut self.log_text);
        }
        Some(at)
    }
}

/// Spans are 32-bit offsets: a longer record is passed through, and said to be too large.
#[inline(always)]
fn check_len(len: usize) -> Result<(), Error> {
    // `MAX_RECORD_LEN` is `u32::MAX` (on 32-bit targets no slice is longer).
    match u32::try_from(len) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::TooLarge { len }),
    }
}

/// The record must be UTF-8 (JSON is), or it is passed through.
fn check_utf8(input: &[u8]) -> Result<(), Error> {
    match core::str::from_utf8(input) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        }),
    }
}

/// In the crate's tests, every record a layout reads is read again by the general reader,
/// which must find exactly the same: the envelope, the decoded `log` and, for a JSON `log`,
/// its members.
#[cfg(test)]
fn check_layout_read(
    input: &[u8],
    log_at: usize,
    envelope: &[Member],
    record: Option<&[Member]>,
    log: &[u8],
) {
    let (mut envelope2, mut record2, mut log2) = (vec![], vec![], vec![]);
    let mut stack = read::Stack::default();
    let decode = Decode {
        key: b"log",
        into: &mut log2,
    };
    let at = read::read_object_decoding(input, &mut envelope2, &mut stack, Some(decode));
    assert_eq!(at, Ok(Some(log_at)));
    if !envelope2[log_at].value_escaped {
        // The general reader leaves a string without escapes where it is.
        log2 = envelope2[log_at].str_content(input).to_vec();
    }
    match record {
        Some(record) => {
            read::read_object(&log2, &mut record2, &mut stack).unwrap();
            assert_eq!(record, &record2[..]);
        }
        None => assert_ne!(log2.trim_ascii_start().first(), Some(&b'{')),
    }
    assert_eq!((envelope, log), (&envelope2[..], &log2[..]));
}

/// The key ids of each text format's member names ([`TextFormat::member_names`]), by the
/// format's place among [`text::formats`], and the key cache epoch they belong to.
#[derive(Default)]
struct TextKeys {
    formats: Vec<FormatKeys>,
}

/// The keys of one text format's members, by place (see [`TextFormat::member_names`]).
#[derive(Default)]
struct FormatKeys {
    keys: Vec<TextKey>,
    /// No two members have the same key, so a line cannot have duplicate keys.
    unique: bool,
    /// The key cache epoch the ids belong to.
    epoch: Option<u32>,
}

/// What the transform needs to know of a text format's member, looked up once.
#[derive(Clone, Copy)]
struct TextKey {
    id: u32,
    meaning: Meaning,
    special: bool,
    scanned: bool,
}

impl TextKeys {
    fn of(&mut self, format: &TextFormat, n: usize, keys: &mut KeyCache) -> &FormatKeys {
        if self.formats.len() <= n {
            self.formats.resize_with(n + 1, Default::default);
        }
        let of_format = &mut self.formats[n];
        if of_format.epoch != Some(keys.epoch()) {
            of_format.keys.clear();
            for name in format.member_names() {
                let id = keys.lookup(name.as_bytes(), false);
                let meaning = keys.meaning(id);
                of_format.keys.push(TextKey {
                    id,
                    meaning,
                    special: meaning.special_in_record(),
                    scanned: meaning.scanned(),
                });
            }
            let ids = &of_format.keys;
            of_format.unique = (0..ids.len()).all(|i| ids[..i].iter().all(|k| k.id != ids[i].id));
            of_format.epoch = Some(keys.epoch());
        }
        of_format
    }
}

/// Where the text of `log` is: in the input (a string without escapes), decoded into
/// `Scratch::log_text`, or rewritten from a text access log into `Scratch::log_json`.
#[derive(Clone, Copy)]
enum LogSource {
    Input(usize),
    Decoded,
    Text,
}

impl LogSource {
    fn of<'a>(
        self,
        input: &'a [u8],
        envelope: &[Member],
        log_text: &'a [u8],
        log_json: &'a [u8],
    ) -> &'a [u8] {
        match self {
            LogSource::Input(at) => envelope[at].str_content(input),
            LogSource::Decoded => log_text,
            LogSource::Text => log_json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MAX_RECORD_LEN;

    #[test]
    fn records_over_4_gib_are_too_large() {
        // Allocating 4 GiB in a test is too much: the check is of the length alone.
        assert_eq!(check_len(MAX_RECORD_LEN), Ok(()));
        let len = MAX_RECORD_LEN + 1;
        let error = check_len(len).unwrap_err();
        assert_eq!(error, Error::TooLarge { len });
        assert_eq!(error.reason(), "too_large");
        assert!(error.to_string().contains("4294967296 bytes"), "{error}");
    }
}
