//! The warning about h2-shaped errors no backend read: loud once, then
//! counted.
//!
//! During a drain every failed request carries the same unread `GOAWAY`, so
//! a warning per classification would be thousands a second. Each kind of
//! error (its outermost type, as its `Debug` names it, and the backends
//! that could not read it) is warned about the first time, and again at its
//! 10th, 100th, 1,000th... occurrence with the count; every occurrence is
//! counted ([`unread_h2_errors`]).

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::text::{debug_type_hash, fnv1a};
use crate::Classifier;

/// How many kinds of error are told apart; beyond this, new kinds share one
/// count (and one warning).
const MAX_KINDS: usize = 64;

static TOTAL: AtomicU64 = AtomicU64::new(0);
static KINDS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// How many errors that look like an h2 `GOAWAY` or `RST_STREAM`, but that
/// no enabled backend could read, this process has classified (each one a
/// [`Cause::Unrecognized { h2_shaped: true }`](crate::Cause::Unrecognized)).
///
/// Anything above zero means a missing feature or an h2 version drift:
/// export it as a metric and alert on it.
///
/// ```
/// assert_eq!(classify_core::unread_h2_errors(), 0);
/// ```
pub fn unread_h2_errors() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Counts `err`, and warns if it is the first of its kind or its count is a
/// power of ten.
pub(crate) fn report(err: &(dyn Error + 'static), classifier: &Classifier<'_>) {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    let mut key = debug_type_hash(&err);
    for byte in classifier.backend_names().flat_map(str::bytes) {
        key = fnv1a(key, byte);
    }
    let occurrences = {
        // A panic elsewhere while holding the lock leaves a usable table.
        let mut kinds = KINDS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = match kinds.iter().position(|&(k, _)| k == key) {
            Some(slot) => slot,
            None if kinds.len() < MAX_KINDS => {
                kinds.push((key, 0));
                kinds.len() - 1
            }
            None => kinds.len() - 1,
        };
        kinds[slot].1 += 1;
        kinds[slot].1
    };
    if !is_power_of_ten(occurrences) {
        return;
    }
    tracing::warn!(
        error = %err,
        backends = ?classifier,
        occurrences,
        "an error that looks like an HTTP/2 GOAWAY or RST_STREAM was not recognised \
         by any enabled backend: most likely it comes from an h2 major version that no \
         enabled hyper-classify feature covers (hyper 0.14 needs `legacy`, hyper 1 \
         needs `modern`); further ones of this kind are counted (unread_h2_errors) and \
         warned about at every power of ten"
    );
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
}
