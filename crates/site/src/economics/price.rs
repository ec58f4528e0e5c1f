//! The coin price: fixed from the config, or polled from an HTTP JSON source with a
//! staleness limit. Failures are typed, counted (`hashgate_price_fetch_failures_total`)
//! and warned about at most once per window.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::config::{EconomicsConfig, PriceSource};
use crate::ratelog::{RateLimitedLog, Verdict};

/// Largest price reply read; a ticker's JSON is a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// One price warning stands for the ones after it for this long.
const WARN_WINDOW: Duration = Duration::from_secs(300);

/// Why a price poll failed; the label is the `reason` of the failure counter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// No connection, a timeout, or a reply cut short.
    #[error("price source unreachable: {0}")]
    Transport(String),
    /// The source answered with an HTTP error status.
    #[error("price source answered HTTP {0}")]
    Status(u16),
    /// The reply is not JSON, or the pointer does not lead to a positive number.
    #[error("price source reply unusable: {0}")]
    Body(String),
}

impl PriceError {
    /// Every reason label, for pre-registering the counter.
    pub const LABELS: [&'static str; 3] = ["transport", "status", "body"];

    /// The `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            PriceError::Transport(_) => "transport",
            PriceError::Status(_) => "status",
            PriceError::Body(_) => "body",
        }
    }
}

/// Reads a positive price at `pointer` in a JSON body (numbers may be quoted).
///
/// # Errors
/// [`PriceError::Body`].
pub fn parse_price(body: &str, pointer: &str) -> Result<f64, PriceError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| PriceError::Body(format!("not JSON: {e}")))?;
    let at = value
        .pointer(pointer)
        .ok_or_else(|| PriceError::Body(format!("no value at JSON pointer {pointer:?}")))?;
    let price = match at {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    price.filter(|p| p.is_finite() && *p > 0.0).ok_or_else(|| {
        PriceError::Body(format!(
            "value at {pointer:?} is not a positive number: {at}"
        ))
    })
}

/// Fetches the price once.
///
/// # Errors
/// [`PriceError`] by what failed.
pub async fn fetch_price(
    http: &reqwest::Client,
    url: &str,
    pointer: &str,
) -> Result<f64, PriceError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| PriceError::Transport(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(PriceError::Status(resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(PriceError::Body("reply too large".into()));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| PriceError::Transport(e.to_string()))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(PriceError::Body("reply too large".into()));
    }
    parse_price(&String::from_utf8_lossy(&bytes), pointer)
}

/// The price in force at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceReading {
    /// Price per BTC in the configured currency.
    pub price: f64,
    /// Time since it was fetched (zero for a fixed price).
    pub age: Duration,
    /// Older than `price_max_age`: the economic rule holds its last decisions.
    pub stale: bool,
    /// When it was fetched, ms since the epoch (`None` for a fixed price).
    pub fetched_unix_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Latest {
    price: Option<(f64, Instant, SystemTime)>,
    failures: u64,
    last_error: Option<String>,
}

/// The latest price, shared between the poller, the driver and the API.
#[derive(Debug)]
pub struct PriceBook {
    source: PriceSource,
    max_age: Duration,
    latest: Mutex<Latest>,
    warn: RateLimitedLog,
}

impl PriceBook {
    /// A book for the configured source; a fixed price is in it from the start.
    pub fn new(config: &EconomicsConfig) -> Self {
        PriceBook {
            source: config.price.clone(),
            max_age: config.price_max_age,
            latest: Mutex::new(Latest::default()),
            warn: RateLimitedLog::new(WARN_WINDOW),
        }
    }

    /// `config` or `http`, for the API.
    pub fn source_label(&self) -> &'static str {
        match self.source {
            PriceSource::Fixed(_) => "config",
            PriceSource::Http { .. } => "http",
        }
    }

    /// The source URL, when polled.
    pub fn url(&self) -> Option<&str> {
        match &self.source {
            PriceSource::Fixed(_) => None,
            PriceSource::Http { url, .. } => Some(url),
        }
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The price at `now`; `None` before the first good poll.
    pub fn reading(&self, now: Instant) -> Option<PriceReading> {
        if let PriceSource::Fixed(price) = self.source {
            return Some(PriceReading {
                price,
                age: Duration::ZERO,
                stale: false,
                fetched_unix_ms: None,
            });
        }
        let (price, at, wall) = self.latest().price?;
        let age = now.saturating_duration_since(at);
        Some(PriceReading {
            price,
            age,
            stale: age > self.max_age,
            fetched_unix_ms: wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }

    /// Failed polls so far, and the last failure.
    pub fn failures(&self) -> (u64, Option<String>) {
        let l = self.latest();
        (l.failures, l.last_error.clone())
    }

    /// Records one poll's outcome: a price, or a counted and rate-limited failure.
    pub fn record(&self, result: Result<f64, PriceError>, now: Instant, wall: SystemTime) {
        match result {
            Ok(price) => {
                let mut l = self.latest();
                l.price = Some((price, now, wall));
                l.last_error = None;
            }
            Err(e) => {
                metrics::counter!("hashgate_price_fetch_failures_total", "reason" => e.label())
                    .increment(1);
                {
                    let mut l = self.latest();
                    l.failures += 1;
                    l.last_error = Some(e.to_string());
                }
                if let Verdict::Log { suppressed } = self.warn.check(now) {
                    tracing::warn!(error = %e, suppressed, "coin price poll failed; the last good price stays until it is stale");
                }
            }
        }
    }
}

/// The HTTP client for the price source: reqwest over hashgate's own rustls configuration
/// for https (the same roots and checks as a TLS pool).
fn price_client(tls: Option<&crate::tls::TlsClient>, poll: Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10).min(poll));
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls(tls.config());
    }
    builder.build().unwrap_or_else(|error| {
        // Only a TLS configuration reqwest cannot take fails here; polls then fail (counted
        // and logged) rather than the site.
        tracing::warn!(%error, "cannot build the price source's HTTP client");
        reqwest::Client::new()
    })
}

