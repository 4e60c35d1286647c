//! # membus-bridge
//!
//! Mirrors membus shares across machines over [Zenoh](https://zenoh.io). An exporter
//! publishes local shares; an importer mirrors them into local shares of the same type and
//! geometry, created when the exporter has described them. Every item carries the bridge's
//! own sequence number, so an importer counts every item it did not get; streams that must
//! not lose items use Zenoh's blocking congestion control, video skips to the newest frame
//! when the link is slower than the source and counts what it skipped.
//!
//! ```no_run
//! use std::sync::Arc;
//! use membus_bridge::{Bridge, BridgeConfig, ExportSpec, NetOptions};
//!
//! # fn main() -> membus_bridge::Result<()> {
//! let cfg = BridgeConfig {
//!     net: NetOptions { listen: vec!["tcp/127.0.0.1:7447".into()], ..NetOptions::default() },
//!     exports: vec![ExportSpec::parse("/camera")?],
//!     imports: vec![],
//! };
//! let bridge = Bridge::start(&cfg, Arc::new(|line: String| eprintln!("{line}")))?;
//! for line in bridge.status_lines() {
//!     eprintln!("{line}");
//! }
//! bridge.stop();
//! # Ok(()) }
//! ```
//!
//! Per share type (see the README's "Across machines" for the guarantees):
//! memmsg items flow exporter → importers in order; memcmd commands flow importers →
//! exporter, exactly once per sender; memkv importers get a snapshot, then whole batches;
//! memvid frames flow with their timestamps and user data, newest first under pressure.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod config;
mod export;
mod import;
pub mod net;
pub mod stats;
pub mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use config::{BridgeConfig, ExportSpec, ImportSpec, ShareType};
pub use net::{Keys, NetOptions};
pub use stats::{Direction, ShareStats, State};

