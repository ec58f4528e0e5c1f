//! stunnel (Debian's `stunnel4`): a real TLS terminator in front of ckpool, as pools that
//! offer `stratum+ssl://` run one, with certificates made by the test (rcgen).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::ports;
use crate::process::{Proc, Sink, Spawn};
use crate::wait;

/// The stunnel program: `HASHGATE_STUNNEL`, else `stunnel4` (Debian's name), found on PATH.
pub fn program() -> PathBuf {
    std::env::var_os("HASHGATE_STUNNEL").map_or_else(|| PathBuf::from("stunnel4"), PathBuf::from)
}

/// A leaf certificate and key as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// Leaf (then its CA, when it has one).
    pub cert: PathBuf,
    /// The leaf's key.
    pub key: PathBuf,
}

/// A test CA whose PEM is at `file` (for `tls_ca_file`).
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate.
    pub file: PathBuf,
}

fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = |days: i64| {
        let unix = i64::try_from(now).unwrap() + days * 86_400;
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(u64::try_from(unix).unwrap())
    };
    params.not_before = at(from_days);
    params.not_after = at(to_days);
}

impl Ca {
    /// A fresh CA, its PEM written into `dir`.
    pub fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "hashgate interop CA");
        validity(&mut params, -1, 365);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, issuer.pem()).unwrap();
        Ca { issuer, file }
    }

    /// A leaf for 127.0.0.1 valid from `from_days` to `to_days` around now, as `name`.pem
    /// and `name`.key in `dir`.
    pub fn leaf(&self, dir: &Path, name: &str, from_days: i64, to_days: i64) -> CertFiles {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("interop {name}"));
        validity(&mut params, from_days, to_days);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        write(
            dir,
            name,
            &format!("{}{}", cert.pem(), self.issuer.pem()),
            &key,
        )
    }
}

/// A self-signed leaf for 127.0.0.1, in no root store.
pub fn self_signed(dir: &Path, name: &str) -> CertFiles {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    validity(&mut params, -1, 365);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    write(dir, name, &cert.pem(), &key)
}

fn write(dir: &Path, name: &str, chain: &str, key: &KeyPair) -> CertFiles {
    let files = CertFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, chain).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// A running stunnel with one service per `(certificate, backend)`.
#[derive(Debug)]
pub struct Stunnel {
    /// Where each service accepts TLS, in the order given.
    pub ports: Vec<u16>,
    /// Its log (stderr, `debug = 5`).
    pub log: PathBuf,
    _proc: Proc,
}

/// Starts stunnel in the foreground with a service per entry of `services`, each on a free
/// port of 127.0.0.1 presenting its certificate and forwarding to its backend.
pub fn start(dir: &Path, services: &[(&CertFiles, SocketAddr)], lifetime: Duration) -> Stunnel {
    let mut conf = String::from("foreground = yes\npid =\ndebug = 5\n");
    let mut ports_taken = Vec::new();
    for (i, (cert, backend)) in services.iter().enumerate() {
        let port = ports::any_free();
        ports_taken.push(port);
        conf.push_str(&format!(
            "[svc{i}]\naccept = 127.0.0.1:{port}\nconnect = {backend}\ncert = {}\nkey = {}\n",
            cert.cert.display(),
            cert.key.display()
        ));
    }
    let conf_file = dir.join("stunnel.conf");
    std::fs::write(&conf_file, conf).unwrap();
    let log = dir.join("stunnel.log");
    let proc = Spawn::new("stunnel", program(), lifetime)
        .args([conf_file.as_os_str()])
        .stdout(Sink::File(log.clone()))
        .stderr(Sink::File(log.clone()))
        .start()
        .unwrap_or_else(|e| panic!("{e} (install Debian's stunnel4, or set HASHGATE_STUNNEL)"));
    for &port in &ports_taken {
        let up = wait::until_true(Duration::from_secs(10), || {
            TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_millis(200),
            )
            .is_ok()
        });
        assert!(
            up.is_some(),
            "stunnel did not listen on {port} within 10 s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    Stunnel {
        ports: ports_taken,
        log,
        _proc: proc,
    }
}
