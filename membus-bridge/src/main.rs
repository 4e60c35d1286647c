//! `membus-bridge`: mirrors membus shares across machines over Zenoh.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use membus_bridge::config::{parse_duration, parse_toml};
use membus_bridge::{Bridge, BridgeConfig, ExportSpec, ImportSpec, NetOptions};

mod bench;

#[derive(Parser)]
#[command(
    name = "membus-bridge",
    about = "Mirrors membus shares across machines over Zenoh",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Default)]
struct NetArgs {
    /// Zenoh locator to listen on, e.g. tcp/127.0.0.1:7447 (repeatable). Default: none.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Zenoh locator to connect to, e.g. tcp/192.0.2.10:7447 (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Find peers by multicast scouting (off by default).
    #[arg(long)]
    scout: bool,
    /// Prefix of every key expression, so several systems share one network.
    #[arg(long, value_name = "TEXT")]
    namespace: Option<String>,
    /// Print a status line per share this often (e.g. 5s); SIGUSR1 prints one at any time.
    #[arg(long, value_name = "DURATION")]
    stats_every: Option<String>,
}

impl NetArgs {
    fn net(&self) -> NetOptions {
        NetOptions {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            scout: self.scout,
            namespace: self.namespace.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish local shares: NAME, or TYPE:NAME (memmsg, memcmd, memkv, memvid, memaud,
    /// mempkt; memcmd must be named so, the others are recognised).
    Export {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Mirror remote shares into local ones: REMOTE or REMOTE=LOCAL.
    Import {
        #[arg(required = true, value_name = "REMOTE[=LOCAL]")]
        names: Vec<String>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Export and import as a TOML file says (see the README's "Across machines").
    Run {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Measure bridged throughput, latency and frame rate over loopback (two bridges in
    /// this process, one Zenoh hop over 127.0.0.1).
    Bench(bench::BenchArgs),
}

static STOP: AtomicBool = AtomicBool::new(false);
static STATUS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    // Relaxed: an async-signal-safe flag store, polled by the main loop.
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_status(_: libc::c_int) {
    // Relaxed: as in `on_stop`.
    STATUS.store(true, Ordering::Relaxed);
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> std::io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags) that we fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is initialised; the handler only stores to a static atomic, which is
    // async-signal-safe; the old action is not wanted (null).
    if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn serve(cfg: BridgeConfig, every: Option<Duration>) -> Result<(), String> {
    for (sig, h) in [
        (libc::SIGINT, on_stop as extern "C" fn(libc::c_int)),
        (libc::SIGTERM, on_stop),
        (libc::SIGUSR1, on_status),
    ] {
        install(sig, h).map_err(|e| format!("installing signal handler {sig}: {e}"))?;
    }
    let ns = cfg.net.namespace.as_deref();
    let mut plan = Vec::new();
    for e in &cfg.exports {
        let k = membus_bridge::Keys::new(ns, &e.name).map_err(|e| e.to_string())?;
        let t = e
            .kind
            .map(|k| k.as_str())
            .unwrap_or("(type from the share)");
        plan.push(format!("bridging: export {t} {} -> {}", e.name, k.base));
    }
    for i in &cfg.imports {
        let k = membus_bridge::Keys::new(ns, &i.remote).map_err(|e| e.to_string())?;
        plan.push(format!("bridging: import {} <- {}", i.local, k.base));
    }
    say(&format!(
        "membus-bridge {}: {} export(s), {} import(s); listen {:?} connect {:?}{}",
        env!("CARGO_PKG_VERSION"),
        cfg.exports.len(),
        cfg.imports.len(),
        cfg.net.listen,
        cfg.net.connect,
        cfg.net
            .namespace
            .as_deref()
            .map(|n| format!(" namespace {n}"))
            .unwrap_or_default()
    ));
    for line in &plan {
        say(line);
    }
    let report: membus_bridge::Report = Arc::new(|line: String| say(&line));
    let bridge = Bridge::start(&cfg, report).map_err(|e| e.to_string())?;
    say(&format!(
        "membus-bridge: running, pid {}, zid {}",
        std::process::id(),
        bridge.zid()
    ));
    let mut next = every.map(|d| Instant::now() + d);
    // Relaxed: see the handlers.
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let due = next.is_some_and(|t| Instant::now() >= t);
        if STATUS.swap(false, Ordering::Relaxed) || due {
            for l in bridge.status_lines() {
                say(&format!("status: {l}"));
            }
            if let (Some(t), Some(d)) = (next.as_mut(), every) {
                if due {
                    *t += d;
                }
            }
        }
    }
    let lines = bridge.status_lines();
    bridge.stop();
    for l in lines {
        say(&format!("final: {l}"));
    }
    say("membus-bridge: stopped; created shares removed");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Zenoh's own diagnostics, only when asked for (`RUST_LOG=zenoh=debug`).
    zenoh::try_init_log_from_env();
    let r = (|| -> Result<(), String> {
        match cli.cmd {
            Cmd::Export { names, net } => {
                let exports = names
                    .iter()
                    .map(|n| ExportSpec::parse(n))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let every = net.stats_every.as_deref().map(parse_duration).transpose();
                let cfg = BridgeConfig {
                    net: net.net(),
                    exports,
                    imports: vec![],
                };
                serve(cfg, every.map_err(|e| e.to_string())?)
            }
            Cmd::Import { names, net } => {
                let imports = names
                    .iter()
                    .map(|n| ImportSpec::parse(n))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let every = net.stats_every.as_deref().map(parse_duration).transpose();
                let cfg = BridgeConfig {
                    net: net.net(),
                    exports: vec![],
                    imports,
                };
                serve(cfg, every.map_err(|e| e.to_string())?)
            }
            Cmd::Run { config } => {
                let text = std::fs::read_to_string(&config)
                    .map_err(|e| format!("reading {}: {e}", config.display()))?;
                let (cfg, every) = parse_toml(&text).map_err(|e| e.to_string())?;
                serve(cfg, every)
            }
            Cmd::Bench(args) => bench::run(&args),
        }
    })();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("membus-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