/// What went wrong starting a bridge.
#[derive(Debug)]
pub enum BridgeError {
    /// A bad command line or configuration file entry.
    Config(String),
    /// Zenoh could not start or an endpoint is unusable.
    Net(String),
    /// A local share operation failed.
    Share(membus::Error),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(s) => write!(f, "configuration: {s}"),
            BridgeError::Net(s) => write!(f, "network: {s}"),
            BridgeError::Share(e) => write!(f, "share: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<membus::Error> for BridgeError {
    fn from(e: membus::Error) -> Self {
        BridgeError::Share(e)
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, BridgeError>;

/// Where a running bridge sends its event lines (share ready, exporter gone, ...). The
/// binary prints them; a library user may log them.
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// The process's Zenoh session, which a worker may replace.
///
/// Why replaceable: zenoh 1.10 can come out of a broken link in a state where the new
/// transport to a peer is alive on both sides (keep-alives flow, so no lease ever expires)
/// yet carries nothing from one side: the old transport's late clean-up, when its blocked
/// TCP write finally fails, deletes the *new* transport of the same peer id from the
/// transport manager. An importer's stall watchdog (`Worker::check_stall` in `import.rs`) detects it; the only cure
/// is a transport under a fresh Zenoh id, i.e. a new session. Every worker compares
/// [`generation`](Self::generation) with that of its declarations and declares afresh when
/// it changed.
pub(crate) struct Net {
    opts: NetOptions,
    /// Bumped after every replacement. Release/Acquire: a worker that sees the new number
    /// also sees the new session in `cur` (it locks `cur` anyway).
    gen: AtomicU64,
    cur: Mutex<zenoh::Session>,
}

impl Net {
    fn open(opts: &NetOptions) -> Result<Net> {
        Ok(Net {
            opts: opts.clone(),
            gen: AtomicU64::new(0),
            cur: Mutex::new(net::open_session(opts)?),
        })
    }

    /// The current session (a cheap handle).
    pub fn session(&self) -> zenoh::Session {
        self.cur.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times the session was replaced.
    pub fn generation(&self) -> u64 {
        // Acquire: pairs with the Release increment in `restart`.
        self.gen.load(Ordering::Acquire)
    }

    /// Replaces the session, unless another worker already did since generation `seen`.
    ///
    /// # Errors
    /// [`BridgeError::Net`] when the new session cannot open (the old one is closed then;
    /// the next call tries again).
    pub fn restart(&self, seen: u64) -> Result<()> {
        let mut cur = self.cur.lock().unwrap_or_else(|p| p.into_inner());
        if self.gen.load(Ordering::Relaxed) != seen {
            return Ok(());
        }
        let _ = zenoh::Wait::wait(cur.close());
        *cur = net::open_session(&self.opts)?;
        // Release: pairs with the Acquire load in `generation`.
        self.gen.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn close(&self) {
        let _ = zenoh::Wait::wait(self.session().close());
    }
}

/// What every worker thread shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub net: Arc<Net>,
    pub keys: Keys,
    pub stats: Arc<ShareStats>,
    pub stop: Arc<AtomicBool>,
    pub report: Report,
}

impl Ctx {
    /// The current Zenoh session.
    pub fn session(&self) -> zenoh::Session {
        self.net.session()
    }

    pub fn stopped(&self) -> bool {
        // Relaxed: a plain flag; the workers only need to see it eventually.
        self.stop.load(Ordering::Relaxed)
    }

    pub fn say(&self, line: String) {
        (self.report)(line);
    }

    /// Sleeps up to `d` in short steps, returning early when stopped.
    pub fn nap(&self, d: std::time::Duration) {
        let end = std::time::Instant::now() + d;
        while !self.stopped() {
            let now = std::time::Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(std::time::Duration::from_millis(20)));
        }
    }
}

/// A running bridge: one worker thread per bridged share over one Zenoh session.
pub struct Bridge {
    net: Arc<Net>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<ShareStats>>,
}

impl Bridge {
    /// Opens the Zenoh session and starts bridging every share of `cfg`. Prints nothing:
    /// events go to `report`.
    ///
    /// # Errors
    /// [`BridgeError::Config`] for a share name that cannot be a key expression or a memcmd
    /// export without its type; [`BridgeError::Net`] when the session cannot start (a busy
    /// listening port, a malformed locator).
    pub fn start(cfg: &BridgeConfig, report: Report) -> Result<Bridge> {
        let ns = cfg.net.namespace.as_deref();
        let mut plan = Vec::new();
        for e in &cfg.exports {
            plan.push((Direction::Export, e.name.clone(), e.name.clone(), e.kind));
        }
        for i in &cfg.imports {
            plan.push((Direction::Import, i.remote.clone(), i.local.clone(), None));
        }
        // Check every name before opening anything.
        let mut keyed = Vec::new();
        for (dir, remote, local, kind) in plan {
            membus::IntoShareName::into_share_name(local.as_str())
                .map_err(|e| BridgeError::Config(format!("share {local:?}: {e}")))?;
            keyed.push((dir, Keys::new(ns, &remote)?, local, kind));
        }
        let net = Arc::new(Net::open(&cfg.net)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for (dir, keys, local, kind) in keyed {
            let kind_name = kind.map(ShareType::as_str).unwrap_or("?");
            let st = Arc::new(ShareStats::new(dir, &local, &keys.base, kind_name));
            let ctx = Ctx {
                net: net.clone(),
                keys,
                stats: st.clone(),
                stop: stop.clone(),
                report: report.clone(),
            };
            let name = format!(
                "{}-{}",
                if dir == Direction::Export {
                    "exp"
                } else {
                    "imp"
                },
                local
            );
            let t = std::thread::Builder::new()
                .name(name)
                .spawn(move || match dir {
                    Direction::Export => export::run(ctx, local, kind),
                    Direction::Import => import::run(ctx, local),
                })
                .map_err(|e| BridgeError::Net(format!("starting a worker thread: {e}")))?;
            stats.push(st);
            threads.push(t);
        }
        Ok(Bridge {
            net,
            stop,
            threads,
            stats,
        })
    }

    /// One status line per bridged share.
    pub fn status_lines(&self) -> Vec<String> {
        self.stats.iter().map(|s| s.to_string()).collect()
    }

    /// The counters of every bridged share, in configuration order (exports first).
    pub fn stats(&self) -> &[Arc<ShareStats>] {
        &self.stats
    }

    /// This bridge's Zenoh session id.
    pub fn zid(&self) -> String {
        self.net.session().zid().to_string()
    }

    /// Stops every worker, removes the shares this bridge created, closes the session.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Relaxed: see `Ctx::stopped`; the joins below order everything after.
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.net.close();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A random 64-bit id (never 0) for a bridge session, from the standard library's
/// per-process random hasher keys mixed with the clock and the pid.
pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(wire::now_ns());
    h.write_u32(std::process::id());
    h.finish().max(1)
}