/// Polls the price source until `shutdown`; returns at once for a fixed price.
pub async fn run_price_poller(book: std::sync::Arc<PriceBook>, shutdown: CancellationToken) {
    let PriceSource::Http {
        url,
        pointer,
        poll,
        tls,
    } = book.source.clone()
    else {
        return;
    };
    let http = price_client(tls.as_ref(), poll);
    let mut interval = tokio::time::interval(poll);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let result = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            r = fetch_price(&http, &url, &pointer) => r,
        };
        book.record(result, Instant::now(), SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_price_by_pointer() {
        assert_eq!(
            parse_price(r#"{"bitcoin":{"usd":97123.5}}"#, "/bitcoin/usd"),
            Ok(97_123.5)
        );
        assert_eq!(parse_price(r#"{"p":" 1e5 "}"#, "/p"), Ok(100_000.0));
        assert_eq!(parse_price("42", ""), Ok(42.0));
        for (body, pointer) in [
            ("{", "/p"),
            (r#"{"p":1}"#, "/q"),
            (r#"{"p":-1}"#, "/p"),
            (r#"{"p":"x"}"#, "/p"),
            (r#"{"p":null}"#, "/p"),
        ] {
            assert!(
                matches!(parse_price(body, pointer), Err(PriceError::Body(_))),
                "{body}"
            );
        }
    }

    /// A one-connection-at-a-time HTTP server on 127.0.0.1:0 answering each request with
    /// the next of `replies` (status, body), then closing.
    async fn serve(replies: Vec<(u16, &'static str)>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for (status, body) in replies {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://{addr}/price")
    }

    fn config(url: &str) -> EconomicsConfig {
        let raw: super::super::EconomicsConfigRaw = toml::from_str(&format!(
            "price_url = \"{url}\"\nprice_pointer = \"/bitcoin/usd\"\nprice_max_age_secs = 60"
        ))
        .unwrap();
        raw.validate(&[]).unwrap()
    }

    #[tokio::test]
    async fn polled_price_kept_through_failures_until_stale() {
        let url = serve(vec![
            (200, r#"{"bitcoin":{"usd":97000}}"#),
            (503, "busy"),
            (200, r#"{"bitcoin":{}}"#),
        ])
        .await;
        let book = PriceBook::new(&config(&url));
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        assert_eq!(book.reading(t0), None, "no price before the first poll");
        book.record(
            fetch_price(&http, &url, "/bitcoin/usd").await,
            t0,
            SystemTime::now(),
        );
        assert_eq!(book.reading(t0).map(|r| r.price), Some(97_000.0));
        assert_eq!(book.source_label(), "http");

        let status = fetch_price(&http, &url, "/bitcoin/usd").await;
        assert_eq!(status, Err(PriceError::Status(503)));
        book.record(status, t0 + Duration::from_secs(30), SystemTime::now());
        let body = fetch_price(&http, &url, "/bitcoin/usd").await;
        assert!(matches!(body, Err(PriceError::Body(_))), "{body:?}");
        book.record(body, t0 + Duration::from_secs(40), SystemTime::now());
        assert_eq!(book.failures().0, 2);

        // The last good price holds, fresh within the limit and stale after it.
        let held = book.reading(t0 + Duration::from_secs(59)).unwrap();
        assert_eq!((held.price, held.stale), (97_000.0, false));
        let stale = book.reading(t0 + Duration::from_secs(61)).unwrap();
        assert_eq!((stale.price, stale.stale), (97_000.0, true));

        // Nothing listens any more: a transport failure.
        let gone = fetch_price(&http, &url, "/bitcoin/usd").await;
        assert!(matches!(gone, Err(PriceError::Transport(_))), "{gone:?}");
    }
}
