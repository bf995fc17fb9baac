//! Counting errors by kind, so that a warning about them is loud once and
//! then only counted.
//!
//! During a drain every failed request carries the same error, so a warning
//! per error would be thousands a second. A kind of error is its outermost
//! type, as its `Debug` names it, plus a context the caller gives (the
//! backends that could not read it, say); each kind is due a warning the
//! first time, and again at its 10th, 100th, 1,000th... occurrence.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::text::{debug_type_hash, fnv1a};

/// How many kinds are told apart; beyond this, new kinds share one count
/// (and one warning).
const MAX_KINDS: usize = 64;

/// Errors counted by kind, for warnings that do not flood the log.
///
/// Meant for a `static`, one per warning:
///
/// ```
/// use classify_core::Occurrences;
///
/// static UNEXPECTED: Occurrences = Occurrences::new();
///
/// fn warn_about(err: &std::io::Error) {
///     if let Some(occurrences) = UNEXPECTED.count(err, []) {
///         eprintln!("unexpected error ({occurrences} of its kind so far): {err}");
///     }
/// }
///
/// let err = std::io::Error::other("disk on fire");
/// assert_eq!(UNEXPECTED.count(&err, []), Some(1));
/// assert_eq!(UNEXPECTED.count(&err, []), None);
/// assert_eq!(UNEXPECTED.count(&err, ["another context"]), Some(1));
/// assert_eq!(UNEXPECTED.total(), 3);
/// ```
pub struct Occurrences {
    total: AtomicU64,
    /// (kind, occurrences): a handful of kinds, so a short list.
    kinds: Mutex<Vec<(u64, u64)>>,
}

impl Occurrences {
    /// Nothing counted yet.
    pub const fn new() -> Self {
        Occurrences {
            total: AtomicU64::new(0),
            kinds: Mutex::new(Vec::new()),
        }
    }

    /// Counts one more `err`, of the kind its `Debug` and `context` make.
    /// Returns how many of that kind have been counted when a warning is
    /// due (the first, the 10th, the 100th...), and `None` otherwise.
    ///
    /// Allocates only when it meets a new kind; never panics.
    pub fn count<'c>(
        &self,
        err: &dyn fmt::Debug,
        context: impl IntoIterator<Item = &'c str>,
    ) -> Option<u64> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut kind = debug_type_hash(err);
        for byte in context.into_iter().flat_map(str::bytes) {
            kind = fnv1a(kind, byte);
        }
        let occurrences = {
            // A panic elsewhere while holding the lock leaves a usable table.
            let mut kinds = self
                .kinds
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = match kinds.iter().position(|&(k, _)| k == kind) {
                Some(slot) => slot,
                None if kinds.len() < MAX_KINDS => {
                    kinds.push((kind, 0));
                    kinds.len() - 1
                }
                None => kinds.len() - 1,
            };
            kinds[slot].1 += 1;
            kinds[slot].1
        };
        is_power_of_ten(occurrences).then_some(occurrences)
    }

    /// How many errors have been counted, of every kind.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Default for Occurrences {
    fn default() -> Self {
        Occurrences::new()
    }
}

impl fmt::Debug for Occurrences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Occurrences")
            .field("total", &self.total())
            .finish_non_exhaustive()
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_ten() {
        let warned: Vec<u64> = (1..=2000).filter(|&n| is_power_of_ten(n)).collect();
        assert_eq!(warned, [1, 10, 100, 1000]);
    }

    #[test]
    fn a_kind_is_warned_about_at_powers_of_ten_and_kinds_are_apart() {
        #[derive(Debug)]
        struct Refused;
        #[derive(Debug)]
        struct Reset(#[allow(dead_code)] u32);
        let counts = Occurrences::new();
        let due: Vec<u64> = (0..100)
            .filter_map(|_| counts.count(&Refused, []))
            .collect();
        assert_eq!(due, [1, 10, 100]);
        // The fields do not make a kind; the type and the context do.
        assert_eq!(counts.count(&Reset(1), []), Some(1));
        assert_eq!(counts.count(&Reset(2), []), None);
        assert_eq!(counts.count(&Reset(2), ["legacy"]), Some(1));
        assert_eq!(counts.total(), 103);
    }

    #[test]
    fn kinds_beyond_the_table_share_one_count() {
        let counts = Occurrences::new();
        let names: Vec<String> = (0..MAX_KINDS + 5).map(|n| format!("Kind{n}")).collect();
        struct Named<'a>(&'a str);
        impl fmt::Debug for Named<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        let warned = names
            .iter()
            .filter(|name| counts.count(&Named(name), []).is_some())
            .count();
        assert_eq!(warned, MAX_KINDS);
        assert_eq!(counts.kinds.lock().unwrap().len(), MAX_KINDS);
    }
}
