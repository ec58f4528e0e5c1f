//! Simulated Braiins OS REST API (`/api/v1`, 25.07+): login token, reads shaped like
//! `fixtures/miner-api/braiins/v25_07`, pause / resume / power target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::fault_gate;
use super::state::SimMinerState;
use hashgate_site::power::api::braiins::STATUS_PAUSED;

/// `miner/details` status of a miner that is mining normally.
const STATUS_NORMAL: i64 = 2;

#[derive(Clone)]
struct Api {
    state: SimMinerState,
    /// Tokens handed out by `auth/login`, with their last use (they expire when idle).
    tokens: Arc<Mutex<HashMap<String, Instant>>>,
}

/// The REST routes.
pub(crate) fn router(state: SimMinerState) -> Router {
    let api = Api {
        state,
        tokens: Arc::new(Mutex::new(HashMap::new())),
    };
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/miner/stats", get(stats))
        .route("/api/v1/miner/hw/hashboards", get(hashboards))
        .route("/api/v1/cooling/state", get(cooling))
        .route("/api/v1/miner/details", get(details))
        .route("/api/v1/actions/pause", put(pause))
        .route("/api/v1/actions/resume", put(resume))
        .route("/api/v1/performance/power-target", put(power_target))
        .with_state(api)
}

async fn login(State(api): State<Api>, body: String) -> Response {
    if let Some(resp) = fault_gate(&api.state).await {
        return resp;
    }
    let creds: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let user = creds.get("username").and_then(Value::as_str).unwrap_or("");
    let password = creds.get("password").and_then(Value::as_str).unwrap_or("");
    if !api.state.credentials_ok(user, password) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "invalid credentials"})),
        )
            .into_response();
    }
    let token = format!("{:032x}", rand::random::<u128>());
    if let Ok(mut t) = api.tokens.lock() {
        t.insert(token.clone(), Instant::now());
    }
    Json(json!({ "token": token, "timeout_s": api.state.spec().session_idle.as_secs() }))
        .into_response()
}

/// Fault gate then token check; `Err(response)` to send instead.
async fn guard(api: &Api, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(resp) = fault_gate(&api.state).await {
        return Err(resp);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(|t| t.trim_start_matches("Bearer ").trim().to_string())
        .unwrap_or_default();
    let idle = api.state.spec().session_idle;
    let now = Instant::now();
    let known = api
        .tokens
        .lock()
        .map(|mut t| match t.get_mut(&token) {
            Some(used) if now.saturating_duration_since(*used) < idle => {
                *used = now;
                true
            }
            _ => false,
        })
        .unwrap_or(false);
    if known {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "unauthorized"})),
        )
            .into_response())
    }
}

fn ghs(v: f64) -> Value {
    json!({ "gigahash_per_second": v })
}

async fn stats(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    let r = api.state.reading(Instant::now());
    let g = r.hashrate_ths * 1000.0;
    Json(json!({
        "miner_stats": {
            "nominal_hashrate": ghs(api.state.spec().nominal_ths * 1000.0),
            "real_hashrate": { "last_5s": ghs(g), "last_1m": ghs(g), "last_15m": ghs(g) },
        },
        "power_stats": {
            "approximated_consumption": { "watt": r.power_watts.round() },
        },
    }))
    .into_response()
}

async fn hashboards(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    let r = api.state.reading(Instant::now());
    let boards: Vec<Value> = r
        .board_temps_c
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "id": (i + 1).to_string(),
                "enabled": r.awake,
                "board_temp": { "degree_c": t - 12.0 },
                "highest_chip_temp": { "temperature": { "degree_c": t } },
                "lowest_inlet_temp": { "degree_c": r.inlet_c + (t - r.inlet_c) * 0.2 },
            })
        })
        .collect();
    Json(json!({ "hashboards": boards })).into_response()
}

async fn cooling(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    let r = api.state.reading(Instant::now());
    let fans: Vec<Value> = r
        .fan_rpm
        .iter()
        .enumerate()
        .map(|(i, rpm)| json!({ "position": i, "rpm": rpm, "target_speed_ratio": 0.6 }))
        .collect();
    Json(json!({ "fans": fans })).into_response()
}

async fn details(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    let r = api.state.reading(Instant::now());
    Json(json!({
        "hostname": "sim-braiins",
        "status": if r.awake { STATUS_NORMAL } else { STATUS_PAUSED },
        "sticker_hashrate": ghs(api.state.spec().nominal_ths * 1000.0),
    }))
    .into_response()
}

async fn pause(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    api.state.set_awake(false, Instant::now());
    Json(json!(true)).into_response()
}

async fn resume(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    api.state.set_awake(true, Instant::now());
    Json(json!(true)).into_response()
}

async fn power_target(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    if let Err(resp) = guard(&api, &headers).await {
        return resp;
    }
    let watt = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("watt").and_then(Value::as_u64))
        .and_then(|w| u32::try_from(w).ok());
    match watt {
        Some(w) => {
            api.state.set_power_limit(w, Instant::now());
            Json(json!({ "watt": w })).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "watt missing"})),
        )
            .into_response(),
    }
}
