//! `hyper_classify::tonic::GrpcRetryLayer` on a real tonic 0.14 channel,
//! against a real tonic 0.14 server that counts the RPCs it executed: behind
//! nginx draining every connection (`GOAWAY`), and alone, refusing the
//! streams over its concurrency limit (`REFUSED_STREAM`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use h2_frame_server::peers::{self, Kind, Peer};
use hyper_classify::tonic::GrpcRetryLayer;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{ClientStreamingService, NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_0_14 as tonic;
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest one RPC may take before the test fails.
const LIMIT: Duration = Duration::from_secs(20);
/// The unary method.
const PLACE: &str = "/test.Orders/Place";
/// The client-streaming method.
const BATCH: &str = "/test.Orders/Batch";

/// A message is its raw bytes: no protobuf needed.
#[derive(Clone, Copy, Debug, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// The server's ledger: how many times each order (the message, a number)
/// was executed. tonic runs a unary handler once the whole message arrived.
#[derive(Clone, Debug, Default)]
struct Orders {
    executed: Arc<Mutex<HashMap<u64, u32>>>,
}

impl Orders {
    fn times_executed(&self, id: u64) -> u32 {
        self.executed.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

impl NamedService for Orders {
    const NAME: &'static str = "test.Orders";
}

impl Service<http::Request<Body>> for Orders {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let orders = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Raw);
            Ok(match request.uri().path() {
                BATCH => grpc.client_streaming(Batch, request).await,
                _ => grpc.unary(orders, request).await,
            })
        })
    }
}

impl UnaryService<Bytes> for Orders {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let message = request.into_inner();
        let id = std::str::from_utf8(&message)
            .ok()
            .and_then(|id| id.parse().ok())
            .unwrap_or(u64::MAX);
        *self.executed.lock().unwrap().entry(id).or_default() += 1;
        std::future::ready(Ok(tonic::Response::new(message)))
    }
}

/// The client-streaming method: answers how many messages it received.
#[derive(Clone, Copy, Debug)]
struct Batch;

impl ClientStreamingService<Bytes> for Batch {
    type Response = Bytes;
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<Bytes>, Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Bytes>>) -> Self::Future {
        Box::pin(async move {
            let mut messages = request.into_inner();
            let mut count = 0;
            while messages.message().await?.is_some() {
                count += 1;
            }
            Ok(tonic::Response::new(Bytes::from(count.to_string())))
        })
    }
}

/// Starts a tonic server allowing `max_streams` concurrent streams a
/// connection (tonic's default without).
async fn serve(max_streams: Option<u32>) -> (SocketAddr, Orders) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let orders = Orders::default();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(max_streams)
        .serve_with_incoming(orders.clone(), incoming);
    tokio::spawn(server);
    (addr, orders)
}

fn channel(url: String) -> Channel {
    Endpoint::from_shared(url)
        .expect("a valid URL")
        .tcp_nodelay(true)
        .connect_lazy()
}

/// Places order `id` over `service`.
async fn place<S>(service: S, id: u64) -> Result<Bytes, Status>
where
    S: tonic::client::GrpcService<Body>,
    S::Error: Into<BoxError>,
    S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let call = async move {
        let mut grpc = tonic::client::Grpc::new(service);
        grpc.ready()
            .await
            .map_err(|err| Status::from_error(err.into()))?;
        let message = Bytes::from(id.to_string());
        let path = PLACE.parse().expect("a path");
        grpc.unary(tonic::Request::new(message), path, Raw)
            .await
            .map(tonic::Response::into_inner)
    };
    tokio::time::timeout(LIMIT, call)
        .await
        .expect("the RPC ends within the limit")
}

/// What `count` RPCs at `in_flight` at once did.
#[derive(Debug, Default)]
struct Tally {
    failed: Vec<(u64, Code)>,
    executed_twice: Vec<u64>,
    never_executed: usize,
}

/// Places orders `first..first + count`, `in_flight` at once, each through
/// a clone of `service`.
async fn place_many<S>(
    service: S,
    orders: &Orders,
    first: u64,
    count: u64,
    in_flight: usize,
) -> Tally
where
    S: tonic::client::GrpcService<Body> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut calls = tokio::task::JoinSet::new();
    for id in first..first + count {
        let slot = slots.clone().acquire_owned().await.unwrap();
        let service = service.clone();
        calls.spawn(async move {
            let result = place(service, id).await;
            drop(slot);
            (id, result)
        });
    }
    let mut tally = Tally::default();
    while let Some(joined) = calls.join_next().await {
        if let (id, Err(status)) = joined.unwrap() {
            tally.failed.push((id, status.code()));
        }
    }
    for id in first..first + count {
        match orders.times_executed(id) {
            0 => tally.never_executed += 1,
            1 => {}
            _ => tally.executed_twice.push(id),
        }
    }
    tally
}

