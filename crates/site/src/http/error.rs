//! Errors the status API answers with: a status code and `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why an API request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A query parameter has a value the endpoint does not take (400).
    #[error("bad value {value:?} for {parameter}; accepted: {accepted}")]
    BadQuery {
        /// The parameter.
        parameter: &'static str,
        /// What was sent.
        value: String,
        /// What is accepted.
        accepted: &'static str,
    },
    /// The query string could not be decoded (unknown parameter, a number that is not one).
    #[error("bad query string: {0}")]
    MalformedQuery(String),
    /// No connected or departed miner has this worker name (404).
    #[error("no miner with worker name {0:?} has connected since start")]
    UnknownWorker(String),
    /// No route has this path (404).
    #[error("no such route: {0}; see docs/API.md")]
    NoRoute(String),
    /// `/api/v1/power` (or a power admin route) on a site without a `[power]` section (404).
    #[error("power gating is not configured: the configuration has no [power] section")]
    NoPower,
    /// `/api/v1/ledger` on a site without a `[ledger]` section (404).
    #[error("the ledger is not configured: the configuration has no [ledger] section")]
    NoLedger,
    /// The ledger file could not be read (503: the site runs, its ledger does not answer).
    #[error("{0}")]
    Ledger(String),
    /// Rendering ran into a runtime failure (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status it maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadQuery { .. } | ApiError::MalformedQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownWorker(_)
            | ApiError::NoRoute(_)
            | ApiError::NoPower
            | ApiError::NoLedger => StatusCode::NOT_FOUND,
            ApiError::Ledger(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}
