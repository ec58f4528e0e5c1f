//! The TLS client side: the rustls configuration for a pool (`stratum+ssl://`) or an https
//! price source, its certificate checks (roots, a site CA, an SPKI pin, the name), and the
//! handshake failures sorted into what an operator has to do about them.
//!
//! Only the client side lives here; miners' TLS on a listen port is the listener's.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Which trust anchors verify a peer's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Mozilla's roots compiled into the binary (webpki-roots): a box without
    /// `ca-certificates` still verifies public pools.
    #[default]
    Bundled,
    /// The operating system's store (rustls-native-certs), which a site's own CA may be in.
    System,
    /// Both.
    Both,
}

impl TlsRoots {
    /// Parses `bundled`, `system` or `both`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(text: &str) -> Result<TlsRoots, String> {
        match text {
            "bundled" => Ok(TlsRoots::Bundled),
            "system" => Ok(TlsRoots::System),
            "both" => Ok(TlsRoots::Both),
            other => Err(format!(
                "{other:?} is not a root store; use \"bundled\", \"system\" or \"both\""
            )),
        }
    }
}

/// What the configuration says about one TLS peer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// Trust anchors, besides `ca_file`.
    pub roots: TlsRoots,
    /// PEM file of extra trust anchors (a site CA, or a self-signed pool certificate that
    /// is its own CA).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the leaf certificate's SubjectPublicKeyInfo: when set, this key is the
    /// trust (no root store is consulted), the name and dates are still checked.
    pub pin_sha256: Option<[u8; 32]>,
    /// The name sent as SNI and checked against the certificate, instead of the URL host.
    pub server_name: Option<String>,
}

/// Parses a pin: 64 hex digits, `:` separators allowed (as `openssl` prints them).
///
/// # Errors
/// A message saying what a pin looks like.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let digits: String = text.chars().filter(|&c| c != ':').collect();
    let mut pin = [0u8; 32];
    hex::decode_to_slice(&digits, &mut pin).map_err(|_| {
        format!(
            "{text:?} is not a SHA-256 pin: 64 hex digits of the SHA-256 of the certificate's \
             SubjectPublicKeyInfo (openssl x509 -pubkey -noout | openssl pkey -pubin -outform der \
             | sha256sum)"
        )
    })?;
    Ok(pin)
}

/// Why a TLS client configuration cannot be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file cannot be read or holds no PEM certificate.
    #[error("cannot use CA file {path}: {reason}")]
    CaFile {
        /// The file named.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The roots asked for are empty (e.g. `system` on a box with no CA store).
    #[error("no trust anchors: {0}")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A ready client configuration with the settings it was built from; two are equal when
/// their settings are (a reload keeps a pool whose TLS settings did not change).
#[derive(Clone)]
pub struct TlsClient {
    /// The settings it was built from.
    pub settings: TlsSettings,
    config: Arc<ClientConfig>,
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &TlsClient) -> bool {
        self.settings == other.settings
    }
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The crypto provider used everywhere (ring: a plain C build, no cmake step).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsClient {
    /// Builds the configuration: loads the roots and the CA file now, so a bad file is a
    /// configuration error rather than a failure at the first connect.
    ///
    /// # Errors
    /// [`TlsSetupError`].
    pub fn new(settings: TlsSettings) -> Result<TlsClient, TlsSetupError> {
        let provider = provider();
        let algorithms = provider.signature_verification_algorithms;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let chain = match settings.pin_sha256 {
            Some(_) => None,
            None => {
                let roots = Arc::new(root_store(&settings)?);
                let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| TlsSetupError::NoRoots(e.to_string()))?;
                Some(verifier)
            }
        };
        let verifier = PeerVerifier {
            chain,
            pin: settings.pin_sha256,
            algorithms,
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(TlsClient {
            settings,
            config: Arc::new(config),
        })
    }

    /// The rustls configuration (for reqwest's `use_preconfigured_tls`).
    pub fn config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// The name to send and check: the override, else `host`.
    ///
    /// # Errors
    /// [`TlsError::ServerName`] when it is neither a DNS name nor an IP address.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.settings.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
    }

    /// Runs the handshake over `stream` within `limit`; on success also describes the
    /// peer's leaf certificate.
    ///
    /// # Errors
    /// [`TlsError`], sorted by what the operator has to do.
    pub async fn connect<S>(
        &self,
        host: &str,
        stream: S,
        limit: Duration,
    ) -> Result<(TlsStream<S>, Option<PeerCert>), TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self.server_name(host)?;
        let connector = TlsConnector::from(self.config.clone());
        let shown = name.to_str().into_owned();
        let stream = match tokio::time::timeout(limit, connector.connect(name, stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(TlsError::from_handshake(&shown, err)),
            Err(_) => return Err(TlsError::HandshakeTimeout(limit)),
        };
        let peer = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|leaf| PeerCert::parse(leaf));
        Ok((stream, peer))
    }
}

