//! Fluent Bit's `wasm` filter ABI, for the `wasm32-unknown-unknown` build of this crate.
//!
//! FireLens users load the module with Fluent Bit's `wasm` filter (`Event_Format json`,
//! `Function_Name envoy_dd_filter`). For each record the host (`src/wasm/flb_wasm.c`):
//!
//! 1. copies the tag and the record's JSON text, each with a trailing NUL, into linear memory
//!    with the exported [`malloc`] (without it, WAMR falls back to an 8 KiB app heap and larger
//!    records fail);
//! 2. calls [`envoy_dd_filter`] with six `i32`s;
//! 3. `strdup`s the NUL-terminated string the returned pointer points at, and parses it as JSON;
//! 4. releases both copies with the exported [`free`].
//!
//! A NULL or empty result makes Fluent Bit drop the record, and a trap (a panic here) does too,
//! so the filter always returns a non-empty object: the transformed record, or the record
//! unchanged when it cannot be transformed. The result lives in one buffer owned by the module
//! and reused on the next call; the host never frees guest memory.
//!
//! Fluent Bit cannot pass parameters to a filter. `hash` and `phase` come from record keys (set
//! by a `modify` filter in front of this one); the settings that cannot travel that way are
//! fixed when the module is built, from the environment of the build
//! (`fluent-bit/build-wasm.sh --text-format ... --trace-id-128 ... --keep-source-attributes`
//! sets them):
//!
//! * `ENVOY_DD_TEXT_FORMAT`: the Envoy format string of text access logs, tried before the
//!   built-in formats ([`Config::text_format`]);
//! * `ENVOY_DD_TRACE_ID_128`: `decimal` (the default) or `hex` ([`Config::trace_id_128`]);
//! * `ENVOY_DD_REQUEST_ID_JOIN`: how many request ids the request-id join remembers, 0 for
//!   none ([`Config::request_id_join`]);
//! * `ENVOY_DD_ROUTES`: route templates, one per line ([`Config::routes`]);
//! * `ENVOY_DD_KEEP_SOURCE_ATTRIBUTES`: `1` keeps the Envoy keys next to their standard
//!   attributes ([`Config::keep_source_attributes`]); unset, empty or `0` moves them.
//!
//! Everything else is the default [`Config`].

use core::cell::{Cell, RefCell};
use std::alloc::{self, Layout};

use crate::{write, Config, Outcome, TextFormat, Transformer};

/// The build-time settings (see the module documentation); unset or empty means the default.
const TEXT_FORMAT: Option<&str> = option_env!("ENVOY_DD_TEXT_FORMAT");
const TRACE_ID_128: Option<&str> = option_env!("ENVOY_DD_TRACE_ID_128");
const REQUEST_ID_JOIN: Option<&str> = option_env!("ENVOY_DD_REQUEST_ID_JOIN");
const ROUTES: Option<&str> = option_env!("ENVOY_DD_ROUTES");
const KEEP_SOURCE_ATTRIBUTES: Option<&str> = option_env!("ENVOY_DD_KEEP_SOURCE_ATTRIBUTES");

/// Returned when the host passes no record (its copy into guest memory failed).
const RECORD_MISSING: &[u8] = b"{\"envoy_dd_error\":\"record missing\"}\0";
/// Returned for an empty record, which passed through unchanged would make Fluent Bit drop it.
const RECORD_EMPTY: &[u8] = b"{\"envoy_dd_error\":\"record empty\"}\0";
/// Returned when the record pointer and length reach past the end of linear memory.
const RECORD_OUT_OF_BOUNDS: &[u8] = b"{\"envoy_dd_error\":\"record out of bounds\"}\0";

/// The filter's state, kept between calls. wasm32-unknown-unknown has one thread, and the host
/// never re-enters the module, so a `thread_local` is the whole synchronisation story.
struct Filter {
    /// The transformer, or why the build-time settings are unusable.
    transformer: Result<Transformer, String>,
    /// The result handed to the host: one JSON object and its NUL terminator.
    out: Vec<u8>,
}

thread_local! {
    static FILTER: RefCell<Filter> = RefCell::new(Filter {
        transformer: build_time_config().map(Transformer::new),
        out: Vec::new(),
    });
}

