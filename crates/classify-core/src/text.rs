//! Allocation-free search for fixed patterns in an error's `Display` or
//! `Debug` text.
//!
//! Some facts are only in an error's text (hyper's connector says "dns
//! error"; an h2 error of an unknown version still prints `GoAway(`).
//! Formatting into a `String` would allocate on every classification, so the
//! text is matched as it is written and the write stops at the first match.

use std::fmt::{self, Write};

/// How much of one error's text is read, at most: `Debug` of a deep chain can
/// be long, and the patterns sit near the start of real errors' text.
const BUDGET: usize = 8 * 1024;

/// Whether `value`'s `Display` text contains any of `patterns`, without
/// allocating: for backends whose error types say some facts only in their
/// text (hyper-util's client error names its kind only in `Display`).
///
/// Only the first 8 KiB of text is read. An empty pattern is always found.
///
/// ```
/// assert!(classify_core::backend::text_contains(&"client error (UserAbsoluteUriRequired)", &["(User"]));
/// assert!(!classify_core::backend::text_contains(&"client error (Connect)", &["(User"]));
/// ```
pub fn text_contains(value: &dyn fmt::Display, patterns: &[&'static str]) -> bool {
    patterns
        .chunks(MAX_PATTERNS)
        .any(|chunk| contains_any(chunk, |w| write!(w, "{value}")))
}

/// Whether `value`'s `Display` text *begins* with any of `patterns`, within
/// its first `max_bytes`: reading no further also keeps the causes an error
/// appends to its message from being formatted (an OS error's text
/// allocates).
pub(crate) fn starts_with_any(
    value: &dyn fmt::Display,
    patterns: &[&'static str],
    max_bytes: usize,
) -> bool {
    contains_within(patterns, max_bytes, |w| write!(w, "{value}"))
}

/// Whether `value`'s `Display` text is exactly `expected`, without
/// allocating: the write stops at the first byte that differs.
pub(crate) fn text_is(value: &dyn fmt::Display, expected: &str) -> bool {
    let mut exact = Exact {
        rest: expected.as_bytes(),
        differs: false,
    };
    let written = write!(exact, "{value}").is_ok();
    written && !exact.differs && exact.rest.is_empty()
}

/// Compares written text against what is left of the expected text.
struct Exact<'e> {
    rest: &'e [u8],
    differs: bool,
}

impl Write for Exact<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // As with `Scan`, a `Display` that writes on after the stop is not
        // read: it cannot make a mismatch match.
        match self.rest.strip_prefix(s.as_bytes()) {
            Some(rest) if !self.differs => {
                self.rest = rest;
                Ok(())
            }
            _ => {
                self.differs = true;
                Err(fmt::Error)
            }
        }
    }
}

/// A hash (FNV-1a) of the start of `value`'s `Debug` text, up to its first
/// `(`, `{` or space, at most 64 bytes: a derived or tuple `Debug` begins
/// with the type's name, so this tells error types apart without
/// allocating.
pub(crate) fn debug_type_hash(value: &dyn fmt::Debug) -> u64 {
    let mut hash = TypeHash {
        hash: 0xcbf2_9ce4_8422_2325,
        left: 64,
    };
    let _ = write!(hash, "{value:?}");
    hash.hash
}

/// One step of FNV-1a.
pub(crate) fn fnv1a(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
}

struct TypeHash {
    hash: u64,
    left: usize,
}

impl Write for TypeHash {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            if self.left == 0 || matches!(byte, b'(' | b'{' | b' ') {
                self.left = 0;
                return Err(fmt::Error);
            }
            self.left -= 1;
            self.hash = fnv1a(self.hash, byte);
        }
        Ok(())
    }
}

/// Whether the text that `write` produces contains any of `patterns` (at
/// most [`MAX_PATTERNS`]).
pub(crate) fn contains_any(
    patterns: &[&'static str],
    write: impl FnOnce(&mut dyn Write) -> fmt::Result,
) -> bool {
    contains_within(patterns, BUDGET, write)
}

fn contains_within(
    patterns: &[&'static str],
    budget: usize,
    write: impl FnOnce(&mut dyn Write) -> fmt::Result,
) -> bool {
    assert!(
        patterns.len() <= MAX_PATTERNS,
        "at most {MAX_PATTERNS} patterns at once"
    );
    if patterns.iter().any(|p| p.is_empty()) {
        return true;
    }
    let mut scan = Scan {
        patterns,
        progress: [0; MAX_PATTERNS],
        budget,
        found: false,
    };
    // An error here is the scan stopping the write early; the answer is `found`.
    let _ = write(&mut scan);
    scan.found
}

const MAX_PATTERNS: usize = 4;

struct Scan<'p> {
    patterns: &'p [&'static str],
    progress: [usize; MAX_PATTERNS],
    budget: usize,
    found: bool,
}