/// Roots from the store(s) asked for plus the CA file.
fn root_store(settings: &TlsSettings) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    if matches!(settings.roots, TlsRoots::Bundled | TlsRoots::Both) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if matches!(settings.roots, TlsRoots::System | TlsRoots::Both) {
        let found = rustls_native_certs::load_native_certs();
        // Unparseable system entries are skipped: one odd file in /etc/ssl/certs must not
        // take every pool down.
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 && settings.roots == TlsRoots::System && settings.ca_file.is_none() {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_owned(), ToString::to_string);
            return Err(TlsSetupError::NoRoots(format!(
                "the system CA store is empty ({why}); install ca-certificates or use \
                 tls_roots = \"bundled\""
            )));
        }
    }
    if let Some(path) = &settings.ca_file {
        for cert in ca_file(path)? {
            roots.add(cert).map_err(|e| TlsSetupError::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// Every certificate in a PEM file; none is an error.
///
/// # Errors
/// [`TlsSetupError::CaFile`].
pub fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bad = |reason: String| TlsSetupError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// The chain check (when not pinned) plus the pin; signatures on the handshake are
/// checked the same way in both.
#[derive(Debug)]
struct PeerVerifier {
    /// The root-store verifier; none when a pin replaces it.
    chain: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The leaf's key is not the pinned one (carried inside rustls' error to the caller).
#[derive(Debug, thiserror::Error)]
#[error("public key SHA-256 {found} is not the pinned one")]
struct PinMismatch {
    found: String,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return match &self.chain {
                Some(chain) => chain.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ),
                None => Err(CertificateError::UnknownIssuer.into()),
            };
        };
        let peer = PeerCert::parse(end_entity).ok_or(CertificateError::BadEncoding)?;
        if peer.spki_sha256 != pin {
            let found = hex::encode(peer.spki_sha256);
            let other = rustls::OtherError(Arc::new(PinMismatch { found }));
            return Err(CertificateError::Other(other).into());
        }
        let time = now.as_secs();
        if i128::from(time) > i128::from(peer.not_after) {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after: UnixTime::since_unix_epoch(Duration::from_secs(
                    u64::try_from(peer.not_after).unwrap_or(0),
                )),
            }
            .into());
        }
        if i128::from(time) < i128::from(peer.not_before) {
            return Err(CertificateError::NotValidYet.into());
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What an operator needs to know of a peer's leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// Subject distinguished name, as `CN=pool.example, O=...`.
    pub subject: String,
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the SubjectPublicKeyInfo: the value `tls_pin_sha256` takes.
    pub spki_sha256: [u8; 32],
}

impl PeerCert {
    /// Reads a DER certificate; none when it does not parse.
    pub fn parse(der: &CertificateDer<'_>) -> Option<PeerCert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let validity = cert.validity();
        Some(PeerCert {
            subject: cert.subject().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            spki_sha256: Sha256::digest(cert.public_key().raw).into(),
        })
    }

    /// Days from `now` until `notAfter` (negative once expired).
    pub fn expiry_days(&self, now: SystemTime) -> f64 {
        expiry_days(self.not_after, now)
    }
}

/// Days from `now` until `not_after` (Unix seconds); negative once past.
pub fn expiry_days(not_after: i64, now: SystemTime) -> f64 {
    expiry_seconds(not_after, now) / 86_400.0
}

/// Seconds from `now` until `not_after` (Unix seconds); negative once past.
pub fn expiry_seconds(not_after: i64, now: SystemTime) -> f64 {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    #[allow(clippy::cast_precision_loss)] // seconds within ±2^53 are exact
    let not_after = not_after as f64;
    not_after - now
}