/// The [`Config`] of this module: the default, with the build-time settings applied.
fn build_time_config() -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(format) = TEXT_FORMAT.filter(|f| !f.is_empty()) {
        let format = TextFormat::parse(format).map_err(|e| format!("ENVOY_DD_TEXT_FORMAT: {e}"))?;
        config.text_format = Some(format);
    }
    if let Some(ids) = TRACE_ID_128.filter(|t| !t.is_empty()) {
        config.trace_id_128 = ids
            .parse()
            .map_err(|e| format!("ENVOY_DD_TRACE_ID_128: {e}"))?;
    }
    if let Some(entries) = REQUEST_ID_JOIN.filter(|n| !n.is_empty()) {
        config.request_id_join = entries
            .parse()
            .map_err(|_| format!("ENVOY_DD_REQUEST_ID_JOIN: not a number: {entries}"))?;
    }
    if let Some(routes) = ROUTES.filter(|r| !r.is_empty()) {
        config.routes =
            crate::endpoint::Routes::parse(routes).map_err(|e| format!("ENVOY_DD_ROUTES: {e}"))?;
    }
    config.keep_source_attributes = match KEEP_SOURCE_ATTRIBUTES.unwrap_or_default() {
        "" | "0" => false,
        "1" => true,
        other => {
            return Err(format!(
                "ENVOY_DD_KEEP_SOURCE_ATTRIBUTES: '{other}' is neither 0 nor 1"
            ))
        }
    };
    Ok(config)
}

impl Filter {
    /// Transforms `record` into `self.out`, NUL-terminated.
    fn run(&mut self, record: &[u8]) -> *const u8 {
        self.out.clear();
        match &mut self.transformer {
            Ok(transformer) => {
                let outcome = transformer.transform(record, &mut self.out);
                // Enriched output is built from validated JSON and escaped strings, so it holds
                // no raw NUL. A record passed through unchanged can, and the host's `strdup`
                // would cut it there and then fail to parse the rest: wrap it instead.
                if matches!(outcome, Outcome::PassedThrough(_))
                    && memchr::memchr(0, &self.out).is_some()
                {
                    self.out.clear();
                    wrap(&mut self.out, "record contains NUL byte", record);
                }
            }
            // A module built with unusable settings says so on every record, in Datadog,
            // instead of quietly running without them; the record is kept whole under `log`.
            Err(reason) => wrap(&mut self.out, reason, record),
        }
        self.out.push(0);
        self.out.as_ptr()
    }
}

/// Writes `{"envoy_dd_error":<error>,"log":<record as a JSON string>}` to `out`.
fn wrap(out: &mut Vec<u8>, error: &str, record: &[u8]) {
    out.extend_from_slice(b"{\"envoy_dd_error\":");
    write::string(out, error);
    out.extend_from_slice(b",\"log\":");
    // Invalid UTF-8 cannot live in a JSON string; such bytes become U+FFFD.
    write::string(out, &String::from_utf8_lossy(record));
    out.push(b'}');
}

/// The filter function (`Function_Name envoy_dd_filter`): transforms one record given as JSON
/// text (`record_len` bytes at `record`, not counting the host's trailing NUL) and returns a
/// pointer to the resulting NUL-terminated JSON object, valid until the next call. The tag and
/// time are not used.
#[no_mangle]
pub extern "C" fn envoy_dd_filter(
    _tag: *const u8,
    _tag_len: u32,
    _time_sec: u32,
    _time_nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    if record.is_null() {
        return RECORD_MISSING.as_ptr();
    }
    if record_len == 0 {
        return RECORD_EMPTY.as_ptr();
    }
    let memory_end = core::arch::wasm32::memory_size::<0>() * 65536;
    if (record as usize)
        .checked_add(record_len as usize)
        .is_none_or(|end| end > memory_end)
    {
        return RECORD_OUT_OF_BOUNDS.as_ptr();
    }
    // SAFETY: the range lies inside linear memory (checked above), all of which is readable on
    // wasm32; the host wrote the record there and does not touch it until this call returns,
    // and nothing in this module writes to it (it was allocated by `malloc` for the host).
    let record = unsafe { core::slice::from_raw_parts(record, record_len as usize) };
    FILTER.with(|filter| match filter.try_borrow_mut() {
        Ok(mut filter) => filter.run(record),
        // Re-entry cannot happen, but is no reason to trap: pass the record through, as the
        // host's own NUL-terminated copy.
        Err(_) => record.as_ptr(),
    })
}

