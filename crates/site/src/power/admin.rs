//! The admin API: pins and demand-response budgets at run time, and the power view.
//!
//! | route | body | what |
//! |---|---|---|
//! | `POST /api/v1/miners/{id}/pin` | `{"pin":"on"\|"off"\|"maintenance"\|"auto"}` | pin a miner (`auto` lifts the pin) |
//! | `PUT /api/v1/containers/{name}/budget` | `{"budget_kw":1200.0}` or `{"budget_kw":null}` | demand response; `null` returns to the configured budget |
//! | `GET /api/v1/power` | | containers, miners and recent decisions |
//!
//! Write routes need `Authorization: Bearer <power.admin_token>` (401 otherwise). With no
//! token configured they answer 403 and change nothing: an unauthenticated switch for a
//! site's power is never served. The read route is open, like `/metrics`, which carries the
//! same figures. The router binds nowhere itself; serve it on 127.0.0.1 unless the
//! network in front is trusted.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use crate::power::controller::ControlError;
use crate::power::driver::PowerHandle;
use crate::power::inventory::{AdminToken, Pin};

/// Largest request body accepted: the bodies are a few dozen bytes.
const MAX_BODY_BYTES: usize = 4096;

/// Builds the admin router over a running driver's handle; `token` `None` refuses writes.
pub fn router(handle: PowerHandle, token: Option<AdminToken>) -> Router {
    Router::new()
        .route("/api/v1/miners/{id}/pin", post(set_pin))
        .route("/api/v1/containers/{name}/budget", put(set_budget))
        .route("/api/v1/power", get(power))
        .with_state(AdminState { handle, token })
}

#[derive(Clone)]
struct AdminState {
    handle: PowerHandle,
    token: Option<AdminToken>,
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
            AdminError::Control(ControlError::InvalidBudget { .. }) => StatusCode::BAD_REQUEST,
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

/// Compares in time independent of where the first difference is, so the token cannot be
/// guessed byte by byte from response times.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(token) = &state.token else {
        return Err(AdminError::WritesDisabled);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // The scheme is case-insensitive (RFC 9110); the token is not.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(AdminError::Unauthorized)?;
    if same_secret(presented.as_bytes(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(AdminError::Unauthorized)
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
    /// Required, but may be `null`: a missing key is an error, not a reset.
    budget_kw: Option<f64>,
}

async fn set_pin(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    authorize(&state, &headers)?;
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
    authorize(&state, &headers)?;
    let value: serde_json::Value = parse_body(&body)?;
    if value.get("budget_kw").is_none() {
        return Err(AdminError::BadBody(
            "expected {\"budget_kw\": <kW> or null}".into(),
        ));
    }
    let req: BudgetRequest =
        serde_json::from_value(value).map_err(|e| AdminError::BadBody(e.to_string()))?;
    state
        .handle
        .set_budget(&name, req.budget_kw.map(|kw| kw * 1e3))?;
    let status = state.handle.status();
    let view = status.containers.iter().find(|c| c.name == name);
    Ok(axum::Json(json!({
        "container": name,
        "budget_kw": view.map(|c| c.budget_watts / 1e3),
        "configured_budget_kw": view.map(|c| c.configured_budget_watts / 1e3),
        "override": req.budget_kw.is_some(),
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
        assert!(same_secret(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!same_secret(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        assert!(!same_secret(b"abc", b"abcd"));
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
