//! A raw-frame HTTP/2 server for tests, on a real socket.
//!
//! Real HTTP/2 servers decide for themselves when to send `GOAWAY`, which
//! `last_stream_id` it carries and when the TCP connection closes. Tests of a
//! retry classifier need those exact sequences, so this server writes frames
//! by hand: each accepted connection is handed to a script, which reads the
//! client's requests and answers with whatever frames it likes.
//!
//! ```
//! use h2_frame_server::{FrameServer, Reason};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! // Refuse every stream with GOAWAY(last_stream_id = 0, NO_ERROR).
//! let server = FrameServer::start(|mut conn| async move {
//!     conn.handshake().await?;
//!     if conn.next_request().await?.is_some() {
//!         conn.go_away(0, Reason::NO_ERROR).await?;
//!     }
//!     conn.drain().await
//! })
//! .await?;
//! println!("try {}", server.url());
//! # Ok(()) }
//! ```

pub mod ledger;
mod linger;
pub mod peers;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use stream::Stream;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The largest frame payload a client accepts before it says otherwise.
const DEFAULT_MAX_FRAME_SIZE: usize = 16_384;

/// HTTP/2 frame types used here (RFC 9113 §6).
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0x0;
    /// HEADERS
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS
    pub const SETTINGS: u8 = 0x4;
    /// PING
    pub const PING: u8 = 0x6;
    /// GOAWAY
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 0x9;
}

/// HTTP/2 frame flags used here.
pub mod flag {
    /// END_STREAM on DATA and HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// ACK on SETTINGS and PING.
    pub const ACK: u8 = 0x1;
    /// END_HEADERS on HEADERS and CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
}

/// HTTP/2 error codes, as the numbers that go on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    /// NO_ERROR
    pub const NO_ERROR: Reason = Reason(0x0);
    /// PROTOCOL_ERROR
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    /// INTERNAL_ERROR
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    /// REFUSED_STREAM
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    /// CANCEL
    pub const CANCEL: Reason = Reason(0x8);
    /// ENHANCE_YOUR_CALM
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    /// HTTP_1_1_REQUIRED
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);
}

/// One frame read from the client.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The frame type (see [`kind`]).
    pub kind: u8,
    /// The frame flags (see [`flag`]).
    pub flags: u8,
    /// The stream identifier.
    pub stream: u32,
    /// The payload.
    pub payload: Bytes,
}

/// A listening server that runs a script on every connection it accepts.
///
/// Dropping it stops accepting and aborts the scripts still running.
#[derive(Debug)]
pub struct FrameServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    #[cfg(feature = "tls")]
    certificate: Option<String>,
}

