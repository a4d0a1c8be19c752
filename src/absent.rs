//! Values that mean "nothing", in one place: each kind of absence has one predicate here.
//!
//! * [`is_placeholder`]: configuration debris in `hash`/`phase` (`""`, `-`, `${VAR}`).
//! * [`is_debris`]: the same for a member's value, plus `null`.
//! * [`is_envoy_absent`]: Envoy's way of logging a missing field (`""`, `-`).
//! * [`is_placeholder_id`]: a trace or span id that carries no information (also `0`).

use crate::read::{Kind, Member};

/// Whether a configured or logged `hash`/`phase` value is a placeholder: empty, `-`, or an
/// unexpanded `${VAR}` (what Fluent Bit's `modify` filter or a deploy script leaves behind
/// when a variable is unset). Such a value counts as absent and is never written.
///
/// ```
/// assert!(envoy_dd::is_placeholder(b"${GIT_COMMIT_SHA}"));
/// assert!(envoy_dd::is_placeholder(b" - "));
/// assert!(!envoy_dd::is_placeholder(b"4f9c2a1"));
/// ```
pub fn is_placeholder(value: &[u8]) -> bool {
    let s = value.trim_ascii();
    s.is_empty() || s == b"-" || (s.starts_with(b"${") && s.ends_with(b"}"))
}

/// Configuration debris as a member's value: `null`, or a string [`is_placeholder`] rejects.
pub(crate) fn is_debris(m: &Member, buf: &[u8]) -> bool {
    match m.kind {
        Kind::Null => true,
        Kind::String => is_placeholder(m.str_content(buf)),
        _ => false,
    }
}

/// Whether a string value means "nothing" in Envoy's output (`""`, `-`).
#[inline]
pub(crate) fn is_envoy_absent(content: &[u8]) -> bool {
    content.is_empty() || content == b"-"
}

/// Ids that carry no information (`null`, `""`, `"-"`, `"0"`, `0`): replacing them loses
/// nothing.
pub(crate) fn is_placeholder_id(m: &Member, buf: &[u8]) -> bool {
    match m.kind {
        Kind::Null => true,
        Kind::String => matches!(m.str_content(buf), b"" | b"-" | b"0"),
        Kind::Number => m.value.of(buf) == b"0",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_means_nothing() {
        for value in ["", " ", "-", " - ", "${GIT_COMMIT_SHA}", "${X}"] {
            assert!(is_placeholder(value.as_bytes()), "{value:?}");
        }
        for value in ["0", "4f9c2a1", "$X", "{x}", "canary"] {
            assert!(!is_placeholder(value.as_bytes()), "{value:?}");
        }
        assert!(is_envoy_absent(b"") && is_envoy_absent(b"-"));
        assert!(!is_envoy_absent(b" - ") && !is_envoy_absent(b"0"));
        let member = |json: &str| {
            let (mut members, mut stack) = (Vec::new(), crate::read::Stack::default());
            crate::read::read_object(json.as_bytes(), &mut members, &mut stack).unwrap();
            members[0]
        };
        for (json, debris, id) in [
            (r#"{"a":null}"#, true, true),
            (r#"{"a":"-"}"#, true, true),
            (r#"{"a":"${X}"}"#, true, false),
            (r#"{"a":"0"}"#, false, true),
            (r#"{"a":0}"#, false, true),
            (r#"{"a":"7"}"#, false, false),
            (r#"{"a":{}}"#, false, false),
        ] {
            let m = member(json);
            assert_eq!(is_debris(&m, json.as_bytes()), debris, "{json}");
            assert_eq!(is_placeholder_id(&m, json.as_bytes()), id, "{json}");
        }
    }
}
