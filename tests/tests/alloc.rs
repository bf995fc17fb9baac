//! `classify` never allocates: on real chains of both stacks, counted by a
//! counting global allocator on the classifying thread.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::error::Error;

use h2_frame_server::Reason as Wire;
use hyper_classify::{classify, Cause, Verdict};

struct Counting;

thread_local! {
    /// Allocations made on this thread while counting, or `None`.
    static ALLOCATIONS: Cell<Option<usize>> = const { Cell::new(None) };
}

// SAFETY: every call is passed on to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get().map(|n| n + 1)));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get().map(|n| n + 1)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `classify(err)`, and the allocations it made.
fn counted(err: &(dyn Error + 'static)) -> (Verdict, usize) {
    ALLOCATIONS.with(|count| count.set(Some(0)));
    let verdict = classify(err);
    let allocations = ALLOCATIONS.with(|count| count.replace(None)).unwrap_or(0);
    (verdict, allocations)
}

fn assert_no_allocation(what: &str, err: &(dyn Error + 'static), cause: Cause) {
    let (verdict, allocations) = counted(err);
    assert_eq!(verdict.cause(), cause, "{what}: {err:?}");
    assert_eq!(allocations, 0, "{what}: classify allocated ({err:?})");
}

#[test]
fn the_counter_counts() {
    let (_, allocations) = counted(&std::io::Error::other(format!("{}", 1)));
    assert_eq!(allocations, 0, "made before counting");
    ALLOCATIONS.with(|count| count.set(Some(0)));
    drop(std::hint::black_box(vec![1u8; 16]));
    assert_eq!(ALLOCATIONS.with(|count| count.replace(None)), Some(1));
}

/// `classify` on one stack's real GOAWAY, REFUSED_STREAM and connect-refused
/// chains.
macro_rules! alloc_tests {
    ($stack:ident, $feature:literal, $name:ident) => {
        #[cfg(feature = $feature)]
        #[tokio::test]
        async fn $name() {
            use support::$stack;
            let server = support::go_away_on_first_request(0, Wire::NO_ERROR).await;
            let go_away = $stack::h2_get(&server.url()).await.unwrap_err();
            assert_no_allocation("GOAWAY", &go_away, go_away_cause());

            let server = support::reset_every_request(Wire::REFUSED_STREAM).await;
            let reset = $stack::h2_get(&server.url()).await.unwrap_err();
            assert_no_allocation("REFUSED_STREAM", &reset, reset_cause());

            let url = format!("http://{}/", support::closed_port().await);
            let refused = $stack::h2_get(&url).await.unwrap_err();
            assert_no_allocation("connect refused", &refused, refused_cause());
        }
    };
}

alloc_tests!(
    legacy,
    "legacy",
    classify_does_not_allocate_on_hyper_0_14_chains
);
alloc_tests!(
    modern,
    "modern",
    classify_does_not_allocate_on_hyper_1_chains
);

fn go_away_cause() -> Cause {
    Cause::GoAway {
        reason: hyper_classify::Reason::NO_ERROR,
        initiator: hyper_classify::Initiator::Remote,
    }
}

fn reset_cause() -> Cause {
    Cause::StreamReset {
        reason: hyper_classify::Reason::REFUSED_STREAM,
        initiator: hyper_classify::Initiator::Remote,
    }
}

fn refused_cause() -> Cause {
    Cause::Connect(hyper_classify::ConnectKind::Refused)
}
