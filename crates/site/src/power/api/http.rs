//! The plain-HTTP client shared by the REST and CGI families (miners sit on the LAN; no TLS).

use super::ApiError;
use super::cgminer::Timeouts;

/// Builds a client with the call's deadlines; miners get no connection pool kept warm
/// beyond a few seconds, since thousands of idle sockets would cost more than reconnects.
/// Proxy variables of the environment are ignored: miners sit on the site LAN, and a
/// proxy meant for the internet must not see their passwords.
pub(crate) fn client(timeouts: Timeouts) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.call)
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .pool_max_idle_per_host(1)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Maps a transport error onto the API's error kinds.
pub(crate) fn error(e: reqwest::Error, timeouts: Timeouts) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout(timeouts.call)
    } else if e.is_decode() || e.is_body() {
        ApiError::Protocol(e.to_string())
    } else {
        ApiError::Io(std::io::Error::other(e.to_string()))
    }
}

/// Reads a response body as JSON with the cgminer sanitiser's tolerance.
pub(crate) async fn json_body(
    resp: reqwest::Response,
    timeouts: Timeouts,
) -> Result<serde_json::Value, ApiError> {
    let bytes = resp.bytes().await.map_err(|e| error(e, timeouts))?;
    if bytes.len() > super::cgminer::MAX_REPLY_BYTES {
        return Err(ApiError::Protocol("reply too large".into()));
    }
    Ok(super::cgminer::parse_reply(&bytes)?)
}
