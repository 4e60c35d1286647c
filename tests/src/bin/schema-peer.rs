//! The Rust side of the cross-language schema tests (`membus-py/tests/test_schema.py`).
//! Usage: `membus-schema-peer ROLE [NAME ...]`. Types: `membus_tests::schema_types`.
//!
//! * `kv-json`, `msg-json`: print the schema description of `AllTypes` / `Command`.
//! * `kv-serve NAME`: create a typed `AllTypes` store holding `AllTypes::first()`, print
//!   `ready`; then for each stdin line `check` print `equal` when a snapshot equals
//!   `AllTypes::second()` (else `differs: ...`); `first` stores `first()` again and prints
//!   `stored`; end of input (or `quit`) removes the store and exits.
//! * `msg-serve NAME`: create a typed memmsg for `Command`, print `ready`; on a stdin line
//!   send `Command::all()` and print `sent`; end of input exits.
//! * `cmd-serve NAME COUNT`: create a typed memcmd for `Command`, print `ready`, receive
//!   COUNT messages (10 s each) and print them on one line as `Debug` joined by ` | `
//!   (an undecodable one as `undecodable: REASON`); then wait for end of input.

use std::io::BufRead;
use std::process::exit;
use std::time::Duration;

use membus::typed::{KvSchema, Message, Receiver, Recv, Sender};
use membus::{Kv, QueueOptions};
use membus_tests::schema_types::{AllTypes, Command};

fn fail(msg: String) -> ! {
    eprintln!("membus-schema-peer: {msg}");
    exit(1)
}

fn lines() -> impl Iterator<Item = String> {
    std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .map(|l| l.trim().to_owned())
        .take_while(|l| l != "quit")
        .collect::<Vec<_>>()
        .into_iter()
}

fn say(s: &str) {
    println!("{s}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str).unwrap_or("");
    let name = || {
        args.get(1)
            .cloned()
            .unwrap_or_else(|| fail("missing NAME".into()))
    };
    match role {
        "kv-json" => say(&AllTypes::schema_json()),
        "msg-json" => say(&Command::schema()
            .unwrap_or_else(|| fail("no schema".into()))
            .to_json()),
        "kv-serve" => {
            let kv = Kv::create(name().as_str(), &AllTypes::first())
                .unwrap_or_else(|e| fail(e.to_string()));
            say("ready");
            let stdin = std::io::stdin();
            for line in stdin.lock().lines().map_while(Result::ok) {
                match line.trim() {
                    "check" => match kv.snapshot() {
                        Ok(s) if s == AllTypes::second() => say("equal"),
                        Ok(s) => say(&format!("differs: {s:?}")),
                        Err(e) => say(&format!("differs: {e}")),
                    },
                    "first" => {
                        kv.store(&AllTypes::first())
                            .unwrap_or_else(|e| fail(e.to_string()));
                        say("stored");
                    }
                    _ => break,
                }
            }
        }
        "msg-serve" => {
            let mut tx =
                Sender::<Command>::create_memmsg(name().as_str(), 4096, &QueueOptions::new())
                    .unwrap_or_else(|e| fail(e.to_string()));
            say("ready");
            let stdin = std::io::stdin();
            let mut it = stdin.lock().lines().map_while(Result::ok);
            if it.next().is_some() {
                for m in Command::all() {
                    tx.send(&m).unwrap_or_else(|e| fail(e.to_string()));
                }
                say("sent");
                for _ in it {}
            }
        }
        "cmd-serve" => {
            let count: usize = args
                .get(2)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| fail("missing COUNT".into()));
            let mut rx =
                Receiver::<Command>::create_memcmd(name().as_str(), 4096, &QueueOptions::new())
                    .unwrap_or_else(|e| fail(e.to_string()));
            say("ready");
            let mut got = Vec::new();
            while got.len() < count {
                match rx.recv(Duration::from_secs(10)) {
                    Ok(Recv::Message { msg, .. }) => got.push(format!("{msg:?}")),
                    Ok(Recv::Undecodable { reason, .. }) => {
                        got.push(format!("undecodable: {reason}"))
                    }
                    Ok(Recv::Timeout) => got.push("timeout".into()),
                    Ok(Recv::Overrun { lost }) => got.push(format!("overrun {lost}")),
                    Err(e) => fail(e.to_string()),
                }
            }
            say(&got.join(" | "));
            for _ in lines() {}
        }
        other => fail(format!("unknown role {other:?}")),
    }
}