/// Bytes in front of each [`malloc`] block, holding its capacity for [`free`]. Eight keeps
/// the returned pointers 8-byte aligned.
const HEADER: usize = 8;

/// How many freed blocks are kept for the host's next [`malloc`]s, and the smallest capacity
/// of a block.
///
/// For every record the host allocates two blocks (the tag and the record's copy) and frees
/// both after the call. Handing it the same two blocks again saves the Rust allocator's work of
/// splitting and merging them (some 700 interpreted instructions per record). Capacities are
/// powers of two, so that one block serves records of similar sizes; a kept block is never
/// larger than the largest the host asked for, which the allocator would keep anyway.
const SPARE_BLOCKS: usize = 2;
const MIN_CAPACITY: usize = 64;

/// A block of [`HEADER`] and `capacity` bytes from the Rust allocator.
#[derive(Clone, Copy)]
struct Block {
    start: *mut u8,
    capacity: usize,
}

thread_local! {
    static SPARE: Cell<[Option<Block>; SPARE_BLOCKS]> = const { Cell::new([None; SPARE_BLOCKS]) };
}

fn block_layout(capacity: usize) -> Option<Layout> {
    Layout::from_size_align(capacity.checked_add(HEADER)?, HEADER).ok()
}

/// Allocates `size` bytes for the host (WAMR's `wasm_runtime_module_malloc`) from the Rust
/// allocator, or reuses a block it freed. Returns 0 when out of memory; `malloc(0)` returns
/// a valid, unique pointer.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    let block = match take_spare(size) {
        Some(block) => block.start,
        None => {
            let Some(capacity) = size.max(MIN_CAPACITY).checked_next_power_of_two() else {
                return core::ptr::null_mut();
            };
            let Some(layout) = block_layout(capacity) else {
                return core::ptr::null_mut();
            };
            // SAFETY: `layout` has a non-zero size (it includes the header).
            let block = unsafe { alloc::alloc(layout) };
            if block.is_null() {
                return block;
            }
            // SAFETY: `block` is valid for `HEADER + capacity` bytes and aligned to `HEADER`,
            // so the header write is in bounds and aligned.
            unsafe { block.cast::<usize>().write(capacity) };
            block
        }
    };
    // SAFETY: `block` holds `HEADER` bytes and at least `size` more (its capacity, which its
    // header records), so `block + HEADER` is within it.
    unsafe { block.add(HEADER) }
}

/// The smallest kept block with room for `size` bytes, no longer kept.
#[inline]
fn take_spare(size: usize) -> Option<Block> {
    SPARE.with(|spare| {
        let mut blocks = spare.get();
        let fits = |slot: &Option<Block>| slot.filter(|b| b.capacity >= size);
        let (i, _) = (blocks.iter().enumerate())
            .filter_map(|(i, slot)| fits(slot).map(|b| (i, b.capacity)))
            .min_by_key(|&(_, capacity)| capacity)?;
        let block = blocks[i].take();
        spare.set(blocks);
        block
    })
}

/// Releases a block returned by [`malloc`]: keeps it for the host's next [`malloc`] in place
/// of a smaller one (or of none), and gives the one it replaces back to the Rust allocator.
/// `free(0)` does nothing.
#[no_mangle]
pub extern "C" fn free(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` came from `malloc` (the host's contract), so the header sits `HEADER`
    // bytes before it and records the block's capacity.
    let freed = unsafe {
        let start = ptr.sub(HEADER);
        Block {
            start,
            capacity: start.cast::<usize>().read(),
        }
    };
    let released = SPARE.with(|spare| {
        let mut blocks = spare.get();
        let smallest = (0..SPARE_BLOCKS).min_by_key(|&i| blocks[i].map_or(0, |b| b.capacity))?;
        let kept = blocks[smallest].map_or(0, |b| b.capacity);
        if kept != 0 && kept >= freed.capacity {
            return Some(freed);
        }
        let released = blocks[smallest].replace(freed);
        spare.set(blocks);
        released
    });
    if let Some(block) = released {
        if let Some(layout) = block_layout(block.capacity) {
            // SAFETY: the block came from `alloc::alloc` with this layout (see `malloc`), and
            // is neither kept nor in the host's hands any more.
            unsafe { alloc::dealloc(block.start, layout) };
        }
    }
}