impl Write for Scan<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // A `Display` may ignore the error that stopped it and write on; a
        // finished scan reads nothing more (and a matched pattern's
        // progress must not be stepped past its end).
        if self.found {
            return Err(fmt::Error);
        }
        for &byte in s.as_bytes() {
            if self.budget == 0 {
                return Err(fmt::Error);
            }
            self.budget -= 1;
            for (pattern, done) in self.patterns.iter().zip(&mut self.progress) {
                let pattern = pattern.as_bytes();
                *done = advance(pattern, *done, byte);
                if *done == pattern.len() {
                    self.found = true;
                    return Err(fmt::Error);
                }
            }
        }
        Ok(())
    }
}

/// The string-matching automaton's step: having matched `pattern[..done]`,
/// read `byte`, and return the length of the longest prefix of `pattern`
/// that ends the text read so far. Patterns are a few dozen bytes, so the
/// fallback is searched directly instead of precomputed (no allocation).
fn advance(pattern: &[u8], done: usize, byte: u8) -> usize {
    if pattern[done] == byte {
        return done + 1;
    }
    // The text ends with pattern[..done] + byte; find the longest prefix
    // `pattern[..len]` that is a suffix of it.
    (1..=done)
        .rev()
        .find(|&len| {
            pattern[len - 1] == byte && pattern[..len - 1] == pattern[done + 1 - len..done]
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(patterns: &[&'static str], text: &str) -> bool {
        contains_any(patterns, |w| {
            // Write in awkward pieces, as a Debug impl would.
            for piece in text.as_bytes().chunks(3) {
                w.write_str(std::str::from_utf8(piece).unwrap())?;
            }
            Ok(())
        })
    }

    #[test]
    fn finds_a_pattern_across_writes() {
        assert!(found(
            &["GoAway("],
            r#"hyper::Error(Http2, Error { kind: GoAway(b"", NO_ERROR, Remote) })"#
        ));
        assert!(found(
            &["GoAway(", "Reset("],
            "Reset(StreamId(1), CANCEL, Remote)"
        ));
        assert!(!found(&["GoAway("], "GoAway without a paren"));
        assert!(found(&["dns error"], "ddns error"));
    }

    #[test]
    fn stops_reading_after_the_budget() {
        let text = format!("{}GoAway(", "x".repeat(BUDGET));
        assert!(!found(&["GoAway("], &text));
    }

    #[test]
    fn a_pattern_that_overlaps_itself_is_found() {
        assert!(found(&["aab"], "aaab"));
        assert!(found(&["abab"], "ababab"));
        assert!(found(
            &["connection error received"],
            "conneconnection error received"
        ));
        assert!(!found(&["aab"], "abab"));
    }

    /// A third-party `Display` that ignores the scan's stop and writes on.
    struct WritesOn;

    impl fmt::Display for WritesOn {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for piece in ["GoAway(", "NO_ERROR", ") and more"] {
                let _ = f.write_str(piece);
            }
            Ok(())
        }
    }

    #[test]
    fn a_display_that_writes_on_after_a_match_is_read_no_further() {
        assert!(text_contains(&WritesOn, &["GoAway("]));
        assert!(text_contains(&WritesOn, &["(", "more"]));
    }

    #[test]
    fn exact_text_matches_only_the_whole_text() {
        assert!(text_is(&"deadline has elapsed", "deadline has elapsed"));
        assert!(!text_is(&"deadline has elapsed!", "deadline has elapsed"));
        assert!(!text_is(&"deadline has", "deadline has elapsed"));
        assert!(!text_is(&WritesOn, "GoAway(NO_ERROR"));
        assert!(text_is(&WritesOn, "GoAway(NO_ERROR) and more"));
    }

    #[test]
    fn empty_and_many_patterns() {
        assert!(text_contains(&"anything", &[""]));
        assert!(text_contains(&"five", &["a", "b", "c", "d", "five"]));
        assert!(!text_contains(&"six", &["a", "b", "c", "d", "five"]));
    }
}
