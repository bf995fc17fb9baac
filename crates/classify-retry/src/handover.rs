//! Whether an attempt has left the client: a marker in the request's
//! extensions that the client drops when it hands the request to a
//! connection.
//!
//! hyper (0.14 and hyper-util's client alike) drops a request's extensions
//! when it turns the request into frames: h2 keeps only the method, URI and
//! headers of the `http::Request` it is given, and HTTP/1 encodes the head
//! and drops it. Until then the request waits in the client: for a
//! connection from the pool, for a connect, or in a connection's dispatch
//! queue. So while the marker lives, the attempt has reached no server.
//!
//! That matters because a request can wait in a dispatch queue forever. A
//! connection's dispatch task stops when the peer's `GOAWAY` arrives; a
//! request sent into its queue at that very moment can land after the queue
//! was drained on close (tokio's mpsc lets a send that passed the closed
//! check finish after the receiver's drop), and the request's own future
//! keeps a sender, and so the queue, alive. The request then never fails
//! and never completes. Seen under nginx draining every 100 requests, on
//! both hyper 0.14 and hyper 1, a few requests in tens of thousands.
//! [`RetryConfig::handover_timeout`](super::RetryConfig::handover_timeout)
//! gives such an attempt up and sends it again: safe for any request, since
//! it never left the client.

use std::sync::{Arc, Weak};

/// Rides in an attempt's request extensions while the client holds the
/// request; see [`Replay::mark`](super::Replay::mark).
///
/// A clone is a new, unlinked marker: a layer that copies a request's
/// extensions cannot make an attempt that left the client look unsent.
#[derive(Debug)]
pub struct HandoverMarker {
    _alive: Arc<()>,
}

impl Clone for HandoverMarker {
    fn clone(&self) -> Self {
        HandoverMarker {
            _alive: Arc::new(()),
        }
    }
}

/// Watches one attempt's [`HandoverMarker`].
#[derive(Debug)]
pub(crate) struct HandoverWatch(Weak<()>);

impl HandoverWatch {
    /// A marker to put in the attempt's request, and its watch.
    pub(crate) fn new() -> (HandoverMarker, HandoverWatch) {
        let marker = Arc::new(());
        let watch = HandoverWatch(Arc::downgrade(&marker));
        (HandoverMarker { _alive: marker }, watch)
    }

    /// Whether the marker was dropped: the client handed the request to a
    /// connection, or the attempt (or whoever held the request) dropped it.
    pub(crate) fn is_handed_over(&self) -> bool {
        self.0.strong_count() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_sees_the_marker_dropped() {
        let (marker, watch) = HandoverWatch::new();
        assert!(!watch.is_handed_over());
        drop(marker);
        assert!(watch.is_handed_over());
    }

    #[test]
    fn a_clone_does_not_keep_the_attempt_unsent() {
        let (marker, watch) = HandoverWatch::new();
        let copy = marker.clone();
        drop(marker);
        assert!(watch.is_handed_over());
        drop(copy);
    }
}
