//! `hashgate run`: the proxy from a config file, with command-line and environment overrides.

use std::path::PathBuf;

use clap::Args;

use hashgate_site::config::{ConfigError, RawConfig, RawPool};

/// Where the configuration comes from and what overrides it.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RunArgs {
    /// The site configuration file.
    #[arg(long, short, env = "HASHGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address miners connect to (overrides `proxy.listen`).
    #[arg(long, env = "HASHGATE_LISTEN")]
    pub listen: Option<String>,
    /// A pool URL, repeatable in failover order (replaces the file's `[[pools]]`).
    #[arg(long = "pool", env = "HASHGATE_POOLS", value_delimiter = ',')]
    pub pools: Vec<String>,
    /// The site's pool account (overrides `proxy.account`).
    #[arg(long, env = "HASHGATE_USER")]
    pub user: Option<String>,
    /// Address of the metrics and status API (overrides `http.listen`).
    #[arg(long, env = "HASHGATE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Runtime worker threads (default: one per CPU core). Fewer than the cores leaves
    /// room for other processes on the box; see `docs/BENCHES.md`, "Proxy end to end".
    #[arg(long, env = "HASHGATE_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

impl RunArgs {
    /// Reads the file (if any) and applies the overrides; flags and environment win over the
    /// file, as operators expect when they patch one value on a running site.
    ///
    /// # Errors
    /// The file cannot be read or parsed.
    pub(crate) fn raw_config(&self) -> Result<RawConfig, ConfigError> {
        let mut raw = match &self.config {
            Some(path) => RawConfig::load(path)?,
            None => RawConfig::default(),
        };
        if let Some(listen) = &self.listen {
            raw.proxy.listen = Some(listen.clone());
        }
        if let Some(listen) = &self.http_listen {
            raw.http.listen = Some(listen.clone());
        }
        if let Some(user) = &self.user {
            raw.proxy.account = Some(user.clone());
        }
        if !self.pools.is_empty() {
            raw.pools = self
                .pools
                .iter()
                .enumerate()
                .map(|(i, url)| RawPool {
                    name: Some(format!("pool{i}")),
                    url: Some(url.clone()),
                    ..RawPool::default()
                })
                .collect();
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_a_config_without_a_file() {
        let args = RunArgs {
            listen: Some("127.0.0.1:3333".into()),
            pools: vec![
                "stratum+tcp://a.example:3333".into(),
                "b.example:443".into(),
            ],
            user: Some("site".into()),
            ..RunArgs::default()
        };
        let cfg = args.raw_config().unwrap().validate().unwrap();
        assert_eq!(cfg.proxy.listen.to_string(), "127.0.0.1:3333");
        assert_eq!(cfg.pools.len(), 2);
        assert_eq!(cfg.pools[1].url.port, 443);
        assert_eq!(cfg.pools[0].user, "site");
    }

    #[test]
    fn flags_override_the_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hashgate.toml");
        let args = RunArgs {
            config: Some(path),
            user: Some("other".into()),
            pools: vec!["127.0.0.1:4444".into()],
            ..RunArgs::default()
        };
        let cfg = args.raw_config().unwrap().validate().unwrap();
        assert_eq!(cfg.proxy.account, "other");
        assert_eq!(cfg.pools.len(), 1);
        assert_eq!(cfg.pools[0].url.port, 4444);
        assert_eq!(cfg.proxy.max_connections.get(), 20_000, "file values stay");
    }

    #[test]
    fn worker_threads_is_a_positive_count() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            run: RunArgs,
        }
        let parsed = Cmd::try_parse_from(["run", "--worker-threads", "1"]).unwrap();
        assert_eq!(parsed.run.worker_threads, Some(1));
        assert!(Cmd::try_parse_from(["run", "--worker-threads", "0"]).is_err());
        assert!(Cmd::try_parse_from(["run", "--worker-threads", "x"]).is_err());
    }

    #[test]
    fn no_file_and_no_pool_names_the_missing_field() {
        let err = RunArgs::default()
            .raw_config()
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("pools:"), "{err}");
    }
}
