//! The server configuration: defaults, then the TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use tributary_broker::BrokerConfig;
use tributary_namesrv::NamesrvConfig;
use tributary_store::StoreConfig;

/// The commented default configuration, printed by `tributary default-config`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub namesrv: NamesrvConfig,
    pub broker: BrokerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./tributary-data"),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            namesrv: NamesrvConfig::default(),
            broker: BrokerConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

impl Config {
    /// Parses a TOML document; unknown keys are errors.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let mut c: Config = toml::from_str(text)?;
        c.derive_paths();
        Ok(c)
    }

    /// Loads the file and applies the flags of `server` / `broker`.
    pub fn from_args(args: &crate::cli::ServerArgs) -> anyhow::Result<Config> {
        let mut c = Config::load(
            args.config.as_deref(),
            args.data_dir.clone(),
            args.http_listen,
        )?;
        if let Some(l) = args.namesrv_listen {
            c.namesrv.listen = l;
        }
        if let Some(l) = args.broker_listen {
            c.broker.listen = l;
        }
        if let Some(list) = &args.namesrv {
            c.broker.namesrv_addr = parse_namesrv_list(list);
        }
        Ok(c)
    }

    /// Loads `path` (or the defaults), applies the overrides and validates.
    pub fn load(
        path: Option<&Path>,
        data_dir: Option<PathBuf>,
        http: Option<SocketAddr>,
    ) -> anyhow::Result<Config> {
        let mut c = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("read config file {}", p.display()))?;
                Config::parse(&text)
                    .with_context(|| format!("parse config file {}", p.display()))?
            }
            None => Config::default(),
        };
        if let Some(d) = data_dir {
            c.data_dir = d;
        }
        if let Some(h) = http {
            c.http.listen = h;
        }
        c.store.data_dir = c.data_dir.join("store");
        c.store.validate()?;
        Ok(c)
    }

    fn derive_paths(&mut self) {
        self.store.data_dir = self.data_dir.join("store");
    }
}

/// Splits a NameServer list as RocketMQ clients do: `host:port` entries separated by `;`.
pub fn parse_namesrv_list(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_file_equals_built_in_defaults() {
        let parsed = Config::parse(DEFAULT_TOML).expect("default.toml parses");
        let built = Config::default();
        // Debug output covers every field of every section.
        let mut built_store = built.store.clone();
        built_store.data_dir = built.data_dir.join("store");
        assert_eq!(format!("{:?}", parsed.store), format!("{built_store:?}"));
        assert_eq!(parsed.http.listen, built.http.listen);
        assert_eq!(parsed.data_dir, built.data_dir);
        assert_eq!(parsed.namesrv, built.namesrv);
        assert_eq!(parsed.broker, built.broker);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(Config::parse("[store]\nflush_mod = \"sync\"\n").is_err());
        assert!(Config::parse("[store]\nflush_mode = \"sometimes\"\n").is_err());
        let c =
            Config::parse("data_dir = \"/x\"\n[store]\nflush_mode = \"sync\"\n").expect("parse");
        assert_eq!(c.store.flush_mode, tributary_store::FlushMode::Sync);
        assert_eq!(c.store.data_dir, PathBuf::from("/x/store"));
    }
}
