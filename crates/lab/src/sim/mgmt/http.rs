//! What the HTTP simulators share: fault switches and the listener task.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::state::{Fault, SimMinerState};

/// Applies the fault switch to one HTTP request: `Some(response)` replaces the handler's.
pub(crate) async fn fault_gate(state: &SimMinerState) -> Option<Response> {
    match state.fault() {
        Fault::NoAnswer => std::future::pending().await,
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Fault::Garbage => Some((StatusCode::OK, "\u{16}\u{3}garbage{{[\"").into_response()),
        Fault::None | Fault::WrongCredentials => None,
    }
}

/// Serves `router` on `listener` until `cancel` fires.
pub(crate) async fn serve(listener: TcpListener, router: Router, cancel: CancellationToken) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
}
