//! The raw-frame server behind TLS, for clients that speak HTTP/2 only when
//! ALPN offers it (the AWS SDK's hyper 1 client, browsers).
//!
//! The certificate is self-signed for `127.0.0.1` and `localhost`, made
//! fresh for each server; clients trust it through
//! [`FrameServer::certificate_pem`].

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::stream::Stream;
use crate::{Conn, FrameServer};

impl FrameServer {
    /// Like [`start`](FrameServer::start), behind TLS that offers only `h2`
    /// by ALPN.
    pub async fn start_tls<S, F>(script: S) -> io::Result<Self>
    where
        S: Fn(Conn) -> F + Send + Sync + 'static,
        F: Future<Output = io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (config, certificate) = self_signed()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let mut server = Self::serve_with(listener, script, move |tcp| {
            let accept = acceptor.accept(tcp);
            async move { Ok(Stream::Tls(Box::new(accept.await?))) }
        });
        server.certificate = Some(certificate);
        Ok(server)
    }

    /// The PEM of the certificate a TLS server presents; `None` without TLS.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate.as_deref()
    }
}

/// A fresh self-signed certificate for `127.0.0.1` and `localhost`, and
/// its key, both PEM: for a TLS server started elsewhere (nginx, see
/// [`Peer::nginx_proxy_tls`](crate::peers::Peer::nginx_proxy_tls)).
pub fn self_signed_pem() -> io::Result<(String, String)> {
    let certified = certify()?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}

fn certify() -> io::Result<rcgen::CertifiedKey> {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    rcgen::generate_simple_self_signed(names).map_err(io::Error::other)
}

/// A server config with a fresh self-signed certificate, and its PEM.
fn self_signed() -> io::Result<(ServerConfig, String)> {
    let certified = certify()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
    // exchange. It is still supported, and aws-lc-rs, which has it, needs a C
    // and CMake toolchain to build: ring stays, until rustls drops it.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, certified.cert.pem()))
}