impl FrameServer {
    /// Listens on an ephemeral port of 127.0.0.1 and runs `script` on every
    /// connection. A script's error is ignored: the client sees its effect.
    pub async fn start<S, F>(script: S) -> io::Result<Self>
    where
        S: Fn(Conn) -> F + Send + Sync + 'static,
        F: Future<Output = io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::serve(listener, script))
    }

    /// Runs `script` on every connection `listener` accepts.
    pub fn serve<S, F>(listener: TcpListener, script: S) -> Self
    where
        S: Fn(Conn) -> F + Send + Sync + 'static,
        F: Future<Output = io::Result<()>> + Send + 'static,
    {
        Self::serve_with(listener, script, |tcp| async move { Ok(Stream::Tcp(tcp)) })
    }

    /// Accepts on `listener`, turns each TCP stream into a [`Stream`] with
    /// `wrap` (a TLS handshake, say) and runs `script` on it.
    fn serve_with<S, F, W, WF>(listener: TcpListener, script: S, wrap: W) -> Self
    where
        S: Fn(Conn) -> F + Send + Sync + 'static,
        F: Future<Output = io::Result<()>> + Send + 'static,
        W: Fn(TcpStream) -> WF + Send + Sync + 'static,
        WF: Future<Output = io::Result<Stream>> + Send + 'static,
    {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            let mut scripts = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let index = counter.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let stream = wrap(tcp);
                let script = script.clone();
                scripts.spawn(async move { script(Conn::new(stream.await?, index)).await });
            }
        });
        FrameServer {
            addr,
            accepted,
            task,
            #[cfg(feature = "tls")]
            certificate: None,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`, or `https://` when it speaks TLS.
    pub fn url(&self) -> String {
        #[cfg(feature = "tls")]
        if self.certificate.is_some() {
            return format!("https://{}/", self.addr);
        }
        format!("http://{}/", self.addr)
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FrameServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One accepted connection, driven by a script.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    index: usize,
    answer_pings: bool,
    buf: BytesMut,
}

impl Conn {
    fn new(stream: Stream, index: usize) -> Self {
        Conn {
            stream,
            index,
            answer_pings: true,
            buf: BytesMut::with_capacity(DEFAULT_MAX_FRAME_SIZE),
        }
    }

    /// This connection's number, counting from 0 in the order accepted.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Stops answering `PING`s, so a client's keep-alive times out.
    pub fn ignore_pings(&mut self) {
        self.answer_pings = false;
    }

    /// Reads the client preface and sends the server's (empty) SETTINGS.
    pub async fn handshake(&mut self) -> io::Result<()> {
        self.read_preface().await?;
        self.send_frame(kind::SETTINGS, 0, 0, &[]).await
    }

    /// Reads the client preface only: a server that then sends nothing,
    /// not even its SETTINGS.
    pub async fn read_preface(&mut self) -> io::Result<()> {
        let mut preface = [0; PREFACE.len()];
        self.stream.read_exact(&mut preface).await?;
        if preface != PREFACE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an HTTP/2 prior-knowledge client",
            ));
        }
        Ok(())
    }

    /// Reads one frame; `None` when the client closed the connection.
    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut head = [0; 9];
        match self.stream.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        self.buf.resize(len, 0);
        self.stream.read_exact(&mut self.buf).await?;
        Ok(Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload: self.buf.split().freeze(),
        }))
    }

    /// Reads until the client opens a stream, and returns its id; `None`
    /// when the client closed the connection first. Acknowledges SETTINGS
    /// and answers PINGs (unless [`ignore_pings`](Conn::ignore_pings)) on the
    /// way; skips everything else.
    pub async fn next_request(&mut self) -> io::Result<Option<u32>> {
        while let Some(frame) = self.read_frame().await? {
            match frame.kind {
                kind::HEADERS => return Ok(Some(frame.stream)),
                kind::SETTINGS if frame.flags & flag::ACK == 0 => {
                    self.send_frame(kind::SETTINGS, flag::ACK, 0, &[]).await?;
                }
                kind::PING if frame.flags & flag::ACK == 0 && self.answer_pings => {
                    self.send_frame(kind::PING, flag::ACK, 0, &frame.payload)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Answers `stream` with `200 OK` and `body`, ending the stream.
    pub async fn respond(&mut self, stream: u32, body: &[u8]) -> io::Result<()> {
        if body.is_empty() {
            let flags = flag::END_HEADERS | flag::END_STREAM;
            return self
                .send_frame(kind::HEADERS, flags, stream, &[STATUS_200])
                .await;
        }
        self.respond_head(stream).await?;
        self.send_frame(kind::DATA, flag::END_STREAM, stream, body)
            .await
    }

    /// Sends `stream` a `200 OK` response head, leaving the stream open for
    /// a body.
    pub async fn respond_head(&mut self, stream: u32) -> io::Result<()> {
        self.send_frame(kind::HEADERS, flag::END_HEADERS, stream, &[STATUS_200])
            .await
    }

    /// Answers `stream` with `200 OK` and one header `x-big` whose value is
    /// `len` bytes long, split over CONTINUATION frames as needed: a response
    /// header block larger than the client's limit.
    pub async fn respond_with_big_header(&mut self, stream: u32, len: usize) -> io::Result<()> {
        let mut block = BytesMut::with_capacity(len + 16);
        block.put_u8(0x88);
        // Literal header field without indexing, new name (RFC 7541 §6.2.2).
        block.put_u8(0x00);
        put_hpack_int(&mut block, 7, 0, b"x-big".len());
        block.put_slice(b"x-big");
        put_hpack_int(&mut block, 7, 0, len);
        block.put_bytes(b'a', len);

        let mut chunks = block.chunks(DEFAULT_MAX_FRAME_SIZE).peekable();
        let mut kind = kind::HEADERS;
        let mut flags = flag::END_STREAM;
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_none() {
                flags |= flag::END_HEADERS;
            }
            self.send_frame(kind, flags, stream, chunk).await?;
            kind = kind::CONTINUATION;
            flags = 0;
        }
        Ok(())
    }

    /// Sends `GOAWAY(last_stream_id, reason)`.
    pub async fn go_away(&mut self, last_stream_id: u32, reason: Reason) -> io::Result<()> {
        let mut payload = [0; 8];
        payload[..4].copy_from_slice(&last_stream_id.to_be_bytes());
        payload[4..].copy_from_slice(&reason.0.to_be_bytes());
        self.send_frame(kind::GOAWAY, 0, 0, &payload).await
    }

    /// Sends `RST_STREAM(stream, reason)`.
    pub async fn reset(&mut self, stream: u32, reason: Reason) -> io::Result<()> {
        self.send_frame(kind::RST_STREAM, 0, stream, &reason.0.to_be_bytes())
            .await
    }

    /// Sends one frame as given, valid or not.
    pub async fn send_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| *len < 1 << 24)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        let mut frame = BytesMut::with_capacity(9 + payload.len());
        frame.put_slice(&len.to_be_bytes()[1..]);
        frame.put_u8(kind);
        frame.put_u8(flags);
        frame.put_u32(stream & 0x7fff_ffff);
        frame.put_slice(payload);
        self.stream.write_all(&frame).await
    }

    /// Reads and discards frames until the client closes the connection,
    /// acknowledging SETTINGS and answering PINGs as
    /// [`next_request`](Conn::next_request) does.
    pub async fn drain(mut self) -> io::Result<()> {
        while self.next_request().await?.is_some() {}
        Ok(())
    }

    /// Closes the connection with a FIN, after what was sent.
    pub async fn close(mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    /// Closes the connection with a TCP RST (`SO_LINGER` 0).
    pub fn abort(self) -> io::Result<()> {
        // `set_zero_linger` only exists from tokio 1.50, which deprecates
        // `set_linger` because a non-zero linger blocks on close; a zero one
        // does not, and works on every tokio the workspace admits.
        #[allow(deprecated)]
        self.stream
            .tcp()
            .set_linger(Some(std::time::Duration::ZERO))
    }
}

/// HPACK: indexed header field 8 of the static table is `:status: 200`.
const STATUS_200: u8 = 0x88;

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn put_hpack_int(buf: &mut BytesMut, n: u32, high_bits: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        buf.put_u8(high_bits | value as u8);
        return;
    }
    buf.put_u8(high_bits | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        buf.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    buf.put_u8(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers_follow_rfc_7541_c_1() {
        let mut buf = BytesMut::new();
        put_hpack_int(&mut buf, 5, 0, 10);
        assert_eq!(&buf[..], [0b01010]);
        buf.clear();
        put_hpack_int(&mut buf, 5, 0, 1337);
        assert_eq!(&buf[..], [0b11111, 0b1001_1010, 0b0000_1010]);
    }
}
