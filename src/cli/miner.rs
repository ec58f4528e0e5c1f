//! `hashgate miner status|sleep|wake|power-limit`: talk to one miner's management API.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, Subcommand};

use hashgate_site::config::parse_duration;
use hashgate_site::power::api::command::Target;
use hashgate_site::power::api::{Credentials, Family, MinerCommand, Timeouts, run_miner_command};
use hashgate_site::power::inventory::default_port;

/// Which miner and how to log in.
#[derive(Debug, Args)]
pub(crate) struct MinerArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: MinerAction,
}

/// The miner actions.
#[derive(Debug, Subcommand)]
pub(crate) enum MinerAction {
    /// Print the miner's telemetry and raw replies as JSON.
    Status(MinerTarget),
    /// Put the miner's hashboards to sleep.
    Sleep(MinerTarget),
    /// Wake a sleeping miner.
    Wake(MinerTarget),
    /// Cap the miner's power draw.
    PowerLimit {
        /// Watts.
        watts: u32,
        /// The miner.
        #[command(flatten)]
        target: MinerTarget,
    },
}

/// Where the miner is.
#[derive(Debug, Args)]
pub(crate) struct MinerTarget {
    /// Firmware family: antminer, avalon, luxos, braiins, whatsminer.
    #[arg(long)]
    pub family: Family,
    /// Management address, `ip:port` or `ip` (port 4028; 80 for braiins).
    pub address: String,
    /// Stock Antminer web (CGI) address, default port 80 of the same host.
    #[arg(long)]
    pub web: Option<SocketAddr>,
    /// Login user.
    #[arg(long, env = "HASHGATE_MINER_USER", default_value = "root")]
    pub user: String,
    /// Login password (prefer the environment variable: command lines are visible in `ps`).
    #[arg(
        long,
        env = "HASHGATE_MINER_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub password: String,
    /// How long one whole call may take, e.g. `5s`, `1500ms`.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
}

impl MinerTarget {
    fn resolve(&self) -> anyhow::Result<Target> {
        let addr = match self.address.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                let ip: IpAddr = self.address.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "{:?} is not an ip or ip:port (e.g. 10.1.2.3:4028)",
                        self.address
                    )
                })?;
                SocketAddr::new(ip, default_port(self.family))
            }
        };
        let call = self.timeout;
        Ok(Target {
            family: self.family,
            addr,
            web: self.web,
            credentials: Credentials {
                user: self.user.clone(),
                password: self.password.clone(),
            },
            timeouts: Timeouts {
                connect: call.min(Duration::from_secs(2)),
                call,
            },
        })
    }
}

/// Runs one miner action and prints the miner's answer as JSON.
///
/// # Errors
/// A bad address, or the miner's API failing (timeout, refused, unreadable reply).
pub(super) fn run(args: MinerArgs) -> anyhow::Result<()> {
    let (target, command) = match &args.action {
        MinerAction::Status(t) => (t, MinerCommand::Status),
        MinerAction::Sleep(t) => (t, MinerCommand::Sleep),
        MinerAction::Wake(t) => (t, MinerCommand::Wake),
        MinerAction::PowerLimit { watts, target } => (target, MinerCommand::PowerLimit(*watts)),
    };
    let target = target.resolve()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime
        .block_on(run_miner_command(&target, command))
        .map_err(|e| anyhow::anyhow!("{} {}: {e}", target.family, target.addr))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
