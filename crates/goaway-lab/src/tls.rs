//! `--target https://…`: TLS with rustls, offering only `h2` by ALPN, for
//! both stacks. hyper 0.14 and hyper-util take any `Service<Uri>` as their
//! connector, so one connector serves both: for hyper 0.14's `Uri` (http
//! 0.2) it yields the TLS stream, for hyper-util's (http 1) the same stream
//! in `TokioIo`.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tower::Service;

/// Connects over TCP (`TCP_NODELAY` on) and TLS, and fails unless the
/// server chose `h2`.
#[derive(Clone)]
pub struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
}

impl TlsConnector {
    /// Trusting the certificates in the PEM file `ca_file`, or the
    /// system's roots without one.
    pub fn new(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let certificates = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                for certificate in certificates {
                    let certificate =
                        certificate.map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                    roots
                        .add(certificate)
                        .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        if roots.is_empty() {
            return Err(
                "no trusted root certificates (none in --ca-file, or none on this system)".into(),
            );
        }
        // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
        // exchange. It is still supported, and aws-lc-rs, which has it, needs a C
        // and CMake toolchain to build: ring stays, until rustls drops it.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsConnector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    fn connect(
        &self,
        host: Option<&str>,
        port: Option<u16>,
    ) -> Pin<Box<dyn Future<Output = io::Result<TlsIo>> + Send>> {
        let tls = self.tls.clone();
        let host = host.map(|host| host.trim_matches(['[', ']']).to_owned());
        let port = port.unwrap_or(443);
        Box::pin(async move {
            let host = host.ok_or_else(|| io::Error::other("the URL has no host"))?;
            let name = ServerName::try_from(host.clone()).map_err(io::Error::other)?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(name, tcp).await?;
            match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Ok(TlsIo(Box::new(stream))),
                _ => Err(io::Error::other(format!(
                    "{host}:{port} did not choose h2 by ALPN: the lab speaks HTTP/2 only"
                ))),
            }
        })
    }
}

impl Service<hyper_0_14::Uri> for TlsConnector {
    type Response = TlsIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper_0_14::Uri) -> Self::Future {
        self.connect(uri.host(), uri.port_u16())
    }
}

impl Service<hyper_1::Uri> for TlsConnector {
    type Response = TokioIo<TlsIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsIo>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper_1::Uri) -> Self::Future {
        let connect = self.connect(uri.host(), uri.port_u16());
        Box::pin(async move { Ok(TokioIo::new(connect.await?)) })
    }
}

/// A TLS connection on which the server chose `h2`.
pub struct TlsIo(Box<TlsStream<TcpStream>>);

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl hyper_0_14::client::connect::Connection for TlsIo {
    fn connected(&self) -> hyper_0_14::client::connect::Connected {
        hyper_0_14::client::connect::Connected::new().negotiated_h2()
    }
}

impl hyper_util::client::legacy::connect::Connection for TlsIo {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new().negotiated_h2()
    }
}
