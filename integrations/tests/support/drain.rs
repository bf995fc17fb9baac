//! GETs and POSTs with bodies through nginx draining every connection,
//! counted against the backend's ledger.

use std::error::Error;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use h2_frame_server::ledger::Ledger;
use hyper_classify::Cause;

/// What a drain did to its requests.
#[derive(Debug, Default)]
pub struct Drained {
    /// Failures other than `lost`, as `id: verdict`.
    pub failed: Vec<String>,
    /// Requests hyper-util lost in a closing connection's dispatch queue
    /// (see the README's retry section): they never reached the server and
    /// end at the client's timeout, which a classifier cannot tell from a
    /// request the server sat on.
    pub lost: Vec<u64>,
    /// Requests the backend never processed, `lost` aside.
    pub never: usize,
    /// POSTs (even ids) the backend processed more than once.
    pub posts_twice: usize,
}

impl Drained {
    /// Fails the test unless nothing failed, at most two requests were lost
    /// in the client, everything else was processed and no POST twice.
    pub fn assert_clean(&self) {
        assert!(
            self.failed.is_empty(),
            "{} failed, e.g. {:?}",
            self.failed.len(),
            &self.failed[..self.failed.len().min(5)]
        );
        // A few in tens of thousands, as through hyper alone; more is new.
        assert!(
            self.lost.len() <= 2,
            "{} requests lost in the client",
            self.lost.len()
        );
        assert_eq!(self.never, 0, "every request processed");
        assert_eq!(self.posts_twice, 0, "no POST processed twice");
    }
}

/// Sends request `id` for every id in `ids` with `send` (even ids are
/// POSTs with a body, odd ones GETs, each carrying `x-request-id`), 64 in
/// flight, and counts what became of them against `ledger`.
pub async fn drain<F, Fut, E>(ids: Range<u64>, ledger: &Ledger, send: F) -> Drained
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: Error + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    let mut requests = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let slot = slots.clone().acquire_owned().await.unwrap();
        let request = send(id);
        requests.spawn(async move {
            let result = request.await;
            drop(slot);
            (id, result)
        });
    }
    let mut drained = Drained::default();
    while let Some(joined) = requests.join_next().await {
        if let (id, Err(err)) = joined.unwrap() {
            let verdict = hyper_classify::classify(&err);
            match verdict.cause() {
                Cause::Timeout if ledger.times_processed(id) == 0 => drained.lost.push(id),
                _ => drained.failed.push(format!("{id}: {verdict}")),
            }
        }
    }
    drained.posts_twice = ids
        .clone()
        .filter(|id| id % 2 == 0 && ledger.times_processed(*id) > 1)
        .count();
    drained.never = ids
        .filter(|id| ledger.times_processed(*id) == 0 && !drained.lost.contains(id))
        .count();
    drained
}
