//! Every way a record can fail, and what a transform reports: one taxonomy for the crate.
//!
//! [`Error`] says why a record was passed through unchanged; [`ReadError`] (with its
//! [`SyntaxError`]) is the one kind of it that the JSON reader finds. [`Outcome`], [`Enriched`],
//! [`Shape`] and [`LogKept`] say what a transform did.

use core::fmt;

use crate::trace::TraceSource;

/// Why a buffer is not one valid JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntaxError {
    /// The input does not start with `{` (after white space).
    NotAnObject,
    /// The input ends inside the object.
    Truncated,
    /// Something other than white space follows the object.
    TrailingData,
    /// A byte that the grammar does not allow at this position.
    Unexpected,
    /// A control character, bad escape or lone surrogate inside a string.
    BadString,
    /// A malformed number.
    BadNumber,
    /// The input is larger than 4 GiB, which spans cannot address.
    TooLarge,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyntaxError::NotAnObject => "not a JSON object",
            SyntaxError::Truncated => "truncated JSON",
            SyntaxError::TrailingData => "data after the JSON object",
            SyntaxError::Unexpected => "unexpected character in JSON",
            SyntaxError::BadString => "invalid string in JSON",
            SyntaxError::BadNumber => "invalid number in JSON",
            SyntaxError::TooLarge => "record larger than 4 GiB",
        })
    }
}

impl std::error::Error for SyntaxError {}

/// The error and the byte offset it was found at.
///
/// ```
/// use envoy_dd::{Config, Error, SyntaxError, Transformer};
///
/// let mut t = Transformer::new(Config::default());
/// let Err(Error::Json(e)) = t.try_transform(b"{\"a\":}", &mut Vec::new()) else { panic!() };
/// assert_eq!((e.kind, e.offset), (SyntaxError::Unexpected, 5));
/// assert_eq!(e.to_string(), "unexpected character in JSON at byte 5");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// What is wrong.
    pub kind: SyntaxError,
    /// Where, in bytes from the start of the record.
    pub offset: usize,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// Why a record could not be transformed. The record is then passed through unchanged.
///
/// ```
/// use envoy_dd::{Config, Error, Transformer};
///
/// let mut t = Transformer::new(Config::default());
/// let error = t.try_transform(b"{\"a\":1,\"a\":2}", &mut Vec::new()).unwrap_err();
/// assert_eq!(error, Error::DuplicateKey { offset: 8 });
/// assert_eq!((error.reason(), error.to_string().as_str()), ("duplicate_key", "duplicate key at byte 8"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The record is not valid UTF-8.
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The record is not one valid JSON object.
    Json(ReadError),
    /// The record has the same key twice; rewriting it would have to drop one.
    DuplicateKey {
        /// Byte offset of the second occurrence's key.
        offset: usize,
    },
    /// The record is longer than [`MAX_RECORD_LEN`] bytes, which the transform's byte offsets
    /// (32 bits, to keep its working memory small) cannot address.
    TooLarge {
        /// The record's length in bytes.
        len: usize,
    },
}

/// The longest record the transform rewrites, in bytes: 4 GiB − 1. A longer one is passed
/// through unchanged ([`Error::TooLarge`]).
pub const MAX_RECORD_LEN: usize = u32::MAX as usize;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUtf8 { valid_up_to } => write!(f, "invalid UTF-8 at byte {valid_up_to}"),
            Error::Json(e) => e.fmt(f),
            Error::DuplicateKey { offset } => write!(f, "duplicate key at byte {offset}"),
            Error::TooLarge { len } => write!(
                f,
                "record of {len} bytes, longer than the limit of {MAX_RECORD_LEN} bytes"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// A short, stable name for counting (`invalid_utf8`, `invalid_json`, `duplicate_key`,
    /// `too_large`).
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::InvalidUtf8 { .. } => "invalid_utf8",
            Error::Json(_) => "invalid_json",
            Error::DuplicateKey { .. } => "duplicate_key",
            Error::TooLarge { .. } => "too_large",
        }
    }
}

/// Which input shape a record had (see "The rules" in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// A FireLens record whose `log` held a JSON object, now merged into the record.
    LogJson,
    /// A FireLens record whose `log` held an Envoy text access log line (in
    /// [`Config::text_format`](crate::Config::text_format) or a built-in format), now parsed and merged into the record.
    LogText,
    /// A FireLens record whose `log` was kept as it is, and why.
    LogKept(LogKept),
    /// A record without a `log` string: a bare or already flattened Envoy object.
    Bare,
}

impl Shape {
    /// A short, stable name for counting: `log_json`, `log_text`, `log_kept`, `bare`.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::LogJson => "log_json",
            Shape::LogText => "log_text",
            Shape::LogKept(_) => "log_kept",
            Shape::Bare => "bare",
        }
    }

    /// The `log` was parsed and its members are merged into the record.
    pub(crate) fn merges_log(self) -> bool {
        matches!(self, Shape::LogJson | Shape::LogText)
    }
}

/// Why a `log` string was kept as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogKept {
    /// Not a JSON object: plain text, an Envoy text access log, Envoy's own messages.
    NotJson,
    /// It starts like a JSON object but is not valid JSON.
    InvalidJson,
    /// It is a JSON object with a key twice.
    DuplicateKey,
    /// Merging it would need `_log`, which the record already uses for something else.
    KeyConflict,
}

impl LogKept {
    /// A short, stable name for counting: `not_json`, `invalid_json`, `duplicate_key`,
    /// `key_conflict`.
    pub const fn reason(self) -> &'static str {
        match self {
            LogKept::NotJson => "not_json",
            LogKept::InvalidJson => "invalid_json",
            LogKept::DuplicateKey => "duplicate_key",
            LogKept::KeyConflict => "key_conflict",
        }
    }
}

/// What a successful transform did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enriched {
    /// The input shape.
    pub shape: Shape,
    /// A response code was found, so access-log attributes were considered.
    pub access_log: bool,
    /// Where `dd.trace_id` came from, if the output has a valid one.
    pub trace: Option<TraceSource>,
}

/// The result of [`Transformer::transform`](crate::Transformer::transform), which always writes a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The output is the enriched record.
    Enriched(Enriched),
    /// The output is the input, unchanged.
    PassedThrough(Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn public_errors_are_std_errors_with_their_sources() {
        fn std_error<E: std::error::Error + Send + Sync + 'static>() {}
        std_error::<Error>();
        std_error::<ReadError>();
        std_error::<SyntaxError>();
        std_error::<crate::FormatError>();
        let read = ReadError {
            kind: SyntaxError::Truncated,
            offset: 3,
        };
        let error = Error::Json(read);
        assert_eq!(error.to_string(), "truncated JSON at byte 3");
        let source = error.source().expect("the read error");
        assert_eq!(source.to_string(), read.to_string());
        assert_eq!(source.source().unwrap().to_string(), "truncated JSON");
        assert!(Error::DuplicateKey { offset: 1 }.source().is_none());
    }
}
