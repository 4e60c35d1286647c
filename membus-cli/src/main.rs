//! `membus`: the membus command-line tool.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect and benchmark membus / libmembus shared-memory shares.
#[derive(Parser)]
#[command(name = "membus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark: libmembus's own cases with the same workloads, plus
    /// cross-process latency and the bare shared-memory floor.
    ///
    /// Example: `membus bench --duration-ms 1000 --json bench.json`
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench {
            duration_ms,
            json,
            only,
        } => bench::run(duration_ms, json.as_deref(), only.as_deref()),
        Cmd::BenchPeer { role, names } => bench::peer(&role, &names),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("membus: {e}");
            ExitCode::FAILURE
        }
    }
}
