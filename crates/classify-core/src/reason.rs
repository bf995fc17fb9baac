//! HTTP/2 error codes, independent of any h2 version.

use std::fmt;

/// An HTTP/2 error code (RFC 9113 §7), as carried by `GOAWAY` and `RST_STREAM`.
///
/// This is the crate's own type so that no `h2` type, of any version, leaks
/// into a verdict. Codes this crate does not know are kept as they are.
///
/// ```
/// use classify_core::Reason;
///
/// assert_eq!(Reason::from(0xb), Reason::ENHANCE_YOUR_CALM);
/// assert_eq!(Reason::REFUSED_STREAM.to_string(), "REFUSED_STREAM");
/// assert_eq!(Reason::from(0x42).to_string(), "unknown error code 0x42");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(u32);

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $code:expr;)*) => {
        impl Reason {
            $($(#[$doc])* pub const $name: Reason = Reason($code);)*

            /// The RFC 9113 name of this code, if it is one the RFC defines.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    /// Graceful shutdown, or no error at all.
    NO_ERROR = 0x0;
    /// The peer detected an unspecific protocol error.
    PROTOCOL_ERROR = 0x1;
    /// The peer hit an unexpected internal error.
    INTERNAL_ERROR = 0x2;
    /// The peer detected a flow-control violation.
    FLOW_CONTROL_ERROR = 0x3;
    /// A SETTINGS frame was not acknowledged in time.
    SETTINGS_TIMEOUT = 0x4;
    /// A frame arrived after the stream was half-closed.
    STREAM_CLOSED = 0x5;
    /// A frame had an invalid size.
    FRAME_SIZE_ERROR = 0x6;
    /// The stream was refused before any application processing (RFC 9113 §8.7).
    REFUSED_STREAM = 0x7;
    /// The stream is no longer needed.
    CANCEL = 0x8;
    /// The header compression context could not be maintained.
    COMPRESSION_ERROR = 0x9;
    /// The connection made for a CONNECT request was reset or abnormally closed.
    CONNECT_ERROR = 0xa;
    /// The peer thinks this endpoint is generating excessive load.
    ENHANCE_YOUR_CALM = 0xb;
    /// The transport does not meet minimum security requirements.
    INADEQUATE_SECURITY = 0xc;
    /// The peer requires HTTP/1.1 instead of HTTP/2.
    HTTP_1_1_REQUIRED = 0xd;
}

impl Reason {
    /// The numeric error code.
    pub const fn code(self) -> u32 {
        self.0
    }
}

impl From<u32> for Reason {
    fn from(code: u32) -> Self {
        Reason(code)
    }
}

impl From<Reason> for u32 {
    fn from(reason: Reason) -> Self {
        reason.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown error code {:#x}", self.0),
        }
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rfc_code_has_its_name() {
        let names: Vec<String> = (0..=0xd).map(|c| Reason::from(c).to_string()).collect();
        assert_eq!(names[0], "NO_ERROR");
        assert_eq!(names[7], "REFUSED_STREAM");
        assert_eq!(names[13], "HTTP_1_1_REQUIRED");
        assert!(names.iter().all(|n| !n.starts_with("unknown")));
        assert_eq!(Reason::from(0xe).name(), None);
    }
}