/// Unary RPCs through nginx draining every connection after 100 requests:
/// the RPCs it refuses above each `GOAWAY`'s `last_stream_id` fail on a
/// bare channel and are retried, each executed once, through the layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_rpcs_through_a_draining_nginx_all_succeed_and_none_runs_twice() {
    const RPCS: u64 = 2_000;
    let Some(nginx) = peers::find(Kind::Nginx) else {
        return;
    };
    let (backend, orders) = serve(None).await;
    let peer = Peer::nginx_grpc_proxy(&nginx, "keepalive_requests 100;", backend).unwrap();

    let bare = place_many(channel(peer.url()), &orders, 0, RPCS, 64).await;
    let layer = GrpcRetryLayer::new();
    let retrying = layer.layer(channel(peer.url()));
    let tally = place_many(retrying, &orders, RPCS, RPCS, 64).await;
    let stats = layer.policy().stats();
    println!(
        "tonic through nginx draining every 100: {RPCS} unary RPCs at 64 in flight; \
         bare channel: {} failed ({:?}...), {} executed twice; with the layer: {} failed, \
         {} never executed, {} executed twice, {} retries ({} transparent)",
        bare.failed.len(),
        bare.failed.first().map(|(_, code)| *code),
        bare.executed_twice.len(),
        tally.failed.len(),
        tally.never_executed,
        tally.executed_twice.len(),
        stats.retries,
        stats.transparent_retries,
    );
    assert!(
        !bare.failed.is_empty(),
        "the drain failed no RPC on a bare channel: the test tested nothing"
    );
    assert!(tally.failed.is_empty(), "failed: {:?}", tally.failed);
    assert_eq!(tally.never_executed, 0, "every RPC executed");
    assert!(
        tally.executed_twice.is_empty(),
        "executed twice: {:?}",
        tally.executed_twice
    );
    assert!(stats.retries_go_away > 0, "{stats:?}");
}

/// A TCP relay to `backend` that holds back what the server sends for
/// `delay` on each connection: the client opens its streams before it
/// learns the server's settings, as on a slow link.
async fn slow_start_relay(backend: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let (_, _) = (client.set_nodelay(true), server.set_nodelay(true));
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::io::copy(&mut client_read, &mut server_write);
                let downstream = async {
                    tokio::time::sleep(delay).await;
                    tokio::io::copy(&mut server_read, &mut client_write).await
                };
                let _ = tokio::join!(upstream, downstream);
            });
        }
    });
    addr
}

/// A burst of RPCs on a new connection to a tonic server that allows one
/// stream at a time: the streams the client opens before it has the
/// server's limit are refused (`REFUSED_STREAM`), never executed; the layer
/// retries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_tonic_server_refuses_are_retried_and_run_once() {
    let (backend, orders) = serve(Some(1)).await;
    let relay = slow_start_relay(backend, Duration::from_millis(100)).await;
    let layer = GrpcRetryLayer::new();
    let retrying = layer.layer(channel(format!("http://{relay}")));
    let tally = place_many(retrying, &orders, 0, 200, 32).await;
    let stats = layer.policy().stats();
    println!(
        "tonic server allowing 1 stream: 200 RPCs at 32 in flight, {} refused and retried",
        stats.retries_stream_reset
    );
    assert!(tally.failed.is_empty(), "failed: {:?}", tally.failed);
    assert_eq!(tally.never_executed, 0, "every RPC executed");
    assert!(
        tally.executed_twice.is_empty(),
        "executed twice: {:?}",
        tally.executed_twice
    );
    assert!(stats.retries_stream_reset > 0, "nothing refused: {stats:?}");
}

/// A client-streaming RPC whose messages the caller writes over time: the
/// layer does not wait for the stream to end before sending it (it would
/// never start), and sends it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_written_over_time_goes_through_once() {
    let (addr, _) = serve(None).await;
    let layer = GrpcRetryLayer::new();
    let retrying = layer.layer(channel(format!("http://{addr}")));
    let (messages, stream) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for n in 0..3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = messages.send(Bytes::from(n.to_string())).await;
        }
    });
    let call = async {
        let mut grpc = tonic::client::Grpc::new(retrying);
        grpc.ready().await.expect("ready");
        let stream = tokio_stream::wrappers::ReceiverStream::new(stream);
        let path = BATCH.parse().expect("a path");
        grpc.client_streaming(tonic::Request::new(stream), path, Raw)
            .await
            .map(tonic::Response::into_inner)
    };
    let count = tokio::time::timeout(LIMIT, call)
        .await
        .expect("the RPC ends within the limit")
        .expect("the RPC succeeds");
    assert_eq!(count, Bytes::from("3"), "every message arrived");
    assert_eq!(layer.policy().stats().attempts, 1, "sent once");
}
