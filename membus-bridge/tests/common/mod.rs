//! Running `membus-bridge` processes in tests: free loopback ports, line-by-line stdout
//! with bounded waits, and clean stops (SIGTERM, then SIGKILL if it overstays).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_membus-bridge");

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

pub fn endpoint(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}

/// A namespace unique to this test process and call, so tests never see each other.
pub fn unique_namespace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "membus-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running bridge process whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    label: String,
}

impl Proc {
    pub fn spawn(label: &str, args: &[&str]) -> Proc {
        Self::spawn_cmd(label, Command::new(BRIDGE).args(args))
    }

    pub fn spawn_cmd(label: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        let tag = label.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{tag}] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
            label: label.to_owned(),
        }
    }

    /// Waits (at most `timeout`) for a line containing every one of `parts`.
    pub fn wait_line(&mut self, parts: &[&str], timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .seen
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(l) => self.seen.push(l),
                Err(_) if Instant::now() >= end => panic!(
                    "{}: no line with {parts:?} within {timeout:?}; saw {:#?}",
                    self.label, self.seen
                ),
                Err(_) => {
                    if let Ok(Some(st)) = self.child.try_wait() {
                        // Drain what is left, then give up.
                        while let Ok(l) = self.lines.try_recv() {
                            self.seen.push(l);
                        }
                        if let Some(l) = self
                            .seen
                            .iter()
                            .find(|l| parts.iter().all(|p| l.contains(p)))
                        {
                            return l.clone();
                        }
                        panic!(
                            "{} exited ({st}) before a line with {parts:?}; saw {:#?}",
                            self.label, self.seen
                        );
                    }
                }
            }
        }
    }

    /// Like [`wait_line`](Self::wait_line) but `None` instead of a panic on timeout.
    pub fn wait_line_for(&mut self, parts: &[&str], timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .seen
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return Some(l.clone());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Ok(l) = self.lines.recv_timeout(left) {
                self.seen.push(l);
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety obligations.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then waits for a clean exit (SIGKILL after 20 s); returns every line.
    pub fn stop(mut self) -> Vec<String> {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within 20 s of SIGTERM", self.label);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF; collect the rest.
        let until = Instant::now() + Duration::from_secs(5);
        while let Ok(l) = self
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l);
        }
        assert!(status.success(), "{} exited with {status}", self.label);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The number after `field ` in a status line.
pub fn field(line: &str, field: &str) -> u64 {
    let pat = format!(" {field} ");
    let at = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {field} in {line}"))
        + pat.len();
    line[at..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {field} in {line}"))
}

/// The `final:` status line for `share`.
pub fn final_line<'a>(lines: &'a [String], share: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with("final:") && l.contains(share))
        .unwrap_or_else(|| panic!("no final line for {share} in {lines:#?}"))
}
