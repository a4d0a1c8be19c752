//! Keys repeated inside nested objects: each key once, with its last value at its first place.
//!
//! The top level of a record and of a merged `log` must not repeat a key (such a record is
//! passed through, such a `log` kept as it is). Below them, a key twice in one object is read
//! as JSON parsers read it, the last value wins, and written once, where it first stood:
//! `{"a":{"b":1,"c":2,"b":3}}` becomes `{"a":{"b":3,"c":2}}`. The reader ([`crate::read`])
//! notes which members hold such an object; [`write_value`] writes their values.
//!
//! The value is read into a flat tree first (no recursion: nesting of any depth is fine), each
//! object's keys compared by their decoded names after sorting, so that the cost stays linear
//! in the value's size up to a logarithm, however many keys an object has.

use crate::read::unescape_into;

/// No node.
const NONE: u32 = u32::MAX;

/// One value of the tree: a scalar or string (copied as it is) or an object or array.
#[derive(Clone, Copy)]
struct Node {
    /// The value's bytes.
    start: u32,
    end: u32,
    /// In an object: the member's key, without its quotes, still escaped.
    key: (u32, u32),
    /// `{` or `[` for a container, else 0.
    open: u8,
    first_child: u32,
    next: u32,
    /// In an object: the node whose value is written in this member's place (the last with
    /// the same key), or [`NONE`] for a later member with the key of an earlier one.
    value: u32,
}

/// Working memory, reused across values.
#[derive(Default)]
pub(crate) struct Dedup {
    nodes: Vec<Node>,
    /// Open containers while reading, and while writing (node, next child).
    stack: Vec<(u32, u32)>,
    /// One object's members while its keys are compared: decoded key range, node.
    keys: Vec<(u32, u32, u32)>,
    names: Vec<u8>,
}

/// Appends the valid JSON value `value` to `out` with every key once in each of its objects,
/// at any depth (see the module's documentation).
#[inline(always)]
pub(crate) fn write_value(out: &mut Vec<u8>, value: &[u8], dedup: &mut Dedup) {
    match value.first() {
        Some(b'{' | b'[') => write_container(out, value, dedup),
        _ => out.extend_from_slice(value),
    }
}

/// [`write_value`] of an object or array.
#[inline(never)]
fn write_container(out: &mut Vec<u8>, value: &[u8], dedup: &mut Dedup) {
    if value.len() > u32::MAX as usize {
        out.extend_from_slice(value);
        return;
    }
    dedup.read(value);
    match dedup.choose_values(value) {
        true => dedup.write(value, out),
        // Nothing repeats: the value as it is, byte for byte.
        false => out.extend_from_slice(value),
    }
}

impl Dedup {
    /// Reads the tree of the valid JSON value `buf`.
    fn read(&mut self, buf: &[u8]) {
        self.nodes.clear();
        self.stack.clear();
        let mut pos = 0;
        let mut key = (0, 0);
        // Each iteration reads one value at `pos` (after its key, in an object).
        loop {
            pos = skip_ws(buf, pos);
            let start = pos;
            let open = match buf[pos] {
                b @ (b'{' | b'[') => b,
                _ => 0,
            };
            let end = match open {
                0 => value_end(buf, pos),
                _ => pos + 1,
            };
            let id = self.nodes.len() as u32;
            self.nodes.push(Node {
                start: start as u32,
                end: end as u32,
                key,
                open,
                first_child: NONE,
                next: NONE,
                value: id,
            });
            if let Some(&mut (parent, ref mut last)) = self.stack.last_mut() {
                match *last {
                    NONE => self.nodes[parent as usize].first_child = id,
                    prev => self.nodes[prev as usize].next = id,
                }
                *last = id;
            }
            pos = end;
            if open != 0 {
                self.stack.push((id, NONE));
                pos = skip_ws(buf, pos);
                if matches!(buf[pos], b'}' | b']') {
                    // Empty: closed below.
                } else {
                    if open == b'{' {
                        (key, pos) = read_key(buf, pos);
                    }
                    continue;
                }
            }
            // A value ended: close containers, or go on to the next member.
            loop {
                let Some(&(node, _)) = self.stack.last() else {
                    return;
                };
                pos = skip_ws(buf, pos);
                if buf[pos] == b',' {
                    pos += 1;
                    if self.nodes[node as usize].open == b'{' {
                        (key, pos) = read_key(buf, skip_ws(buf, pos));
                    }
                    break;
                }
                pos += 1;
                self.nodes[node as usize].end = pos as u32;
                self.stack.pop();
                if self.stack.is_empty() {
                    return;
                }
            }
        }
    }

