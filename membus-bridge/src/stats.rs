//! Per-share counters, shared between a share's worker thread and whoever prints status.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// Which way a share is bridged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Local share published to the network.
    Export,
    /// Remote share mirrored into a local one.
    Import,
}

/// Where a bridged share stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Waiting for the local share (export) or for the exporter (import).
    Waiting = 0,
    /// Bridging.
    Live = 1,
    /// Import only: the exporter's liveliness token is gone; the mirror holds the last data.
    Stale = 2,
    /// Given up on (see the last error).
    Failed = 3,
    /// Stopped.
    Stopped = 4,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Live,
            2 => State::Stale,
            3 => State::Failed,
            4 => State::Stopped,
            _ => State::Waiting,
        }
    }

    /// Lower-case name for status lines.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Live => "live",
            State::Stale => "stale",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// Counters of one bridged share. All counters only grow.
///
/// Relaxed atomics throughout: every field is an independent statistic; nothing else is
/// published through them.
#[derive(Debug)]
pub struct ShareStats {
    /// Export or import.
    pub direction: Direction,
    /// Local share name.
    pub local: String,
    /// Base key expression.
    pub key: String,
    kind: Mutex<&'static str>,
    /// Items published (export; for memcmd imports: commands sent towards the owner).
    pub sent: AtomicU64,
    /// Items received and written locally (import; for memcmd exports: commands delivered).
    pub received: AtomicU64,
    /// Items that never arrived (gaps in the sender's sequence, or lost at the source).
    pub lost: AtomicU64,
    /// Items skipped on purpose (video: newest frame first).
    pub skipped: AtomicU64,
    /// Malformed or unusable frames reported and skipped.
    pub malformed: AtomicU64,
    /// Duplicates dropped (an item seen twice).
    pub duplicates: AtomicU64,
    /// Age of the last item on arrival, ns (sender's wall clock to receiver's).
    pub lag_ns: AtomicU64,
    /// Times the exporter's session changed (resynchronisations).
    pub resyncs: AtomicU64,
    /// Times an importer found items published but never delivered, and subscribed again
    /// (the stall watchdog).
    pub stalls: AtomicU64,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

impl ShareStats {
    /// Fresh counters.
    pub fn new(direction: Direction, local: &str, key: &str, kind: &'static str) -> ShareStats {
        ShareStats {
            direction,
            local: local.to_owned(),
            key: key.to_owned(),
            kind: Mutex::new(kind),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            lag_ns: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            state: AtomicU8::new(State::Waiting as u8),
            last_error: Mutex::new(None),
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The share type (known for imports once the exporter has described it).
    pub fn kind(&self) -> &'static str {
        *self.kind.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the share type.
    pub fn set_kind(&self, kind: &'static str) {
        *self.kind.lock().unwrap_or_else(|p| p.into_inner()) = kind;
    }

    /// Current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state.
    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// Records a problem for the status line.
    pub fn set_error(&self, e: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.into());
    }

    /// The last recorded problem.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl fmt::Display for ShareStats {
    /// One status line: direction, type, names, state and every counter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (dir, arrow) = match self.direction {
            Direction::Export => ("export", "->"),
            Direction::Import => ("import", "<-"),
        };
        write!(
            f,
            "{dir} {} {} {arrow} {} [{}] sent {} received {} lost {} skipped {} malformed {} duplicates {} resyncs {} stalls {} lag {:.3} ms",
            self.kind(),
            self.local,
            self.key,
            self.state().as_str(),
            g(&self.sent),
            g(&self.received),
            g(&self.lost),
            g(&self.skipped),
            g(&self.malformed),
            g(&self.duplicates),
            g(&self.resyncs),
            g(&self.stalls),
            g(&self.lag_ns) as f64 / 1e6,
        )?;
        if let Some(e) = self.last_error() {
            write!(f, " last-error: {e}")?;
        }
        Ok(())
    }
}
