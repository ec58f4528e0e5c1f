//! The admin API: pins and demand-response budgets at run time, and the power view.
//!
//! | route | body | what |
//! |---|---|---|
//! | `POST /api/v1/miners/{id}/pin` | `{"pin":"on"\|"off"\|"maintenance"\|"auto"}` | pin a miner (`auto` lifts the pin) |
//! | `PUT /api/v1/containers/{name}/budget` | `{"budget_watts":1200000}` or `{"budget_watts":null}` | demand response; `null` returns to the configured budget |
//! | `PUT /api/v1/containers/{name}/climate/{device}` | `{"mode":"on"\|"off"\|"auto"}` | force a fan bank (by name) or the pump (`pump`) on or off; `auto` returns it to staging |
//! | `GET /api/v1/power` | | containers (with their climate block), miners and recent decisions |
//! | `POST /api/v1/reload` | | re-reads the configuration file and applies its pools, power inventory, budgets and policy; answers what was applied and what needs a restart (409 with the reason when it does not validate; the running settings stay) |
//!
//! Write routes need `Authorization: Bearer <power.admin_token>` (401 otherwise). With no
//! token configured they answer 403 and change nothing: an unauthenticated switch for a
//! site's power is never served. The read route is open, like `/metrics`, which carries the
//! same figures. The router binds nowhere itself; serve it on 127.0.0.1 unless the
//! network in front is trusted.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::climate::{ClimateError, Override};
use crate::power::controller::ControlError;
use crate::power::driver::PowerHandle;
use crate::power::inventory::{AdminToken, Pin};
use crate::ratelog::{DEFAULT_WINDOW, RateLimitedLog, Verdict};

/// Largest request body accepted: the bodies are a few dozen bytes.
const MAX_BODY_BYTES: usize = 4096;

/// Builds the admin router over a running driver's handle; `token` `None` refuses writes.
pub fn router(handle: PowerHandle, token: Option<AdminToken>) -> Router {
    router_with_reload(handle, token, None)
}

/// Re-reads the configuration and applies it, saying what changed and what needs a
/// restart; `Err` says why nothing changed.
pub type Reload = Arc<dyn Fn() -> Result<crate::config::ReloadReport, String> + Send + Sync>;

/// [`router`] with `POST /api/v1/reload` calling `reload` (404 without one: nothing to
/// re-read, e.g. a site started from an in-memory configuration).
pub fn router_with_reload(
    handle: PowerHandle,
    token: Option<AdminToken>,
    reload: Option<Reload>,
) -> Router {
    Router::new()
        .route("/api/v1/miners/{id}/pin", post(set_pin))
        .route("/api/v1/containers/{name}/budget", put(set_budget))
        .route(
            "/api/v1/containers/{name}/climate/{device}",
            put(set_climate_override),
        )
        .route("/api/v1/power", get(power))
        .route("/api/v1/reload", post(reload_config))
        .with_state(AdminState {
            handle,
            token: token.map(|t| TokenDigest::of(t.expose().as_bytes())),
            reload,
            refusals: Arc::new(RateLimitedLog::new(DEFAULT_WINDOW)),
        })
}

/// The routes left on the status listener when the admin routes have one of their own
/// (`http.admin_listen` at `admin_addr`): `GET /api/v1/power` as before, and the write
/// routes answering 404 with where they are served instead of "no such route".
pub fn moved_router(handle: PowerHandle, admin_addr: std::net::SocketAddr) -> Router {
    let moved = move || async move {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "error": format!(
                    "admin writes are served on http.admin_listen ({admin_addr}), not on this listener"
                )
            })),
        )
    };
    Router::new()
        .route("/api/v1/miners/{id}/pin", any(moved))
        .route("/api/v1/containers/{name}/budget", any(moved))
        .route("/api/v1/containers/{name}/climate/{device}", any(moved))
        .route("/api/v1/reload", any(moved))
        .route(
            "/api/v1/power",
            get(|State(handle): State<PowerHandle>| async move {
                axum::Json(handle.status()).into_response()
            }),
        )
        .with_state(handle)
}

/// Counter of refused admin writes, by `reason` (`missing`, `wrong`, `disabled`).
pub const ADMIN_AUTH_FAILURES: &str = "hashgate_admin_auth_failures_total";

