//! The server configuration: defaults, then the TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use tributary_store::StoreConfig;

/// The commented default configuration, printed by `tributary default-config`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub store: StoreConfig,
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
