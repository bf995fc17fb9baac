//! What a backend sees in one link of an error chain.
//!
//! The decision table is written once, against these version-neutral views.
//! A backend (one per h2 / hyper major version) only has to recognise its own
//! types and describe them with a [`View`]; the two `view_*!` macros do even
//! that for the parts of the hyper and h2 APIs that all versions share.

use std::error::Error;
use std::io;

use crate::{Initiator, Reason};

/// One h2 / hyper major version's knowledge of its own error types.
///
/// A backend is the only place that names a version's concrete types, so a
/// downcast to the wrong `h2::Error` cannot be written anywhere else.
///
/// ```
/// use classify_core::backend::{Backend, View};
/// use std::error::Error;
///
/// /// A backend that recognises nothing (a real one downcasts here).
/// struct Blind;
///
/// impl Backend for Blind {
///     fn name(&self) -> &'static str { "blind" }
///     fn view<'e>(&self, _link: &'e (dyn Error + 'static)) -> Option<View<'e>> { None }
/// }
/// ```
pub trait Backend: Send + Sync {
    /// Which stack this backend reads, e.g. `"hyper 1 / h2 0.4"`.
    fn name(&self) -> &'static str;

    /// Describes `link` if it is one of this backend's error types.
    fn view<'e>(&self, link: &'e (dyn Error + 'static)) -> Option<View<'e>>;
}

/// A backend's description of one link.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum View<'e> {
    /// An `h2::Error`.
    H2(H2View<'e>),
    /// A hyper (or hyper-util client) error.
    Hyper(HyperView),
}

/// What an `h2::Error` says, in any h2 version.
///
/// Make one with `view_h2_error!`.
#[derive(Clone, Copy, Debug)]
pub struct H2View<'e> {
    pub(crate) frame: H2Frame,
    pub(crate) reason: Option<Reason>,
    pub(crate) initiator: Initiator,
    pub(crate) io: Option<&'e io::Error>,
}

/// Which frame an h2 error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum H2Frame {
    GoAway,
    Reset,
    /// A reason alone, as hyper makes them (`h2::Error::from(reason)`).
    BareReason,
    /// An io error or a misuse of the h2 API: no frame.
    None,
}

impl<'e> H2View<'e> {
    /// An error from a `GOAWAY` frame.
    pub fn go_away(reason: Reason, initiator: Initiator) -> Self {
        Self::frame(H2Frame::GoAway, Some(reason), initiator)
    }

    /// An error from a `RST_STREAM` frame.
    pub fn reset(reason: Reason, initiator: Initiator) -> Self {
        Self::frame(H2Frame::Reset, Some(reason), initiator)
    }

    /// An h2 error that is only a reason, with no frame behind it. h2 never
    /// makes one; hyper does, to fail a request with its connection's error
    /// code (hyper 1.13, for a request parked at the peer's stream limit
    /// when a `GOAWAY` other than `NO_ERROR` ends the connection).
    pub fn bare_reason(reason: Reason) -> Self {
        Self::frame(H2Frame::BareReason, Some(reason), Initiator::Library)
    }

    /// An h2 error that wraps an io error; the walk goes on into `io`.
    pub fn io(io: &'e io::Error) -> Self {
        H2View {
            io: Some(io),
            ..Self::frame(H2Frame::None, None, Initiator::Library)
        }
    }

    /// Any other h2 error (misuse of the h2 API).
    pub fn other(reason: Option<Reason>) -> Self {
        Self::frame(H2Frame::None, reason, Initiator::Library)
    }

    fn frame(frame: H2Frame, reason: Option<Reason>, initiator: Initiator) -> Self {
        H2View {
            frame,
            reason,
            initiator,
            io: None,
        }
    }
}