    /// For each object, which node's value each member writes (see [`Node::value`]); true if
    /// an object repeats a key.
    fn choose_values(&mut self, buf: &[u8]) -> bool {
        let mut repeats = false;
        for object in 0..self.nodes.len() {
            if self.nodes[object].open != b'{' {
                continue;
            }
            self.keys.clear();
            self.names.clear();
            let mut child = self.nodes[object].first_child;
            while child != NONE {
                let (start, end) = self.nodes[child as usize].key;
                let at = self.names.len() as u32;
                let raw = &buf[start as usize..end as usize];
                match raw.contains(&b'\\') {
                    true => unescape_into(raw, &mut self.names),
                    false => self.names.extend_from_slice(raw),
                }
                self.keys.push((at, self.names.len() as u32, child));
                child = self.nodes[child as usize].next;
            }
            let names = &self.names;
            let name = |&(s, e, _): &(u32, u32, u32)| &names[s as usize..e as usize];
            // By name, then in order: each run of one name is its members, first to last.
            self.keys
                .sort_unstable_by(|a, b| name(a).cmp(name(b)).then(a.2.cmp(&b.2)));
            let mut i = 0;
            while i < self.keys.len() {
                let mut j = i + 1;
                while j < self.keys.len() && name(&self.keys[j]) == name(&self.keys[i]) {
                    j += 1;
                }
                let (first, last) = (self.keys[i].2, self.keys[j - 1].2);
                repeats |= first != last;
                self.nodes[first as usize].value = last;
                for &(_, _, later) in &self.keys[i + 1..j] {
                    self.nodes[later as usize].value = NONE;
                }
                i = j;
            }
        }
        repeats
    }

    /// Writes the tree: containers member by member, everything else copied.
    fn write(&mut self, buf: &[u8], out: &mut Vec<u8>) {
        self.stack.clear();
        self.push(0, buf, out);
        while let Some(&mut (node, ref mut next)) = self.stack.last_mut() {
            let parent = self.nodes[node as usize];
            let child = *next;
            if child == NONE {
                out.push(if parent.open == b'{' { b'}' } else { b']' });
                self.stack.pop();
                continue;
            }
            let member = self.nodes[child as usize];
            *next = member.next;
            if member.value == NONE {
                continue;
            }
            if child != parent.first_child {
                out.push(b',');
            }
            if parent.open == b'{' {
                out.push(b'"');
                out.extend_from_slice(&buf[member.key.0 as usize..member.key.1 as usize]);
                out.extend_from_slice(b"\":");
            }
            self.push(member.value, buf, out);
        }
    }

    /// Starts writing node `id`: a container is opened (and its members written by
    /// [`Self::write`]), anything else copied.
    fn push(&mut self, id: u32, buf: &[u8], out: &mut Vec<u8>) {
        let node = self.nodes[id as usize];
        match node.open {
            0 => out.extend_from_slice(&buf[node.start as usize..node.end as usize]),
            open => {
                out.push(open);
                self.stack.push((id, node.first_child));
            }
        }
    }
}

fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while matches!(buf[pos], b' ' | b'\t' | b'\n' | b'\r') {
        pos += 1;
    }
    pos
}

/// Reads `"key":` at `pos`: the key without its quotes, and where its value starts.
fn read_key(buf: &[u8], pos: usize) -> ((u32, u32), usize) {
    let end = value_end(buf, pos);
    let colon = skip_ws(buf, end);
    ((pos as u32 + 1, end as u32 - 1), colon + 1)
}

/// Where the string, number or literal at `pos` ends.
fn value_end(buf: &[u8], mut pos: usize) -> usize {
    if buf[pos] == b'"' {
        pos += 1;
        loop {
            match buf[pos] {
                b'"' => return pos + 1,
                b'\\' => pos += 2,
                _ => pos += 1,
            }
        }
    }
    while pos < buf.len() && !matches!(buf[pos], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
    {
        pos += 1;
    }
    pos
}
