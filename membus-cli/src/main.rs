//! `membus`: see, follow, poke and clean up membus / libmembus shares, and benchmark them.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// Standard output is written with `outln!`/`out!` (an error, not a panic, when it is closed)
// and standard error with `errln!`/`err!` (failures ignored), never with `println!`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that returns the write's `io::Result` instead of panicking when standard output
/// is closed (`membus ls | head -1`); callers pass the error up with `?`, and `main` ends
/// quietly on a broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that returns the write's `io::Result` (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `eprintln!` that ignores a failed write (a closed standard error is no reason to panic,
/// and there is nowhere left to report it).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprint!` that ignores a failed write (see `errln!`).
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod bench;
mod cmds;
mod codegen;
mod media_tail;
mod probe;
mod procs;
mod schema_cmds;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// See, follow, poke and clean up membus / libmembus / pymembus shares in /dev/shm.
#[derive(Parser)]
#[command(name = "membus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Parses `250ms`, `2s`, `1.5s`, `1m` or a plain number of seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 500ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("not a duration: {s:?}"))
}

/// Parses a size in bytes: `4096`, `4k`, `64KiB`, `1M`, `2MiB`, `1G`. The units are binary
/// (k, K, KB, KiB = 1024; M = 1024²; G = 1024³), as memory sizes are.
fn size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a size: {s:?} (try 4096, 4k, 64KiB, 1M)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use k, KiB, M, MiB, G)"
            ))
        }
    };
    n.checked_mul(mult)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[derive(Subcommand)]