/// Why a TLS handshake failed, by what the operator has to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The peer's certificate is past its `notAfter`.
    #[error(
        "certificate of {name} expired{}; the peer must renew it (or fix this host's clock)",
        expired_at(*not_after)
    )]
    Expired {
        /// The name checked.
        name: String,
        /// `notAfter`, Unix seconds, when rustls said.
        not_after: Option<i64>,
    },
    /// The peer's certificate is not valid yet (or this host's clock is behind).
    #[error("certificate of {name} is not valid yet; check this host's clock (NTP)")]
    NotYetValid {
        /// The name checked.
        name: String,
    },
    /// The certificate does not name the host connected to.
    #[error(
        "certificate is not for {name} (it names {presented}); fix the URL host or set tls_server_name"
    )]
    NameMismatch {
        /// The name checked.
        name: String,
        /// The names the certificate holds.
        presented: String,
    },
    /// The chain does not lead to a trusted root.
    #[error(
        "certificate of {name} is not issued by a trusted CA; add the issuing CA with tls_ca_file, or pin the key with tls_pin_sha256"
    )]
    UnknownIssuer {
        /// The name checked.
        name: String,
    },
    /// The key is not the pinned one.
    #[error(
        "certificate of {name} has public key SHA-256 {found}, not the pinned one; if the pool changed its key on purpose, update tls_pin_sha256"
    )]
    PinMismatch {
        /// The name checked.
        name: String,
        /// The key's SHA-256 (hex).
        found: String,
    },
    /// The handshake did not finish in time.
    #[error("TLS handshake did not finish within {0:?} (is the port TLS at all?)")]
    HandshakeTimeout(Duration),
    /// The name to check is not a DNS name or IP address.
    #[error("{0:?} is not a valid TLS server name; set tls_server_name")]
    ServerName(String),
    /// Any other handshake failure (protocol error, bad signature, connection dropped).
    #[error("TLS handshake with {name} failed: {reason} (is the port TLS at all?)")]
    Other {
        /// The name checked.
        name: String,
        /// What rustls or the socket said.
        reason: String,
    },
}

fn expired_at(not_after: Option<i64>) -> String {
    not_after.map_or_else(String::new, |t| {
        let days = -expiry_days(t, SystemTime::now());
        format!(" {days:.1} days ago (notAfter {t} Unix time)")
    })
}

impl TlsError {
    /// The `kind` label of `hashgate_upstream_tls_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            TlsError::Expired { .. } => "expired",
            TlsError::NotYetValid { .. } => "not_yet_valid",
            TlsError::NameMismatch { .. } => "name_mismatch",
            TlsError::UnknownIssuer { .. } => "unknown_issuer",
            TlsError::PinMismatch { .. } => "pin_mismatch",
            TlsError::HandshakeTimeout(_) => "handshake_timeout",
            TlsError::ServerName(_) | TlsError::Other { .. } => "other",
        }
    }

    /// Every `kind` label, for pre-registering the series.
    pub const KINDS: [&'static str; 7] = [
        "expired",
        "not_yet_valid",
        "name_mismatch",
        "unknown_issuer",
        "pin_mismatch",
        "handshake_timeout",
        "other",
    ];

    /// Sorts a failed handshake (tokio-rustls hands rustls' error inside an I/O error).
    fn from_handshake(name: &str, err: std::io::Error) -> TlsError {
        let name = name.to_owned();
        let Some(rustls::Error::InvalidCertificate(cert)) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return TlsError::Other {
                name,
                reason: err.to_string(),
            };
        };
        match cert {
            CertificateError::Expired => TlsError::Expired {
                name,
                not_after: None,
            },
            CertificateError::ExpiredContext { not_after, .. } => TlsError::Expired {
                name,
                not_after: i64::try_from(not_after.as_secs()).ok(),
            },
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsError::NotYetValid { name }
            }
            CertificateError::NotValidForName => TlsError::NameMismatch {
                name,
                presented: "other names".to_owned(),
            },
            CertificateError::NotValidForNameContext { presented, .. } => TlsError::NameMismatch {
                name,
                presented: presented.join(", "),
            },
            CertificateError::UnknownIssuer => TlsError::UnknownIssuer { name },
            CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
                Some(pin) => TlsError::PinMismatch {
                    name,
                    found: pin.found.clone(),
                },
                None => TlsError::Other {
                    name,
                    reason: other.to_string(),
                },
            },
            other => TlsError::Other {
                name,
                reason: format!("bad certificate: {other}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_take_hex_with_or_without_colons() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(&hex), Ok([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons), Ok([0xab; 32]));
        assert!(parse_pin("abcd").is_err());
        assert!(parse_pin(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn roots_name_the_accepted_values() {
        assert_eq!(TlsRoots::parse("both"), Ok(TlsRoots::Both));
        let err = TlsRoots::parse("mozilla").unwrap_err();
        assert!(err.contains("\"bundled\", \"system\" or \"both\""), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_a_setup_error() {
        let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-ca.pem");
        let settings = TlsSettings {
            ca_file: Some(missing.into()),
            ..TlsSettings::default()
        };
        let err = TlsClient::new(settings).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains(missing)),
            "{err:?}"
        );
    }

    #[test]
    fn expiry_days_count_down_and_go_negative() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!((expiry_days(1_000_000 + 86_400 * 3, now) - 3.0).abs() < 1e-9);
        assert!((expiry_days(1_000_000 - 43_200, now) + 0.5).abs() < 1e-9);
    }
}