/// A secret kept only as its SHA-256: comparing digests takes the same time whatever the
/// presented token's length or content, so neither the token's length nor a prefix of it
/// can be learnt from response times.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(secret: &[u8]) -> Self {
        TokenDigest(Sha256::digest(secret).into())
    }

    /// Constant-time equality: every byte is compared whatever the first difference.
    fn matches(&self, other: &TokenDigest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

#[derive(Clone)]
struct AdminState {
    handle: PowerHandle,
    /// The configured token's digest; `None` refuses every write.
    token: Option<TokenDigest>,
    /// What `POST /api/v1/reload` runs.
    reload: Option<Reload>,
    /// Refused writes are each counted, but logged at most once per window: someone
    /// guessing tokens must not be able to flood the log.
    refusals: Arc<RateLimitedLog>,
}

/// An admin API failure, answered as `{"error": "..."}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No or wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// No token is configured, so writes are off.
    #[error("admin writes are disabled: set power.admin_token in the configuration to enable them")]
    WritesDisabled,
    /// The body is not what the route expects.
    #[error("bad request body: {0}")]
    BadBody(String),
    /// The controller refused the change (unknown miner or container, invalid budget).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The climate controller refused the override (unknown container or device).
    #[error(transparent)]
    Climate(#[from] ClimateError),
    /// The reloaded configuration was refused; the running settings stay.
    #[error("configuration not reloaded, running settings kept: {0}")]
    Reload(String),
    /// This site has no configuration file to re-read.
    #[error("nothing to reload: this site was not started from a configuration file")]
    NoReload,
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::WritesDisabled => StatusCode::FORBIDDEN,
            AdminError::BadBody(_) => StatusCode::BAD_REQUEST,
            AdminError::Control(
                ControlError::UnknownMiner(_) | ControlError::UnknownContainer(_),
            ) => StatusCode::NOT_FOUND,
            AdminError::Control(
                ControlError::InvalidBudget { .. } | ControlError::InvalidAuxiliary { .. },
            ) => StatusCode::BAD_REQUEST,
            AdminError::Control(ControlError::NeedsRestart(_)) | AdminError::Reload(_) => {
                StatusCode::CONFLICT
            }
            AdminError::NoReload | AdminError::Climate(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (status, axum::Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

fn authorize(
    token: Option<&TokenDigest>,
    headers: &HeaderMap,
    log: &RateLimitedLog,
) -> Result<(), AdminError> {
    let refuse = |reason: &'static str, error: AdminError| {
        // An operator must see someone trying the admin API; the counter feeds an alert,
        // the log line says which route-independent reason it was.
        metrics::counter!(ADMIN_AUTH_FAILURES, "reason" => reason).increment(1);
        if let Verdict::Log { suppressed } = log.check_now() {
            tracing::warn!(reason, suppressed, "admin write refused: {error}");
        }
        Err(error)
    };
    let Some(token) = token else {
        return refuse("disabled", AdminError::WritesDisabled);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // The scheme is case-insensitive (RFC 9110); the token is not.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(presented) = presented else {
        return refuse("missing", AdminError::Unauthorized);
    };
    if token.matches(&TokenDigest::of(presented.as_bytes())) {
        Ok(())
    } else {
        refuse("wrong", AdminError::Unauthorized)
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, AdminError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(AdminError::BadBody(format!(
            "larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| AdminError::BadBody(e.to_string()))
}

/// The pin as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PinBody {
    On,
    Off,
    Maintenance,
    Auto,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    pin: PinBody,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetRequest {
    /// Required, but may be `null`: a missing key is an error, not a reset. Watts, like
    /// every power figure the API returns.
    budget_watts: Option<f64>,
}

async fn set_pin(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    authorize(state.token.as_ref(), &headers, &state.refusals)?;
    let req: PinRequest = parse_body(&body)?;
    let pin = match req.pin {
        PinBody::On => Some(Pin::KeepOn),
        PinBody::Off => Some(Pin::KeepOff),
        PinBody::Maintenance => Some(Pin::Maintenance),
        PinBody::Auto => None,
    };
    state.handle.set_pin(&id, pin)?;
    Ok(axum::Json(json!({ "miner": id, "pin": pin.map_or("auto", Pin::label) })).into_response())
}

async fn set_budget(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    authorize(state.token.as_ref(), &headers, &state.refusals)?;
    let value: serde_json::Value = parse_body(&body)?;
    if value.get("budget_kw").is_some() {
        return Err(AdminError::BadBody(
            "budget_kw is not taken: the API speaks watts, send {\"budget_watts\": <W> or null}"
                .into(),
        ));
    }
    if value.get("budget_watts").is_none() {
        return Err(AdminError::BadBody(
            "expected {\"budget_watts\": <W> or null}".into(),
        ));
    }
    let req: BudgetRequest =
        serde_json::from_value(value).map_err(|e| AdminError::BadBody(e.to_string()))?;
    state.handle.set_budget(&name, req.budget_watts)?;
    let status = state.handle.status();
    let view = status.containers.iter().find(|c| c.name == name);
    Ok(axum::Json(json!({
        "container": name,
        "budget_watts": view.map(|c| c.budget_watts),
        "configured_budget_watts": view.map(|c| c.configured_budget_watts),
        "override": req.budget_watts.is_some(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    mode: Override,
}

async fn set_climate_override(
    State(state): State<AdminState>,
    Path((name, device)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    authorize(state.token.as_ref(), &headers, &state.refusals)?;
    let req: OverrideRequest = parse_body(&body)?;
    state
        .handle
        .set_climate_override(&name, &device, req.mode)?;
    Ok(axum::Json(json!({
        "container": name,
        "device": device,
        "mode": req.mode.label(),
    }))
    .into_response())
}

async fn reload_config(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    authorize(state.token.as_ref(), &headers, &state.refusals)?;
    let reload = state.reload.ok_or(AdminError::NoReload)?;
    // Reads a file: off the async workers.
    let report = tokio::task::spawn_blocking(move || reload())
        .await
        .map_err(|e| AdminError::Reload(e.to_string()))?
        .map_err(AdminError::Reload)?;
    Ok(axum::Json(json!({
        "reloaded": true,
        "applied": report.applied,
        "needs_restart": report.needs_restart,
    }))
    .into_response())
}

async fn power(State(state): State<AdminState>) -> Response {
    axum::Json(state.handle.status()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        let token = TokenDigest::of(b"abcdefghijklmnop");
        assert!(token.matches(&TokenDigest::of(b"abcdefghijklmnop")));
        assert!(!token.matches(&TokenDigest::of(b"abcdefghijklmnoq")));
        // A prefix or a longer string is just another digest: nothing returns early on
        // length, so the configured token's length is not observable.
        assert!(!token.matches(&TokenDigest::of(b"abc")));
        assert!(!token.matches(&TokenDigest::of(b"abcdefghijklmnopq")));
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = auth {
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn refused_writes_are_counted_by_reason() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let log = RateLimitedLog::new(DEFAULT_WINDOW);
        metrics::with_local_recorder(&recorder, || {
            let on = Some(TokenDigest::of(b"s3cret"));
            let on = on.as_ref();
            assert!(authorize(on, &headers(Some("Bearer s3cret")), &log).is_ok());
            assert!(authorize(on, &headers(Some("bearer s3cret")), &log).is_ok());
            assert!(matches!(
                authorize(on, &headers(Some("Bearer s3cre")), &log),
                Err(AdminError::Unauthorized)
            ));
            assert!(matches!(
                authorize(on, &headers(None), &log),
                Err(AdminError::Unauthorized)
            ));
            assert!(matches!(
                authorize(None, &headers(Some("Bearer s3cret")), &log),
                Err(AdminError::WritesDisabled)
            ));
        });
        let text = handle.render();
        for reason in ["wrong", "missing", "disabled"] {
            let line = format!("{ADMIN_AUTH_FAILURES}{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&line), "{line} not in:\n{text}");
        }
    }

    /// Collects formatted log lines.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;
        fn make_writer(&'a self) -> LogBuffer {
            self.clone()
        }
    }

    #[test]
    fn token_guessing_is_counted_each_time_and_logged_once_per_window() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let log = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish();
        let gate = RateLimitedLog::new(DEFAULT_WINDOW);
        let token = TokenDigest::of(b"s3cret");
        tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || {
                for guess in 0..100 {
                    let header = format!("Bearer guess{guess}");
                    assert!(authorize(Some(&token), &headers(Some(&header)), &gate).is_err());
                }
            });
        });
        let text = handle.render();
        let line = format!("{ADMIN_AUTH_FAILURES}{{reason=\"wrong\"}} 100");
        assert!(text.contains(&line), "{line} not in:\n{text}");
        let logged = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
        assert_eq!(
            logged.matches("admin write refused").count(),
            1,
            "one line per window: {logged}"
        );
    }

    #[test]
    fn error_statuses() {
        assert_eq!(AdminError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(AdminError::WritesDisabled.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            AdminError::Control(ControlError::UnknownMiner("x".into())).status(),
            StatusCode::NOT_FOUND
        );
    }
}
