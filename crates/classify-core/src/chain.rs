//! A bounded walk down an error's chain of causes.

use std::error::Error;
use std::io;

/// How many links of a chain are looked at, at most.
///
/// Real hyper chains are under ten links deep; the bound is what keeps a
/// cyclic or absurdly deep chain from hanging the caller.
pub const MAX_LINKS: usize = 32;

/// An iterator over an error and its causes, outermost first.
///
/// It differs from a plain `source()` loop in three ways:
/// - it stops after [`MAX_LINKS`] links, and at once when a link names itself
///   as its own source;
/// - for an [`io::Error`] it follows [`io::Error::get_ref`], because
///   `io::Error::source()` skips the wrapped error and returns *its* source;
/// - a caller that knows better can [`redirect`](Chain::redirect) the walk
///   (an `h2::Error` has no `source()`: its io error is behind `get_io()`).
///
/// ```
/// use classify_core::Chain;
/// use std::io;
///
/// #[derive(Debug)]
/// struct Inner;
/// impl std::fmt::Display for Inner {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("inner") }
/// }
/// impl std::error::Error for Inner {}
///
/// let err = io::Error::other(Inner);
/// // `source()` would skip `Inner`; the walk does not.
/// assert_eq!(Chain::new(&err).count(), 2);
/// assert!(Chain::new(&err).any(|link| link.is::<Inner>()));
/// ```
#[derive(Clone, Debug)]
pub struct Chain<'e> {
    next: Option<&'e (dyn Error + 'static)>,
    seen: usize,
}

impl<'e> Chain<'e> {
    /// Starts a walk at `err`.
    pub fn new(err: &'e (dyn Error + 'static)) -> Self {
        Chain {
            next: Some(err),
            seen: 0,
        }
    }

    /// Makes `link` the next link, in place of the last one's own successor.
    pub fn redirect(&mut self, link: &'e (dyn Error + 'static)) {
        if self.seen < MAX_LINKS {
            self.next = Some(link);
        }
    }
}

impl<'e> Iterator for Chain<'e> {
    type Item = &'e (dyn Error + 'static);

    fn next(&mut self) -> Option<Self::Item> {
        let link = self.next.take()?;
        self.seen += 1;
        if self.seen < MAX_LINKS {
            self.next = successor(link).filter(|&next| !same_object(next, link));
        }
        Some(link)
    }
}

fn successor<'e>(link: &'e (dyn Error + 'static)) -> Option<&'e (dyn Error + 'static)> {
    match link.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => link.source(),
    }
}

/// Whether two links are the same object (a `source()` returning `self`).
///
/// The address alone is not enough: a newtype wrapper's `source()` returns
/// its field at offset 0, at the wrapper's own address. The type (vtable) is
/// compared too; a vtable that differs for the same type only costs the
/// walk its early stop, never a link.
fn same_object(a: &dyn Error, b: &dyn Error) -> bool {
    std::ptr::eq(a as *const dyn Error, b as *const dyn Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct SelfSourced;
    impl fmt::Display for SelfSourced {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("I am my own cause")
        }
    }
    impl Error for SelfSourced {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self)
        }
    }

    #[derive(Debug)]
    struct PingPong(u8);
    static PING: PingPong = PingPong(0);
    static PONG: PingPong = PingPong(1);
    impl fmt::Display for PingPong {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "ping-pong {}", self.0)
        }
    }
    impl Error for PingPong {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(if self.0 == 0 { &PONG } else { &PING })
        }
    }

    #[test]
    fn a_self_sourced_error_is_one_link() {
        assert_eq!(Chain::new(&SelfSourced).count(), 1);
    }

    #[test]
    fn a_two_cycle_stops_at_the_bound() {
        assert_eq!(Chain::new(&PING).count(), MAX_LINKS);
    }

    /// A newtype whose source is its only field, at its own address.
    #[derive(Debug)]
    struct Newtype(io::Error);
    impl fmt::Display for Newtype {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl Error for Newtype {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_newtype_at_its_fields_address_is_walked_through() {
        let err = Newtype(io::Error::from(io::ErrorKind::BrokenPipe));
        let (outer, inner) = (
            &err as *const Newtype as *const u8,
            &err.0 as *const io::Error as *const u8,
        );
        assert_eq!(outer, inner, "the case this guards against");
        assert_eq!(Chain::new(&err).count(), 2);
    }

    #[test]
    fn an_io_error_is_followed_into_its_inner_error() {
        let inner = Newtype(io::Error::from(io::ErrorKind::NotFound));
        let err = io::Error::new(io::ErrorKind::BrokenPipe, inner);
        let links: Vec<_> = Chain::new(&err).collect();
        assert_eq!(
            links.len(),
            3,
            "io, its inner newtype, the newtype's io error"
        );
        assert!(links[1].is::<Newtype>());
    }
}
