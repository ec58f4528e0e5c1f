//! Simulated stock Antminer: bmminer reads on 4028 (with its `}{` quirk in `stats`) and
//! the Digest-protected CGI pages that switch the work mode.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::http::fault_gate;
use super::state::SimMinerState;
use super::tcp::{Handler, command_of, error, reply};
use hashgate_site::power::api::antminer::{GET_CONF_PATH, SET_CONF_PATH};
use hashgate_site::power::api::digest;

const DESCRIPTION: &str = "cgminer 1.0.0";
const REALM: &str = "antMiner Configuration";

pub(crate) fn handler(state: SimMinerState) -> Handler {
    Arc::new(move |req: &Value, now: Instant| handle(&state, req, now))
}

fn handle(state: &SimMinerState, req: &Value, now: Instant) -> String {
    let (cmd, _) = command_of(req);
    let r = state.reading(now);
    match cmd {
        "summary" => reply(
            "SUMMARY",
            json!([{ "GHS 5s": r.hashrate_ths * 1000.0, "GHS av": r.hashrate_ths * 1000.0, "Elapsed": 1 }]),
            "Summary",
            11,
            DESCRIPTION,
        )
        .to_string(),
        "stats" => {
            let mut readings = serde_json::Map::new();
            readings.insert("Calls".into(), json!(0));
            readings.insert("temp_num".into(), json!(r.board_temps_c.len()));
            readings.insert("fan_num".into(), json!(r.fan_rpm.len()));
            readings.insert("rate_unit".into(), json!("GH"));
            for (i, t) in r.board_temps_c.iter().enumerate() {
                readings.insert(format!("temp{}", i + 1), json!((t - 8.0).round()));
                readings.insert(format!("temp2_{}", i + 1), json!(t.round()));
            }
            for (i, rpm) in r.fan_rpm.iter().enumerate() {
                readings.insert(format!("fan{}", i + 1), json!(rpm));
            }
            let body = reply(
                "STATS",
                json!([{ "BMMiner": "1.0.0", "Type": "Antminer S19 Pro (sim)" }, readings]),
                "CGMiner stats",
                70,
                DESCRIPTION,
            )
            .to_string();
            // bmminer's own bug, kept: no comma between the two STATS entries.
            body.replacen("},{\"Calls\"", "}{\"Calls\"", 1)
        }
        other => error(14, &format!("Invalid command '{other}'"), DESCRIPTION),
    }
}

#[derive(Clone)]
struct Web {
    state: SimMinerState,
    nonce: String,
    /// The miner's stored configuration; a write replaces it whole, as the firmware does.
    conf: Arc<Mutex<Value>>,
}

/// The CGI pages of the web interface.
pub(crate) fn router(state: SimMinerState) -> Router {
    let web = Web {
        state,
        nonce: format!("{:032x}", rand::random::<u128>()),
        conf: Arc::new(Mutex::new(json!({
            "bitmain-fan-ctrl": false,
            "bitmain-fan-pwm": "100",
            "freq-level": "100",
            "pools": [
                {"url": "stratum+tcp://pool.example:3333", "user": "site.worker", "pass": "x"},
            ],
        }))),
    };
    Router::new()
        .route(GET_CONF_PATH, get(get_conf))
        .route(SET_CONF_PATH, post(set_conf))
        .with_state(web)
}

fn challenge(web: &Web) -> Response {
    let value = format!(
        "Digest realm=\"{REALM}\", nonce=\"{}\", qop=\"auth\"",
        web.nonce
    );
    let mut resp = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn authorized(web: &Web, headers: &HeaderMap, method: &Method) -> bool {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let spec = web.state.spec();
    web.state
        .credentials_ok(&spec.credentials.user, &spec.credentials.password)
        && digest::verify(
            auth,
            method.as_str(),
            REALM,
            &web.nonce,
            &spec.credentials.user,
            &spec.credentials.password,
        )
}

async fn get_conf(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Some(resp) = fault_gate(&web.state).await {
        return resp;
    }
    if !authorized(&web, &headers, &Method::GET) {
        return challenge(&web);
    }
    let r = web.state.reading(Instant::now());
    let mut conf = web.conf.lock().map(|c| c.clone()).unwrap_or(Value::Null);
    if let Some(obj) = conf.as_object_mut() {
        obj.insert(
            "bitmain-work-mode".into(),
            json!(if r.awake { "0" } else { "1" }),
        );
    }
    axum::Json(conf).into_response()
}

async fn set_conf(State(web): State<Web>, headers: HeaderMap, body: String) -> Response {
    if let Some(resp) = fault_gate(&web.state).await {
        return resp;
    }
    if !authorized(&web, &headers, &Method::POST) {
        return challenge(&web);
    }
    let posted = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null);
    let mode = posted.get("miner-mode").and_then(Value::as_u64);
    let now = Instant::now();
    match mode {
        Some(1) => web.state.set_awake(false, now),
        Some(0) => web.state.set_awake(true, now),
        _ => {
            return axum::Json(json!({"stat": "error", "code": "M001", "msg": "bad miner-mode"}))
                .into_response();
        }
    }
    // Like the firmware: what was posted becomes the whole configuration.
    if let (Ok(mut conf), Some(obj)) = (web.conf.lock(), posted.as_object()) {
        let mut stored = obj.clone();
        stored.remove("miner-mode");
        *conf = Value::Object(stored);
    }
    axum::Json(json!({"stat": "success", "code": "M000", "msg": "OK!"})).into_response()
}