enum Cmd {
    /// List the shares in /dev/shm that membus recognises.
    ///
    /// Shows name, type, size, live/stale, session id and live counters. memvid, memaud and
    /// mempkt are recognised by their magic; memmsg, memcmd and memkv by a header that is
    /// consistent with the object size ("likely"). A share is "live" when a membus owner
    /// holds its owner lock, "in use" when a process maps it or holds it open, "stale"
    /// otherwise.
    ///
    /// Example: `membus ls`
    ///
    /// Example: `membus ls --all --json`
    Ls {
        /// Also list objects no type matches (raw memmap blocks and foreign objects).
        #[arg(long)]
        all: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Decode one share's header and derived layout, every field named.
    ///
    /// Example: `membus info /camera-state --json`
    Info {
        /// Share name (leading `/` optional).
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Follow a share: each memmsg/memcmd message on a line, each memkv change as
    /// `epoch N: name=value`, each memvid/memaud frame or mempkt record as
    /// `seq=N slot=I pts=... size=...` (mempkt adds kind, track and meta length).
    ///
    /// Text is printed as is when it is printable UTF-8, escaped otherwise. Overruns are
    /// printed as `overrun: N lost`. For a memkv, --from-start first prints every value
    /// written so far.
    ///
    /// Example: `membus tail /telemetry --from-start --count 10 --timeout 5s`
    ///
    /// Example: `membus tail /camera-state` (each change of a memkv as it happens)
    Tail {
        /// Share name.
        name: String,
        /// Start at the oldest message still in the ring instead of the newest.
        #[arg(long)]
        from_start: bool,
        /// Exit after this many messages, memkv changes, frames or records (non-zero status
        /// if the timeout comes first).
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long (e.g. 500ms, 5s, 1m). Default: run until interrupted.
        #[arg(long, value_parser = duration)]
        timeout: Option<Duration>,
        /// Print payloads as hex.
        #[arg(long)]
        hex: bool,
    },
    /// Write messages to a memcmd, or to a memmsg (creating one with --create SIZE).
    ///
    /// With no MESSAGE arguments, each line of standard input is one message. A memmsg made
    /// with --create stays until the command is interrupted (Ctrl-C, SIGTERM) or --linger
    /// has passed, so readers can attach and read it; then it is removed.
    ///
    /// Example: `membus send /camera-cmd pan-left zoom-in`
    ///
    /// Example: `membus send /greetings --create 4k hello` (keeps it until Ctrl-C)
    ///
    /// Example: `echo hello | membus send /greetings --create 64KiB --linger 10s`
    Send {
        /// Share name.
        name: String,
        /// Messages to send, one per argument.
        messages: Vec<String>,
        /// Create a memmsg of this capacity if the share does not exist (bytes, or with a
        /// unit: 4k, 64KiB, 1M).
        #[arg(long, value_name = "SIZE", value_parser = size)]
        create: Option<usize>,
        /// With --create: remove the share this long after the last message instead of
        /// waiting for Ctrl-C or SIGTERM (e.g. 500ms, 10s, 1m).
        #[arg(long, value_parser = duration)]
        linger: Option<Duration>,
        /// Send as given, without checking the messages against the channel's schema.
        #[arg(long)]
        raw: bool,
    },
    /// Print the schema a typed share carries (the type it was created through).
    ///
    /// Example: `membus schema /camera-state`
    ///
    /// Example: `membus schema /camera-state --json > camera.json` (what `codegen --from`
    /// reads)
    Schema {
        name: String,
        /// The description as JSON (what `codegen --from` reads).
        #[arg(long)]
        json: bool,
    },
    /// Generate typed accessors for another language from a share's schema.
    ///
    /// Example: `membus codegen python /camera-state -o camera_state.py`
    ///
    /// Example: `membus codegen cpp --from camera.json -o camera_state.hpp`
    Codegen {
        #[command(subcommand)]
        lang: Lang,
    },
    /// Read and write a memkv store.
    ///
    /// Example: `membus kv /camera-state get exposure`
    ///
    /// Example: `membus kv /camera-state set exposure 500 mode auto` (one atomic batch)
    ///
    /// Example: `membus kv /camera-state dump --json`
    Kv {
        /// Share name.
        name: String,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Remove shares. A share in use (live owner, or mapped or held open by a process) is
    /// kept unless --force.
    ///
    /// Example: `membus rm /old-share`
    ///
    /// Example: `membus rm --stale` (every stale recognised share of yours)
    ///
    /// Example: `membus rm --stale cam-` (those whose name contains "cam-")
    Rm {
        /// Shares to remove; with --stale, an optional text the names must contain.
        names: Vec<String>,
        /// Remove every recognised share that is stale and belongs to you (never raw
        /// memmap blocks).
        #[arg(long)]
        stale: bool,
        /// With --stale: also other users' stale shares (where permissions allow).
        #[arg(long, requires = "stale")]
        all_users: bool,
        /// Remove even shares that are in use.
        #[arg(long)]
        force: bool,
    },
    /// Run the benchmark: libmembus's own cases with the same workloads, plus
    /// cross-process latency and the bare shared-memory floor.
    ///
    /// Example: `membus bench --duration-ms 1000 --json bench.json`
    ///
    /// Example: `membus bench --only memkv`
    Bench {
        /// Measuring time per case, in milliseconds (libmembus's default is 1000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
        duration_ms: u64,
        /// Also write the results as JSON in libmembus's benchmark shape.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Run only the cases whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Compare with libmembus's benchmark (or any program that writes its JSON):
        /// run the two in alternation for `--rounds` rounds and print each round's ratio
        /// per case (matched by name and payload) and their median.
        #[arg(long, value_name = "LIBMEMBUS_BENCH_BINARY", conflicts_with = "json")]
        compare: Option<PathBuf>,
        /// Rounds of `--compare`.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), requires = "compare")]
        rounds: u32,
        /// Arguments for the compared binary; `{json}` is the file it must write and
        /// `{duration_ms}` the measuring time per case (if it writes no file, its standard
        /// output is read as the JSON).
        #[arg(long, value_name = "ARGS", default_value = bench::COMPARE_ARGS, requires = "compare", allow_hyphen_values = true)]
        compare_args: String,
    },
    /// Internal: the child process of the cross-process benchmark cases.
    #[command(hide = true)]
    BenchPeer {
        /// Which echo loop to run.
        role: String,
        /// The shares it uses.
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Lang {
    /// A Python module over pymembus: a dataclass and typed get_/set_ accessors (memkv),
    /// or message classes with encode/decode.
    ///
    /// Example: `membus codegen python /camera-state -o camera_state.py`
    Python {
        /// The typed share to read the schema from.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        name: Option<String>,
        /// A schema JSON file (`membus schema NAME --json`, or the type's `schema_json()`).
        #[arg(long, value_name = "FILE.json")]
        from: Option<PathBuf>,
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A C++17 header over libmembus's memkv API (memkv), or message structs with
    /// encode/decode.
    ///
    /// Example: `membus codegen cpp --from camera.json -o camera_state.hpp`
    Cpp {
        /// The typed share to read the schema from.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        name: Option<String>,
        /// A schema JSON file (`membus schema NAME --json`, or the type's `schema_json()`).
        #[arg(long, value_name = "FILE.json")]
        from: Option<PathBuf>,
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KvOp {
    /// Print one value (a warning on stderr when a writer seems stuck).
    Get {
        /// Slot name.
        key: String,
    },
    /// Set values as one atomic batch: KEY VALUE [KEY VALUE...].
    ///
    /// A store made by membus's typed API (it has a `__schema` slot) is checked first: a
    /// value that its typed readers could not parse (text where the slot holds a number or
    /// a bool) is refused, as is writing `__schema`. The store records its schema only as a
    /// fingerprint, so the check goes by each slot's current text: enum names and text
    /// fields cannot be checked, and an empty value (an Option's None) always passes.
    /// --raw writes the text as given.
    Set {
        /// Alternating slot names and values.
        #[arg(required = true, num_args = 2.., value_names = ["KEY", "VALUE"])]
        pairs: Vec<String>,
        /// Write the values as given, without checking them against a typed store.
        #[arg(long)]
        raw: bool,
    },
    /// Print every slot as `name=value` (a consistent snapshot).
    Dump {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Ls { all, json } => cmds::ls(all, json),
        Cmd::Info { name, json } => cmds::info(&name, json),
        Cmd::Tail {
            name,
            from_start,
            count,
            timeout,
            hex,
        } => cmds::tail(&name, from_start, count, timeout, hex),
        Cmd::Send {
            name,
            messages,
            create,
            linger,
            raw,
        } => cmds::send(&name, &messages, create, linger, raw),
        Cmd::Schema { name, json } => schema_cmds::schema_cmd(&name, json),
        Cmd::Codegen { lang } => match lang {
            Lang::Python { name, from, out } => {
                schema_cmds::codegen("python", name.as_deref(), from.as_deref(), out.as_deref())
            }
            Lang::Cpp { name, from, out } => {
                schema_cmds::codegen("cpp", name.as_deref(), from.as_deref(), out.as_deref())
            }
        },
        Cmd::Kv { name, op } => match op {
            KvOp::Get { key } => cmds::kv_get(&name, &key),
            KvOp::Set { pairs, raw } => cmds::kv_set(&name, &pairs, raw),
            KvOp::Dump { json } => cmds::kv_dump(&name, json),
        },
        Cmd::Rm {
            names,
            stale,
            all_users,
            force,
        } => cmds::rm(&names, stale, all_users, force),
        Cmd::Bench {
            duration_ms,
            json: _,
            only,
            compare: Some(binary),
            rounds,
            compare_args,
        } => bench::compare(&bench::Compare {
            binary: &binary,
            args: &compare_args,
            rounds,
            duration_ms,
            only: only.as_deref(),
        }),
        Cmd::Bench {
            duration_ms,
            json,
            only,
            ..
        } => bench::run(duration_ms, json.as_deref(), only.as_deref()),
        Cmd::BenchPeer { role, names } => bench::peer(&role, &names),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output has gone (`membus ls | head -1`): nothing left to say, and
        // nothing went wrong on this side.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("membus: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e`, or an error it was caused by, is an I/O error of kind `BrokenPipe` (a write
/// to standard output after its reader closed it).
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_recognised_directly_and_as_a_cause() {
        use std::io::{Error, ErrorKind};
        #[derive(Debug)]
        struct Wrapped(Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "wrapped: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let direct: Box<dyn std::error::Error> = Error::from(ErrorKind::BrokenPipe).into();
        assert!(is_broken_pipe(&*direct));
        let wrapped: Box<dyn std::error::Error> =
            Box::new(Wrapped(Error::from(ErrorKind::BrokenPipe)));
        assert!(is_broken_pipe(&*wrapped));
        let other: Box<dyn std::error::Error> = Error::from(ErrorKind::NotFound).into();
        assert!(!is_broken_pipe(&*other));
        let text: Box<dyn std::error::Error> = "Broken pipe".into();
        assert!(!is_broken_pipe(&*text));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("soon").is_err());
        assert!(duration("5h").is_err());
        assert!(duration("-1s").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("4k"), Ok(4096));
        assert_eq!(size("4K"), Ok(4096));
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("1M"), Ok(1 << 20));
        assert_eq!(size("2MiB"), Ok(2 << 20));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert!(size("").is_err());
        assert!(size("k").is_err());
        assert!(size("4x").is_err());
        assert!(size("-4k").is_err());
        assert!(size("99999999999999999999G").is_err());
    }
}
