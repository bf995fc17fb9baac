//! What a run saw, as tables or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::drive::{ClientTally, Mode, Stack};

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
    /// Errors that reached the caller.
    pub errors: u64,
    /// Requests the server processed more than once that are not
    /// idempotent (`POST`s), when the server is ours.
    pub duplicates: Option<u64>,
}

impl Row {
    /// A row from a client tally and, for our own servers, what they saw.
    pub fn new(stack: Stack, scenario: String, mode: Mode, tally: &ClientTally) -> Self {
        Row {
            stack,
            scenario,
            mode,
            requests: tally.requests,
            go_aways: None,
            resets: None,
            causes: tally.causes.clone(),
            retries: tally.retries,
            errors: tally.errors,
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
                "  {:<16} {:>8} {:>8} {:>7} {:>8} {:>8} {:>10}  failed attempts by cause",
                "mode", "requests", "GOAWAYs", "resets", "retries", "errors", "duplicates"
            );
            last = Some(group);
        }
        let optional = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        let causes: Vec<String> = row
            .causes
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!(
            "  {:<16} {:>8} {:>8} {:>7} {:>8} {:>8} {:>10}  {}",
            row.mode.name(),
            row.requests,
            optional(row.go_aways),
            optional(row.resets),
            row.retries,
            row.errors,
            optional(row.duplicates),
            causes.join(", ")
        );
    }
}
