//! Classification of arbitrary, badly behaved error chains.
//!
//! Every chain here is built from links whose `Display` and `Debug` keep
//! writing after the formatter said stop, fail part way, print huge or
//! multibyte text or fragments of the texts the classifier looks for, and
//! whose `source()` points anywhere in the chain: back, to itself, or
//! somewhere different on every call. Real h2 0.3 and 0.4 errors and
//! `io::Error`s wrapping such links are mixed in.
//!
//! The cases run are `FUZZ_CASES` (2,000 by default); a long run:
//!
//! ```text
//! FUZZ_CASES=10000000 cargo test --release -p hyper-classify-tests --test fuzz
//! ```

mod support;

use std::error::Error;
use std::fmt::{self, Write as _};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use hyper_classify::{classify, Cause, Chain, RetrySafety, MAX_LINKS};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Texts the classifier matches, whole and in halves, and text around them.
const PIECES: &[&str] = &[
    "GOAWAY",
    "GoAway(",
    "Reset(",
    "NO_ERROR",
    "REFUSED_STREAM",
    "Remote",
    "deadline has elapsed",
    "deadline has ",
    "elapsed",
    "request timed out",
    "request ",
    "timed out",
    "operation timed out",
    "upgrade expected",
    "upgrade ",
    "dns error",
    "connection refused",
    "error trying to connect",
    "é",
    "日本",
    "🦀",
    "",
    " ",
    ")",
];

/// One write of a `Display` or `Debug`.
#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    /// This many bytes of `x`, in 4 KiB writes.
    Huge(usize),
}

/// How a link prints itself, in `Display` or in `Debug`.
#[derive(Clone, Debug)]
struct Printing {
    pieces: Vec<Piece>,
    /// Returns `fmt::Error` before writing this piece.
    fail_at: Option<usize>,
    /// Goes on writing after the formatter returned an error.
    ignores_errors: bool,
}

impl Printing {
    fn print(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, piece) in self.pieces.iter().enumerate() {
            if self.fail_at == Some(at) {
                return Err(fmt::Error);
            }
            let written = match piece {
                Piece::Text(text) if at % 2 == 0 => f.write_str(text),
                Piece::Text(text) => text.chars().try_for_each(|c| f.write_char(c)),
                Piece::Huge(len) => {
                    let chunk = HUGE_CHUNK.get_or_init(|| "x".repeat(4096));
                    (0..len / 4096)
                        .map(|_| chunk.as_str())
                        .chain([&chunk[..len % 4096]])
                        .try_for_each(|part| f.write_str(part))
                }
            };
            if written.is_err() && !self.ignores_errors {
                return written;
            }
        }
        Ok(())
    }
}

static HUGE_CHUNK: OnceLock<String> = OnceLock::new();

/// Where a link's `source()` points.
#[derive(Clone, Debug)]
enum Source {
    None,
    /// A link of the chain by index: before, after or itself.
    Link(usize),
    /// A different link on each call.
    Wandering(Vec<usize>),
}

/// One link, as generated.
#[derive(Clone, Debug)]
enum Spec {
    Odd {
        display: Printing,
        debug: Printing,
        source: Source,
    },
    /// An `io::Error` of a kind, wrapping an odd link.
    Io {
        kind: usize,
        display: Printing,
        source: Source,
    },
    H2_03(u32),
    H2_04(u32),
}

/// The links of one chain, each reachable from any other.
type Links = OnceLock<Vec<LinkPtr>>;

/// A link of the chain, from another link of it.
struct LinkPtr(*const (dyn Error + 'static));

// SAFETY: a `LinkPtr` points into a box owned by the `Arena` that owns the
// link holding it; it is only read, and never outlives the arena.
unsafe impl Send for LinkPtr {}
unsafe impl Sync for LinkPtr {}

/// A link that behaves as its [`Spec`] says.
struct Odd {
    display: Printing,
    debug: Printing,
    source: Source,
    calls: AtomicUsize,
    links: Arc<Links>,
    sources_asked: Arc<AtomicUsize>,
}

impl fmt::Display for Odd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display.print(f)
    }
}

impl fmt::Debug for Odd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug.print(f)
    }
}

impl Error for Odd {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.sources_asked.fetch_add(1, Ordering::Relaxed);
        let calls = self.calls.fetch_add(1, Ordering::Relaxed);
        let index = match &self.source {
            Source::None => return None,
            Source::Link(index) => *index,
            Source::Wandering(indices) => indices[calls % indices.len()],
        };
        let links = self.links.get()?;
        // SAFETY: see `LinkPtr`.
        links.get(index).map(|link| unsafe { &*link.0 })
    }
}

/// A chain's links, owned; the first is the outermost error.
struct Arena {
    links: Vec<Box<dyn Error + Send + Sync>>,
    sources_asked: Arc<AtomicUsize>,
    wanders: bool,
}

