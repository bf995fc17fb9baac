//! A lingering close, as nginx and most production servers do it.
//!
//! Closing a TCP socket while the peer's bytes sit unread in it makes the
//! kernel send a reset instead of FIN, and on a reset the client's kernel
//! (Linux, at least) throws away what it received and the client had not
//! read yet: the last responses and the final `GOAWAY` are lost, and the
//! client sees a broken pipe or a reset on requests the server processed
//! (or never saw). A client keeps writing until it reads
//! the `GOAWAY` (`WINDOW_UPDATE`s, `PING` acks, a request it sent a moment
//! before), so after a drain there usually is something unread. A
//! lingering close sends FIN, then reads and discards until the peer closes
//! too, for a bounded time.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// How long a closed connection is read from before it is dropped.
const LINGER: Duration = Duration::from_secs(2);

/// A [`TcpStream`] that, when dropped inside a tokio runtime, closes
/// lingering.
pub(crate) struct Lingering(Option<TcpStream>);

impl Lingering {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Lingering(Some(tcp))
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.0.as_mut().expect("only taken on drop"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut tcp), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let _ = tcp.shutdown().await;
            let mut discard = [0; 4096];
            let _ = tokio::time::timeout(LINGER, async {
                while let Ok(1..) = tcp.read(&mut discard).await {}
            })
            .await;
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Writes a response, leaves the client's bytes unread, closes with
    /// `close`; returns what the client then reads.
    async fn client_reads_after(close: impl FnOnce(TcpStream)) -> io::Result<Vec<u8>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        client.write_all(b"a request the server reads").await?;
        let mut request = [0; 26];
        server.read_exact(&mut request).await?;
        // A frame the client sends while the server is closing.
        client.write_all(b"WINDOW_UPDATE").await?;
        server.write_all(b"the last response").await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        close(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Read by read, as a client does: any bytes before an error count.
        let mut seen = Vec::new();
        let mut buf = [0; 64];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
            match read {
                Ok(0) => return Ok(seen),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(err) if seen.is_empty() => return Err(err),
                Err(err) => return Err(io::Error::new(err.kind(), format!("after {seen:?}"))),
            }
        }
    }

    #[tokio::test]
    async fn a_lingering_close_delivers_the_last_response_despite_unread_bytes() {
        let seen = client_reads_after(|tcp| drop(Lingering::new(tcp))).await;
        assert_eq!(seen.unwrap(), b"the last response");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_plain_close_with_unread_bytes_loses_what_the_client_had_not_read() {
        let seen = client_reads_after(drop).await;
        assert_eq!(
            seen.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset),
            "the reason Lingering exists"
        );
    }
}
