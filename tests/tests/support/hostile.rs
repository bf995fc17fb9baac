//! Servers that misbehave on every connection, for the hostile-server suite.

use std::io;

use h2_frame_server::{flag, kind, Conn, FrameServer, Reason};

/// How a [`serve`]d server misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Hostile {
    /// Accepts the connection and never reads or writes a byte.
    Silent,
    /// Reads the preface and everything after it, and never sends even its
    /// SETTINGS.
    NoSettings,
    /// Answers every request with a response head and never its body.
    HeadOnly,
    /// Sends `GOAWAY(0, NO_ERROR)` right after its SETTINGS, on every
    /// connection.
    GoAwayAtOnce,
    /// Resets every stream with `REFUSED_STREAM`.
    RefuseEveryStream,
    /// Sends `GOAWAY(0, NO_ERROR)` on the first request, then answers that
    /// request anyway, although it is above its own last stream id.
    GoAwayThenAnswer,
    /// Answers with a HEADERS frame that never ends: CONTINUATION frames
    /// until the client gives up.
    EndlessContinuation,
    /// Answers with a header block of `len` bytes, over the client's limit.
    OversizedHeaders(usize),
}

/// A raw-frame server that behaves as `hostile` says on every connection.
pub async fn serve(hostile: Hostile) -> FrameServer {
    FrameServer::start(move |conn| misbehave(conn, hostile))
        .await
        .unwrap()
}

async fn misbehave(mut conn: Conn, hostile: Hostile) -> io::Result<()> {
    match hostile {
        Hostile::Silent => {
            let _held = conn;
            std::future::pending().await
        }
        Hostile::NoSettings => {
            conn.read_preface().await?;
            while conn.read_frame().await?.is_some() {}
            Ok(())
        }
        Hostile::HeadOnly => {
            conn.handshake().await?;
            while let Some(stream) = conn.next_request().await? {
                // `:status: 200`, END_HEADERS, and no END_STREAM.
                conn.send_frame(kind::HEADERS, flag::END_HEADERS, stream, &[0x88])
                    .await?;
            }
            Ok(())
        }
        Hostile::GoAwayAtOnce => {
            conn.handshake().await?;
            conn.go_away(0, Reason::NO_ERROR).await?;
            conn.drain().await
        }
        Hostile::RefuseEveryStream => {
            conn.handshake().await?;
            while let Some(stream) = conn.next_request().await? {
                conn.reset(stream, Reason::REFUSED_STREAM).await?;
            }
            Ok(())
        }
        Hostile::GoAwayThenAnswer => {
            conn.handshake().await?;
            if let Some(stream) = conn.next_request().await? {
                conn.go_away(0, Reason::NO_ERROR).await?;
                conn.respond(stream, b"answered anyway").await?;
            }
            conn.drain().await
        }
        Hostile::EndlessContinuation => {
            conn.handshake().await?;
            let Some(stream) = conn.next_request().await? else {
                return Ok(());
            };
            conn.send_frame(kind::HEADERS, 0, stream, &[0x88]).await?;
            // Literal header `x-a: a…` without indexing, 1 KiB a frame: a
            // client must stop reading this somewhere; the write then fails.
            let mut header = vec![0x00, 0x03, b'x', b'-', b'a', 0x7f, 0x81, 0x07];
            header.resize(header.len() + 1024, b'a');
            for _ in 0..1_000_000 {
                conn.send_frame(kind::CONTINUATION, 0, stream, &header)
                    .await?;
            }
            Ok(())
        }
        Hostile::OversizedHeaders(len) => {
            conn.handshake().await?;
            while let Some(stream) = conn.next_request().await? {
                conn.respond_with_big_header(stream, len).await?;
            }
            Ok(())
        }
    }
}