impl Arena {
    fn build(specs: &[Spec]) -> Arena {
        let table = Arc::new(Links::new());
        let sources_asked = Arc::new(AtomicUsize::new(0));
        let odd = |display: &Printing, debug: &Printing, source: &Source| Odd {
            display: display.clone(),
            debug: debug.clone(),
            source: source.clone(),
            calls: AtomicUsize::new(0),
            links: table.clone(),
            sources_asked: sources_asked.clone(),
        };
        let links: Vec<Box<dyn Error + Send + Sync>> = specs
            .iter()
            .map(|spec| -> Box<dyn Error + Send + Sync> {
                match spec {
                    Spec::Odd {
                        display,
                        debug,
                        source,
                    } => Box::new(odd(display, debug, source)),
                    Spec::Io {
                        kind,
                        display,
                        source,
                    } => Box::new(io::Error::new(
                        support::IO_KINDS[*kind],
                        odd(display, display, source),
                    )),
                    Spec::H2_03(reason) => {
                        Box::new(h2_03::Error::from(h2_03::Reason::from(*reason)))
                    }
                    Spec::H2_04(reason) => {
                        Box::new(h2_04::Error::from(h2_04::Reason::from(*reason)))
                    }
                }
            })
            .collect();
        let pointers = links
            .iter()
            .map(|link| LinkPtr(&**link as &(dyn Error + 'static) as *const _))
            .collect();
        table.set(pointers).unwrap_or_else(|_| unreachable!());
        let wanders = specs.iter().any(|spec| {
            matches!(
                spec,
                Spec::Odd {
                    source: Source::Wandering(_),
                    ..
                } | Spec::Io {
                    source: Source::Wandering(_),
                    ..
                }
            )
        });
        Arena {
            links,
            sources_asked,
            wanders,
        }
    }

    fn outermost(&self) -> &(dyn Error + 'static) {
        &*self.links[0]
    }
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        8 => prop::sample::select(PIECES).prop_map(|text| Piece::Text(text.into())),
        4 => prop::collection::vec(any::<char>(), 0..12)
            .prop_map(|chars| Piece::Text(chars.into_iter().collect())),
        1 => (1usize..70_000).prop_map(Piece::Huge),
    ]
}

fn printing() -> impl Strategy<Value = Printing> {
    (
        prop::collection::vec(piece(), 0..6),
        prop::option::weighted(0.2, 0usize..6),
        any::<bool>(),
    )
        .prop_map(|(pieces, fail_at, ignores_errors)| Printing {
            pieces,
            fail_at,
            ignores_errors,
        })
}

fn source(links: usize) -> impl Strategy<Value = Source> {
    prop_oneof![
        1 => Just(Source::None),
        4 => (0..links).prop_map(Source::Link),
        1 => prop::collection::vec(0..links, 1..4).prop_map(Source::Wandering),
    ]
}

/// A reason code: every code h2 names, and some it does not.
fn reason() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=0xd, any::<u32>()]
}

fn spec(links: usize) -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (printing(), printing(), source(links)).prop_map(|(display, debug, source)| Spec::Odd {
            display,
            debug,
            source,
        }),
        2 => (0..support::IO_KINDS.len(), printing(), source(links)).prop_map(|(kind, display, source)| Spec::Io {
            kind,
            display,
            source,
        }),
        1 => reason().prop_map(Spec::H2_03),
        1 => reason().prop_map(Spec::H2_04),
    ]
}

fn chain() -> impl Strategy<Value = Vec<Spec>> {
    (1usize..48).prop_flat_map(|links| prop::collection::vec(spec(links), links))
}

fn cases() -> u32 {
    match std::env::var("FUZZ_CASES") {
        Ok(cases) => cases
            .parse()
            .unwrap_or_else(|_| panic!("FUZZ_CASES={cases:?} is not a number of cases")),
        Err(_) => 2_000,
    }
}

#[test]
fn classify_never_panics_walks_at_most_max_links_and_refuses_what_it_does_not_know() {
    let cases = cases();
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    TestRunner::new(config)
        .run(&chain(), |specs| {
            let arena = Arena::build(&specs);
            let err = arena.outermost();

            let verdict = classify(err);
            let asked = arena.sources_asked.swap(0, Ordering::Relaxed);
            // Each pass over the chain asks each link at most once; the
            // classifier makes a bounded number of passes.
            prop_assert!(asked <= 3 * MAX_LINKS, "source() asked {asked} times");
            prop_assert!(Chain::new(err).count() <= MAX_LINKS);
            if let Cause::Unrecognized { .. } = verdict.cause() {
                prop_assert_eq!(verdict.safety(), RetrySafety::Never);
            }
            if !arena.wanders {
                prop_assert_eq!(classify(err), verdict);
            }
            Ok(())
        })
        .unwrap();
    println!(
        "{cases} chains classified in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