/// What a hyper error says, as the predicates hyper's versions share.
///
/// Fields a version lacks stay `false`. Make one with
/// `view_hyper_error!` and set the rest by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyperView {
    /// `is_connect()` (hyper 0.14, hyper-util's legacy client).
    pub connect: bool,
    /// `is_canceled()`: the request was handed back unsent.
    pub canceled: bool,
    /// `is_closed()`: the connection closed before the request was handed
    /// to it (its readiness failed: hyper 0.14's `when_ready`, hyper-util's
    /// wait for a fresh connection's `SendRequest::ready()`).
    pub closed: bool,
    /// The connection ended while it held the request without having piped
    /// its body: the request was parked at the peer's stream limit (hyper
    /// 1.13 fails it with `Canceled("connection closed")`, hyper 1.12 and
    /// 0.14 drop it, "dispatch task is gone"), or a keep-alive timeout
    /// ended the connection first. Its HEADERS may have left.
    pub abandoned: bool,
    /// `is_timeout()`.
    pub timeout: bool,
    /// `is_incomplete_message()`: the connection closed mid-message.
    pub incomplete_message: bool,
    /// `is_user()`: the caller's own error.
    pub user: bool,
    /// `is_body_write_aborted()`: the caller aborted the request body.
    pub body_write_aborted: bool,
    /// `is_parse()`: the peer sent something that did not parse.
    pub parse: bool,
}

impl HyperView {
    /// Merges what another link said into this one.
    pub(crate) fn merge(&mut self, other: HyperView) {
        self.connect |= other.connect;
        self.canceled |= other.canceled;
        self.closed |= other.closed;
        self.abandoned |= other.abandoned;
        self.timeout |= other.timeout;
        self.incomplete_message |= other.incomplete_message;
        self.user |= other.user;
        self.body_write_aborted |= other.body_write_aborted;
        self.parse |= other.parse;
    }
}

/// Describes an `h2::Error` of any h2 version as an [`H2View`].
///
/// h2's error API is the same in 0.3 and 0.4, so this is written once, here,
/// and expanded in each backend against that backend's own `h2::Error`.
#[doc(hidden)] // documented in `backend`
#[macro_export]
macro_rules! view_h2_error {
    ($err:expr) => {{
        let err = $err;
        let reason = err.reason().map(|r| $crate::Reason::from(u32::from(r)));
        let initiator = if err.is_remote() {
            $crate::Initiator::Remote
        } else if err.is_library() {
            $crate::Initiator::Library
        } else {
            $crate::Initiator::Local
        };
        match (err.get_io(), reason) {
            (Some(io), _) => $crate::backend::H2View::io(io),
            (None, Some(reason)) if err.is_go_away() => {
                $crate::backend::H2View::go_away(reason, initiator)
            }
            (None, Some(reason)) if err.is_reset() => {
                $crate::backend::H2View::reset(reason, initiator)
            }
            // Neither frame: `h2::Error::from(reason)`.
            (None, Some(reason)) => $crate::backend::H2View::bare_reason(reason),
            (None, None) => $crate::backend::H2View::other(None),
        }
    }};
}

/// Describes a hyper error (0.14 or 1) as a [`HyperView`], from the
/// predicates both versions have. Version-only predicates (`is_connect` in
/// 0.14) are the backend's to add.
#[doc(hidden)] // documented in `backend`
#[macro_export]
macro_rules! view_hyper_error {
    ($err:expr) => {{
        let err = $err;
        let mut view = $crate::backend::HyperView::default();
        // hyper's `upgrade::on` also fails with Canceled after a response
        // came back: not unsent. Its cause says so ("upgrade expected but
        // not completed"); hyper 1's own text does not name the cause, and
        // an io cause is never that one (its text is the OS's). Read only
        // for a Canceled: formatting every cause costs a GOAWAY's verdict
        // ten times over, and an OS error's text allocates.
        let upgrade_expected = || {
            ::std::error::Error::source(err).is_some_and(|cause| {
                !cause.is::<::std::io::Error>()
                    && $crate::backend::text_contains(&cause, &["upgrade expected"])
            })
        };
        view.canceled = err.is_canceled() && !upgrade_expected();
        view.timeout = err.is_timeout();
        view.incomplete_message = err.is_incomplete_message();
        // "dispatch task is gone": the connection task ended holding the
        // request's callback. hyper files that under `User`, but the caller
        // did nothing wrong. On a running runtime only the h2 dispatcher's
        // parked request (`fut_ctx`, waiting at the peer's stream limit) is
        // dropped that way: every other request's callback is answered or
        // held by a task of its own.
        let dispatch_gone =
            err.is_user() && $crate::backend::text_contains(err, &["dispatch task is gone"]);
        view.user = err.is_user() && !dispatch_gone;
        view.abandoned = dispatch_gone;
        view.closed = err.is_closed();
        view.body_write_aborted = err.is_body_write_aborted();
        view.parse = err.is_parse();
        view
    }};
}
