//! Certificates made at test time (a CA and leaves, good, expired or for another name) and
//! an in-process TLS terminator in front of a plain TCP server (the simulated pool), as a
//! pool's stunnel or load balancer would be.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A test CA, its PEM written to a file under the test target directory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate as a PEM file (for `tls_ca_file`).
    pub file: PathBuf,
}

/// A leaf certificate with its key.
pub struct Leaf {
    /// Leaf, then the CA (when CA-issued).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 (hex) of the leaf's SubjectPublicKeyInfo: what `tls_pin_sha256` takes.
    pub pin: String,
}

impl Clone for Leaf {
    fn clone(&self) -> Leaf {
        Leaf {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            pin: self.pin.clone(),
        }
    }
}

/// Validity in days around now (negative = in the past).
fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    let at = |days: i64| {
        let unix = i64::try_from(unix_now()).unwrap() + days * 86_400;
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(u64::try_from(unix).unwrap())
    };
    params.not_before = at(from_days);
    params.not_after = at(to_days);
}

impl TestCa {
    /// A fresh CA; `tag` names its file (unique per test).
    pub fn new(tag: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("hashgate test CA {tag}"));
        validity(&mut params, -1, 365);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, issuer.pem()).unwrap();
        TestCa { issuer, file }
    }

    /// A leaf for `names`, valid from `from_days` to `to_days` around now.
    pub fn leaf(&self, names: &[&str], from_days: i64, to_days: i64) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("leaf"),
        );
        validity(&mut params, from_days, to_days);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        leaf(vec![cert.der().clone(), self.issuer.der().clone()], &key)
    }
}

/// A self-signed leaf (in no root store) for `names`, valid for a year.
pub fn self_signed(names: &[&str]) -> Leaf {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    validity(&mut params, -1, 365);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    leaf(vec![cert.der().clone()], &key)
}

fn leaf(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Leaf {
    let peer = hashgate_site::tls::PeerCert::parse(&chain[0]).unwrap();
    Leaf {
        pin: hex::encode(peer.spki_sha256),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        chain,
    }
}

/// A TLS terminator: accepts TLS on `addr`, and for each good handshake opens a plain
/// connection to the backend and copies both ways.
pub struct Terminator {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Handshakes completed.
    pub handshakes: Arc<AtomicU64>,
    /// Handshakes that failed (the client refused the certificate, or spoke no TLS).
    pub failed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Terminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS acceptor presenting `leaf` (ring, the default protocol versions).
fn acceptor(leaf: &Leaf) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl Terminator {
    /// Starts one on 127.0.0.1, port 0, presenting `leaf`.
    pub async fn start(leaf: &Leaf, backend: SocketAddr) -> Terminator {
        let acceptor = acceptor(leaf);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (ok, bad) = (handshakes.clone(), failed.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, ok, bad) = (acceptor.clone(), ok.clone(), bad.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        bad.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    ok.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Terminator {
            addr,
            handshakes,
            failed,
            task,
        }
    }
}

/// An https server on 127.0.0.1:0 presenting `leaf` and answering every request with
/// `body` as JSON; returns its address.
pub async fn serve_https(leaf: &Leaf, body: &'static str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let acceptor = acceptor(leaf);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut buf = [0u8; 2048];
                let _ = tls.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
