//! The Zenoh side: session configuration and the key expressions of a bridged share.

use zenoh::key_expr::KeyExpr;
use zenoh::Wait;

use crate::{BridgeError, Result};

/// How a bridge joins the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// Zenoh locators to listen on, e.g. `tcp/127.0.0.1:7447`. Empty: listen nowhere.
    pub listen: Vec<String>,
    /// Zenoh locators to connect to.
    pub connect: Vec<String>,
    /// Multicast scouting (off unless asked for).
    pub scout: bool,
    /// Prefix of every key expression, so several systems share one network.
    pub namespace: Option<String>,
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", quoted.join(","))
}

/// Opens a peer-mode Zenoh session with exactly the given endpoints.
///
/// # Errors
/// [`BridgeError::Net`] when an endpoint is malformed or cannot be bound or the session
/// cannot start.
pub fn open_session(net: &NetOptions) -> Result<zenoh::Session> {
    let mut cfg = zenoh::Config::default();
    let set = |cfg: &mut zenoh::Config, key: &str, val: &str| {
        cfg.insert_json5(key, val)
            .map_err(|e| BridgeError::Net(format!("config {key} = {val}: {e}")))
    };
    set(&mut cfg, "mode", "\"peer\"")?;
    // Never listen on every interface by default: only where asked.
    set(&mut cfg, "listen/endpoints", &json_list(&net.listen))?;
    set(&mut cfg, "connect/endpoints", &json_list(&net.connect))?;
    set(
        &mut cfg,
        "scouting/multicast/enabled",
        if net.scout { "true" } else { "false" },
    )?;
    zenoh::open(cfg)
        .wait()
        .map_err(|e| BridgeError::Net(format!("opening the Zenoh session: {e}")))
}

/// The key expressions of one bridged share.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `[namespace/]membus/<name>`.
    pub base: String,
    /// Items from the exporter.
    pub data: KeyExpr<'static>,
    /// The exporter's queryable: description and snapshot.
    pub info: KeyExpr<'static>,
    /// The exporter's liveliness token.
    pub alive: KeyExpr<'static>,
    /// memcmd: commands from importers towards the exporter.
    pub cmd: KeyExpr<'static>,
}

impl Keys {
    /// The keys for share `name` (with or without its leading `/`).
    ///
    /// # Errors
    /// [`BridgeError::Config`] when the name or namespace cannot be part of a key expression
    /// (empty chunks, `*`, `$`, `?`, `#`).
    pub fn new(namespace: Option<&str>, name: &str) -> Result<Keys> {
        let stem = name.trim_start_matches('/');
        let bad = |why: &str| {
            BridgeError::Config(format!(
                "share {name:?}{}: {why}",
                namespace
                    .map(|n| format!(" in namespace {n:?}"))
                    .unwrap_or_default()
            ))
        };
        if stem.is_empty() {
            return Err(bad("empty name"));
        }
        if stem.contains(['*', '$', '?', '#']) {
            return Err(bad("a bridged name may not contain * $ ? #"));
        }
        let base = match namespace {
            Some(ns) => {
                let ns = ns.trim_matches('/');
                if ns.is_empty() || ns.contains(['*', '$', '?', '#']) {
                    return Err(bad("the namespace may not be empty or contain * $ ? #"));
                }
                format!("{ns}/membus/{stem}")
            }
            None => format!("membus/{stem}"),
        };
        let ke = |suffix: &str| {
            KeyExpr::try_from(format!("{base}/{suffix}"))
                .map_err(|e| bad(&format!("not a valid key expression: {e}")))
        };
        Ok(Keys {
            data: ke("data")?,
            info: ke("info")?,
            alive: ke("alive")?,
            cmd: ke("cmd")?,
            base,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_and_without_namespace() {
        let k = Keys::new(None, "/camera").unwrap();
        assert_eq!(k.base, "membus/camera");
        assert_eq!(k.data.as_str(), "membus/camera/data");
        let k = Keys::new(Some("plant-a"), "/camera").unwrap();
        assert_eq!(k.info.as_str(), "plant-a/membus/camera/info");
    }

    #[test]
    fn keys_reject_wildcards_and_empty() {
        assert!(Keys::new(None, "/").is_err());
        assert!(Keys::new(None, "/a*b").is_err());
        assert!(Keys::new(Some("x/**"), "/a").is_err());
        let e = Keys::new(None, "/a$b").unwrap_err().to_string();
        assert!(e.contains("/a$b"), "{e}");
    }

    #[test]
    fn json_list_quotes() {
        assert_eq!(json_list(&[]), "[]");
        assert_eq!(
            json_list(&["tcp/127.0.0.1:1".into(), "a\"b".into()]),
            "[\"tcp/127.0.0.1:1\",\"a\\\"b\"]"
        );
    }
}
