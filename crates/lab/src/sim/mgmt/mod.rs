//! Simulated management APIs, one per firmware family, over one physical model.
//!
//! [`spawn`] binds 127.0.0.1 port 0 (twice for stock Antminer: 4028-style API and web
//! CGI), serves until the returned [`SimMgmtServer`] is dropped, and shares its
//! [`SimMinerState`] so a test (or the Stratum-side simulated miner) sees what the API did.

mod antminer;
mod avalon;
mod braiins;
mod http;
mod luxos;
pub mod state;
pub mod tcp;
mod whatsminer;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use state::{Fault, SimMinerSpec, SimMinerState, SimReading};
pub use tcp::Ending;

use hashgate_site::power::api::{self, Credentials, Family, MinerApi, Timeouts};

/// A running simulated management API; dropping it stops the server.
#[derive(Debug)]
pub struct SimMgmtServer {
    /// Firmware family it imitates.
    pub family: Family,
    /// Management address: the 4028-style API, or the REST address for Braiins.
    pub addr: SocketAddr,
    /// Stock Antminer only: the web (CGI) address.
    pub web_addr: Option<SocketAddr>,
    /// The miner behind the API.
    pub state: SimMinerState,
    /// Stops every task of this server when cancelled (on drop).
    cancel: CancellationToken,
}

impl SimMgmtServer {
    /// A client of the right family pointed at this server (both ports for Antminer).
    pub fn client(&self, credentials: Credentials, timeouts: Timeouts) -> Box<dyn MinerApi> {
        match (self.family, self.web_addr) {
            (Family::Antminer, Some(web)) => Box::new(api::antminer::AntminerClient::new(
                self.addr,
                web,
                credentials,
                timeouts,
            )),
            _ => api::client(self.family, self.addr, credentials, timeouts),
        }
    }

    /// Stops serving now (also done on drop).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for SimMgmtServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The reply ending a family's firmware uses on 4028.
pub fn default_ending(family: Family) -> Ending {
    match family {
        // LuxOS ends replies with a newline; the others with a NUL.
        Family::Luxos => Ending::Newline,
        _ => Ending::Nul,
    }
}

/// Starts the management API of `family` for `state` on 127.0.0.1, port 0.
///
/// # Errors
/// When a listener cannot be bound.
pub async fn spawn(family: Family, state: SimMinerState) -> std::io::Result<SimMgmtServer> {
    spawn_with_ending(family, state, default_ending(family)).await
}

/// [`spawn`] with a chosen reply ending on 4028 (to test the client's framing).
///
/// # Errors
/// When a listener cannot be bound.
pub async fn spawn_with_ending(
    family: Family,
    state: SimMinerState,
    ending: Ending,
) -> std::io::Result<SimMgmtServer> {
    let cancel = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut web_addr = None;
    let handler = match family {
        Family::Luxos => luxos::handler(state.clone()),
        Family::Avalon => avalon::handler(state.clone()),
        Family::Whatsminer => whatsminer::handler(state.clone()),
        Family::Antminer => {
            let web = TcpListener::bind("127.0.0.1:0").await?;
            web_addr = Some(web.local_addr()?);
            let router = antminer::router(state.clone());
            tokio::spawn(http::serve(web, router, cancel.clone()));
            antminer::handler(state.clone())
        }
        Family::Braiins => {
            let router = braiins::router(state.clone());
            tokio::spawn(http::serve(listener, router, cancel.clone()));
            return Ok(SimMgmtServer {
                family,
                addr,
                web_addr,
                state,
                cancel,
            });
        }
    };
    tokio::spawn(tcp::serve(
        listener,
        state.clone(),
        ending,
        handler,
        cancel.clone(),
    ));
    Ok(SimMgmtServer {
        family,
        addr,
        web_addr,
        state,
        cancel,
    })
}
