//! What to bridge: share specs from the command line and the TOML file of `run --config`.
//!
//! ```toml
//! listen = ["tcp/127.0.0.1:7447"]     # Zenoh locators
//! connect = []
//! namespace = "plant-a"              # optional key prefix
//! scout = false                      # multicast scouting, off by default
//! stats_every = "5s"                 # optional periodic status lines
//! export = ["/camera", "memcmd:/camera-cmd"]
//! import = ["/remote-state=/state-copy"]
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::net::NetOptions;
use crate::{BridgeError, Result};

/// A bridged share type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareType {
    /// memmsg.
    Msg,
    /// memcmd.
    Cmd,
    /// memkv.
    Kv,
    /// memvid.
    Vid,
    /// memaud.
    Aud,
    /// mempkt.
    Pkt,
}

impl ShareType {
    /// The type's name (`memmsg`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ShareType::Msg => "memmsg",
            ShareType::Cmd => "memcmd",
            ShareType::Kv => "memkv",
            ShareType::Vid => "memvid",
            ShareType::Aud => "memaud",
            ShareType::Pkt => "mempkt",
        }
    }

    fn parse(s: &str) -> Option<ShareType> {
        Some(match s {
            "memmsg" => ShareType::Msg,
            "memcmd" => ShareType::Cmd,
            "memkv" => ShareType::Kv,
            "memvid" => ShareType::Vid,
            "memaud" => ShareType::Aud,
            "mempkt" => ShareType::Pkt,
            _ => return None,
        })
    }
}

/// A share to export: `[TYPE:]NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSpec {
    /// The local share name.
    pub name: String,
    /// Its type; `None`: recognised when the share is opened (memvid, memaud and mempkt
    /// by their magic and type, memkv by its header, otherwise memmsg). memcmd must be named (`memcmd:/name`): its header is
    /// not told apart from memmsg's reliably.
    pub kind: Option<ShareType>,
}

impl ExportSpec {
    /// Parses `[TYPE:]NAME`, e.g. `/camera` or `memcmd:/camera-cmd`.
    ///
    /// # Errors
    /// [`BridgeError::Config`] for an unknown type or an empty name.
    pub fn parse(s: &str) -> Result<ExportSpec> {
        let (kind, name) = match s.split_once(':') {
            Some((t, n)) => (
                Some(ShareType::parse(t).ok_or_else(|| {
                    BridgeError::Config(format!(
                        "{s:?}: unknown share type {t:?} (memmsg, memcmd, memkv, memvid, memaud, mempkt)"
                    ))
                })?),
                n,
            ),
            None => (None, s),
        };
        if name.is_empty() {
            return Err(BridgeError::Config(format!("{s:?}: empty share name")));
        }
        Ok(ExportSpec {
            name: name.to_owned(),
            kind,
        })
    }
}

/// A share to import: `REMOTE[=LOCAL]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSpec {
    /// The exporter's share name.
    pub remote: String,
    /// The local mirror's name (default: the same).
    pub local: String,
}

impl ImportSpec {
    /// Parses `REMOTE[=LOCAL]`.
    ///
    /// # Errors
    /// [`BridgeError::Config`] for an empty name.
    pub fn parse(s: &str) -> Result<ImportSpec> {
        let (remote, local) = match s.split_once('=') {
            Some((r, l)) => (r, l),
            None => (s, s),
        };
        if remote.is_empty() || local.is_empty() {
            return Err(BridgeError::Config(format!("{s:?}: empty share name")));
        }
        Ok(ImportSpec {
            remote: remote.to_owned(),
            local: local.to_owned(),
        })
    }
}

/// Everything one bridge process does.
#[derive(Clone, Debug, Default)]
pub struct BridgeConfig {
    /// Network options.
    pub net: NetOptions,
    /// Shares to publish.
    pub exports: Vec<ExportSpec>,
    /// Shares to mirror.
    pub imports: Vec<ImportSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    connect: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    scout: bool,
    #[serde(default)]
    stats_every: Option<String>,
    #[serde(default)]
    export: Vec<String>,
    #[serde(default)]
    import: Vec<String>,
}

/// Parses a duration such as `5s`, `250ms`, `2m`.
///
/// # Errors
/// [`BridgeError::Config`] for anything else.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let bad = || BridgeError::Config(format!("{s:?}: not a duration (e.g. 5s, 250ms, 2m)"));
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

/// Parses a `run --config` file: the bridge configuration and the status period.
///
/// # Errors
/// [`BridgeError::Config`] naming the problem (TOML syntax, unknown key, bad spec).
pub fn parse_toml(text: &str) -> Result<(BridgeConfig, Option<Duration>)> {
    let f: FileConfig =
        toml::from_str(text).map_err(|e| BridgeError::Config(format!("config file: {e}")))?;
    let cfg = BridgeConfig {
        net: NetOptions {
            listen: f.listen,
            connect: f.connect,
            scout: f.scout,
            namespace: f.namespace,
        },
        exports: f
            .export
            .iter()
            .map(|s| ExportSpec::parse(s))
            .collect::<Result<_>>()?,
        imports: f
            .import
            .iter()
            .map(|s| ImportSpec::parse(s))
            .collect::<Result<_>>()?,
    };
    if cfg.exports.is_empty() && cfg.imports.is_empty() {
        return Err(BridgeError::Config(
            "config file: nothing to export or import".into(),
        ));
    }
    let every = f.stats_every.as_deref().map(parse_duration).transpose()?;
    Ok((cfg, every))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            ExportSpec::parse("memcmd:/c").unwrap(),
            ExportSpec {
                name: "/c".into(),
                kind: Some(ShareType::Cmd)
            }
        );
        assert_eq!(ExportSpec::parse("/c").unwrap().kind, None);
        assert!(ExportSpec::parse("memfoo:/c").is_err());
        let i = ImportSpec::parse("/a=/b").unwrap();
        assert_eq!((i.remote.as_str(), i.local.as_str()), ("/a", "/b"));
        assert_eq!(ImportSpec::parse("/a").unwrap().local, "/a");
        assert!(ImportSpec::parse("/a=").is_err());
    }

    #[test]
    fn toml_file() {
        let (cfg, every) = parse_toml(
            r#"
            listen = ["tcp/127.0.0.1:7447"]
            namespace = "plant-a"
            stats_every = "5s"
            export = ["/cam", "memcmd:/cmd"]
            import = ["/x=/y"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.net.listen, ["tcp/127.0.0.1:7447"]);
        assert_eq!(cfg.net.namespace.as_deref(), Some("plant-a"));
        assert!(!cfg.net.scout);
        assert_eq!(cfg.exports.len(), 2);
        assert_eq!(cfg.imports[0].local, "/y");
        assert_eq!(every, Some(Duration::from_secs(5)));
        let e = parse_toml("lisen = []\nexport=[\"/a\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
        assert!(parse_toml("listen = []").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
