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
/// At most four patterns, each border-free (no proper prefix of a pattern is
/// also its suffix: `"(User"` is, `"abab"` is not). Only the first 8 KiB of
/// text is read.
///
/// ```
/// assert!(classify_core::text_contains(&"client error (UserAbsoluteUriRequired)", &["(User"]));
/// assert!(!classify_core::text_contains(&"client error (Connect)", &["(User"]));
/// ```
pub fn text_contains(value: &dyn fmt::Display, patterns: &[&'static str]) -> bool {
    contains_any(patterns, |w| write!(w, "{value}"))
}

/// Whether the text that `write` produces contains any of `patterns`.
///
/// Each pattern must be border-free (no proper prefix is also a suffix), which
/// lets the matcher restart at the current byte without backtracking.
pub(crate) fn contains_any(
    patterns: &[&'static str],
    write: impl FnOnce(&mut dyn Write) -> fmt::Result,
) -> bool {
    debug_assert!(patterns.len() <= MAX_PATTERNS);
    debug_assert!(patterns.iter().all(|p| is_border_free(p.as_bytes())));
    let mut scan = Scan {
        patterns,
        progress: [0; MAX_PATTERNS],
        budget: BUDGET,
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
        for &byte in s.as_bytes() {
            if self.budget == 0 {
                return Err(fmt::Error);
            }
            self.budget -= 1;
            for (pattern, done) in self.patterns.iter().zip(&mut self.progress) {
                let pattern = pattern.as_bytes();
                *done = if pattern[*done] == byte {
                    *done + 1
                } else {
                    usize::from(pattern[0] == byte)
                };
                if *done == pattern.len() {
                    self.found = true;
                    return Err(fmt::Error);
                }
            }
        }
        Ok(())
    }
}

fn is_border_free(pattern: &[u8]) -> bool {
    (1..pattern.len()).all(|len| pattern[..len] != pattern[pattern.len() - len..])
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
    fn border_free_is_checked() {
        assert!(is_border_free(b"GoAway("));
        assert!(!is_border_free(b"abab"));
    }
}
