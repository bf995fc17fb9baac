//! Real HTTP/2 peers nobody here wrote: nginx and haproxy, started as plain
//! processes on 127.0.0.1 with their configuration, pid and logs in a
//! temporary directory, and stopped by PID.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// nginx, `listen 127.0.0.1:PORT http2;` (h2c).
    Nginx,
    /// haproxy, `bind 127.0.0.1:PORT proto h2`.
    Haproxy,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
        }
    }
}

/// A running nginx or haproxy. Dropping it kills the process.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

/// Finds the server's binary, or says why not. Under `CI=true` a missing
/// server is an error (CI installs them); elsewhere the caller skips.
pub fn find(kind: Kind) -> Option<PathBuf> {
    let name = kind.binary();
    let found = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists());
    if found.is_none() {
        let message = format!(
            "{name} is not installed: the tests against it are SKIPPED \
             (apt-get install -y --no-install-recommends nginx haproxy)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}; CI must install it");
        }
        eprintln!("\n!!! {message}\n");
    }
    found
}

impl Peer {
    /// Starts nginx with `server_directives` inside its `server { }` block
    /// (the listen line and a `location / { return 200 "ok"; }` are added).
    pub fn nginx(binary: &Path, server_directives: &str) -> io::Result<Peer> {
        Peer::nginx_with(
            binary,
            Listen::H2c,
            server_directives,
            "",
            "return 200 \"ok\\n\";",
        )
    }

    /// Starts nginx with `server_directives`, proxying every request to the
    /// HTTP/1.1 server at `backend` over kept-alive connections. nginx reads
    /// a request's whole body before it proxies it.
    pub fn nginx_proxy(
        binary: &Path,
        server_directives: &str,
        backend: SocketAddr,
    ) -> io::Result<Peer> {
        Peer::nginx_proxy_over(binary, Listen::H2c, server_directives, backend)
    }

    /// Like [`nginx_proxy`](Peer::nginx_proxy), over TLS with the PEM
    /// certificate and key given, offering `h2` by ALPN: for clients that
    /// speak HTTP/2 only when ALPN offers it (the AWS SDK's hyper 1 client).
    pub fn nginx_proxy_tls(
        binary: &Path,
        server_directives: &str,
        backend: SocketAddr,
        certificate_pem: &str,
        key_pem: &str,
    ) -> io::Result<Peer> {
        let tls = Listen::Tls {
            certificate_pem,
            key_pem,
        };
        Peer::nginx_proxy_over(binary, tls, server_directives, backend)
    }

    /// Starts nginx with `server_directives`, proxying every request as
    /// gRPC (`grpc_pass`, HTTP/2 by prior knowledge) to the server at
    /// `backend`, over kept-alive connections.
    pub fn nginx_grpc_proxy(
        binary: &Path,
        server_directives: &str,
        backend: SocketAddr,
    ) -> io::Result<Peer> {
        Peer::nginx_with(
            binary,
            Listen::H2c,
            server_directives,
            &format!("upstream backend {{ server {backend}; keepalive 64; }}"),
            "grpc_pass grpc://backend;",
        )
    }

    fn nginx_proxy_over(
        binary: &Path,
        listen: Listen<'_>,
        server_directives: &str,
        backend: SocketAddr,
    ) -> io::Result<Peer> {
        Peer::nginx_with(
            binary,
            listen,
            server_directives,
            &format!("upstream backend {{ server {backend}; keepalive 64; }}"),
            "proxy_pass http://backend; proxy_http_version 1.1; \
             proxy_set_header Connection \"\";",
        )
    }

    fn nginx_with(
        binary: &Path,
        listen: Listen<'_>,
        server_directives: &str,
        http_directives: &str,
        location: &str,
    ) -> io::Result<Peer> {
        let (dir, addr) = workspace("nginx")?;
        let listen = match listen {
            Listen::H2c => format!("listen {addr} http2;"),
            Listen::Tls {
                certificate_pem,
                key_pem,
            } => {
                let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
                std::fs::write(&certificate, certificate_pem)?;
                std::fs::write(&key, key_pem)?;
                // `listen ... ssl http2` rather than `http2 on;`: nginx
                // before 1.25.1 (Debian 12's 1.22) knows only this form.
                format!(
                    "listen {addr} ssl http2; ssl_certificate {}; ssl_certificate_key {};",
                    certificate.display(),
                    key.display()
                )
            }
        };
        let conf = format!(
            "worker_processes 1;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {dir}/body;\n\
               proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n\
               uwsgi_temp_path {dir}/uwsgi;\n\
               scgi_temp_path {dir}/scgi;\n\
               {http_directives}\n\
               server {{\n\
                 {listen}\n\
                 {server_directives}\n\
                 location / {{ {location} }}\n\
               }}\n\
             }}\n",
            dir = dir.display(),
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off; master_process on;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Peer::wait_listening(child, addr, dir)
    }

    /// Starts haproxy with `frontend_directives` in a frontend bound with
    /// `proto h2` and a default backend nothing listens on.
    pub fn haproxy(binary: &Path, frontend_directives: &str) -> io::Result<Peer> {
        let (dir, addr) = workspace("haproxy")?;
        let conf = format!(
            "global\n  pidfile {dir}/haproxy.pid\n\
             defaults\n  mode http\n  timeout client 10s\n  timeout server 10s\n  timeout connect 1s\n\
             frontend fe\n  bind {addr} proto h2\n  {frontend_directives}\n  default_backend none\n\
             backend none\n  http-request return status 200 content-type text/plain string ok\n",
            dir = dir.display(),
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, conf)?;
        let child = Command::new(binary)
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("stderr.log"))?))
            .spawn()?;
        Peer::wait_listening(child, addr, dir)
    }

    fn wait_listening(mut child: Child, addr: SocketAddr, dir: PathBuf) -> io::Result<Peer> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("error.log"))
                    .or_else(|_| std::fs::read_to_string(dir.join("stderr.log")))
                    .unwrap_or_default();
                return Err(io::Error::other(format!(
                    "the server exited ({status}): {log}"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other("the server did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Peer { child, addr, dir })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Sends a signal (`"QUIT"`, `"USR1"`, ...) to the process, by PID.
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -{signal} failed: {status}")))
        }
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // TERM lets nginx's master stop its workers; a KILLed master would
        // leave them running. KILL only if it does not exit in time.
        let _ = self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How nginx listens.
#[derive(Clone, Copy)]
enum Listen<'a> {
    /// HTTP/2 by prior knowledge, no TLS.
    H2c,
    /// TLS with this certificate and key, `h2` offered by ALPN.
    Tls {
        certificate_pem: &'a str,
        key_pem: &'a str,
    },
}

/// A fresh temporary directory and a free port on 127.0.0.1.
fn workspace(name: &str) -> io::Result<(PathBuf, SocketAddr)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let dir = std::env::temp_dir().join(format!(
        "hyper-classify-{name}-{}-{}",
        std::process::id(),
        port.port()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok((dir, port))
}
