//! What a run saw, as tables or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::drive::{ClientTally, Kind, Mode, Stack};

/// One stack, scenario and mode.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The stack.
    pub stack: Stack,
    /// The scenario (or the probed target).
    pub scenario: String,
    /// How failures were handled.
    pub mode: Mode,
    /// Requests sent by the caller.
    pub requests: u64,
    /// GOAWAYs the server sent (when the server is ours).
    pub go_aways: Option<u64>,
    /// Streams the server refused or reset (when the server is ours).
    pub resets: Option<u64>,
    /// Failed attempts and retries, by hyper-classify's verdict.
    pub causes: BTreeMap<String, u64>,
    /// Retries made.
    pub retries: u64,
    /// Errors that reached the caller, by kind of request.
    pub errors: BTreeMap<Kind, u64>,
    /// Why the failed requests stopped: the retry layer's `StopReason`, or
    /// the cause of an error nothing retried.
    pub stopped: BTreeMap<String, u64>,
    /// Failed requests the server had processed all the same (when the
    /// server is ours).
    pub failed_yet_processed: Option<u64>,
    /// `POST`s the server processed more than once (when the server is
    /// ours): must be 0.
    pub duplicates: Option<u64>,
}

impl Row {
    /// A row from a client tally; what the server saw is added by the caller.
    pub fn new(stack: Stack, scenario: String, mode: Mode, tally: &ClientTally) -> Self {
        let mut stopped = BTreeMap::new();
        for failure in &tally.failures {
            *stopped.entry(failure.why.clone()).or_default() += 1;
        }
        Row {
            stack,
            scenario,
            mode,
            requests: tally.requests,
            go_aways: None,
            resets: None,
            causes: tally.causes.clone(),
            retries: tally.retries,
            errors: Kind::ALL
                .into_iter()
                .map(|kind| (kind, tally.errors_of(kind)))
                .collect(),
            stopped,
            failed_yet_processed: None,
            duplicates: None,
        }
    }
}

/// Prints rows as one table per stack and scenario.
pub fn print_tables(rows: &[Row]) {
    let mut last = None;
    for row in rows {
        let group = (row.stack.name(), row.scenario.as_str());
        if last != Some(group) {
            println!("\n{} · {}", group.0, group.1);
            println!(
                "  {:<16} {:>8} {:>7} {:>6} {:>7} {:>7} {:>9} {:>8} {:>9} {:>5}  why the failed ones stopped; failed attempts by cause",
                "mode", "requests", "GOAWAYs", "resets", "retries", "GET err", "POST+body", "POST err", "processed", "dups"
            );
            last = Some(group);
        }
        let optional = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        let list = |map: &BTreeMap<String, u64>| {
            map.iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {:<16} {:>8} {:>7} {:>6} {:>7} {:>7} {:>9} {:>8} {:>9} {:>5}  {}; {}",
            row.mode.name(),
            row.requests,
            optional(row.go_aways),
            optional(row.resets),
            row.retries,
            row.errors[&Kind::Get],
            row.errors[&Kind::PostWithBody],
            row.errors[&Kind::PostWithoutBody],
            optional(row.failed_yet_processed),
            optional(row.duplicates),
            if row.stopped.is_empty() {
                "-".to_string()
            } else {
                list(&row.stopped)
            },
            list(&row.causes),
        );
    }
}
