//! The inspection subcommands: ls, info, tail, send, rm.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received, ShareName, Start};
use serde_json::json;

use crate::probe::{probe, Kind, Probe};
use crate::procs::{users_by_share, User};

type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Writes one message to whichever share type `send` found.
type SendFn = Box<dyn Fn(&[u8]) -> membus::Result<u64>>;

/// Whether a share is in use, as far as membus can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A live membus creator holds the owner lock.
    Live,
    /// No live owner lock, but a process maps it or holds it open.
    InUse,
    /// Neither.
    Stale,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::InUse => "in use",
            State::Stale => "stale",
        }
    }
}

fn state_of(name: &str, users: &[User]) -> State {
    if membus::has_live_owner(name).unwrap_or(false) {
        State::Live
    } else if !users.is_empty() {
        State::InUse
    } else {
        State::Stale
    }
}

/// Normalises a user-given name (adds the leading `/`, validates).
fn share_name(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(ShareName::new(name)?.as_str().to_string())
}

/// Every object in /dev/shm, probed, sorted by name.
fn all_probes() -> Vec<Probe> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for e in dir.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Some(n) = e.file_name().to_str().map(|s| format!("/{s}")) else {
                continue;
            };
            if let Ok(p) = probe(&n) {
                out.push(p);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn counters_text(p: &Probe) -> String {
    p.counters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn users_text(users: &[User]) -> String {
    users
        .iter()
        .map(|u| format!("{}({})", u.pid, u.comm))
        .collect::<Vec<_>>()
        .join(",")
}

fn entry_json(p: &Probe, state: State, users: &[User]) -> serde_json::Value {
    let mut v = p.to_json();
    v["state"] = json!(state.as_str());
    v["users"] = json!(users
        .iter()
        .map(|u| json!({"pid": u.pid, "comm": u.comm}))
        .collect::<Vec<_>>());
    v["counters"] = json!(p
        .counters
        .iter()
        .map(|(k, c)| (k.to_string(), json!(c)))
        .collect::<serde_json::Map<_, _>>());
    v
}

pub fn ls(all: bool, as_json: bool) -> CmdResult {
    let users = users_by_share();
    let none = Vec::new();
    let rows: Vec<(Probe, State, &Vec<User>)> = all_probes()
        .into_iter()
        .filter(|p| all || p.kind != Kind::Unknown)
        .map(|p| {
            let u = users.get(&p.name).unwrap_or(&none);
            let s = state_of(&p.name, u);
            (p, s, u)
        })
        .collect();
    if as_json {
        let v: Vec<_> = rows.iter().map(|(p, s, u)| entry_json(p, *s, u)).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|(p, s, u)| {
            [
                p.name.clone(),
                p.type_label(),
                p.size.to_string(),
                s.as_str().to_string(),
                p.session_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                counters_text(p),
                users_text(u),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "TYPE", "SIZE", "STATE", "SESSION", "COUNTERS", "USERS",
        ],
        &table,
    );
    Ok(())
}

fn print_table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) {
    let mut w = [0usize; N];
    for (i, h) in head.iter().enumerate() {
        w[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                let _ = write!(s, "{:<width$}  ", c, width = w[i]);
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn probe_existing(name: &str) -> Result<Probe, Box<dyn std::error::Error>> {
    probe(name).map_err(|e| format!("share {name}: {e}").into())
}

pub fn info(name: &str, as_json: bool) -> CmdResult {
    let name = share_name(name)?;
    let p = probe_existing(&name)?;
    let users = users_by_share().remove(&name).unwrap_or_default();
    let state = state_of(&name, &users);
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entry_json(&p, state, &users))?
        );
        return Ok(());
    }
    let mut rows: Vec<(String, String)> = vec![
        ("name".into(), p.name.clone()),
        ("type".into(), p.type_label()),
        ("size".into(), p.size.to_string()),
        ("state".into(), state.as_str().into()),
        (
            "users".into(),
            if users.is_empty() {
                "-".into()
            } else {
                users_text(&users)
            },
        ),
    ];
    for (k, v) in &p.fields {
        rows.push((k.to_string(), v.to_string().trim_matches('"').to_string()));
    }
    if let Some(problem) = &p.problem {
        rows.push(("problem".into(), problem.clone()));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    Ok(())
}

/// A payload as one line: as is when it is printable UTF-8, escaped otherwise.
pub fn render(payload: &[u8], hex: bool) -> String {
    if hex {
        return payload.iter().map(|b| format!("{b:02x}")).collect();
    }
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\t') => s.to_string(),
        _ => payload.escape_ascii().to_string(),
    }
}

enum Tailed {
    Msg(Reader),
    Cmd(MemCmd),
    Kv(MemKv, i64),
}

pub fn tail(
    name: &str,
    from_start: bool,
    count: Option<u64>,
    timeout: Option<Duration>,
    hex: bool,
) -> CmdResult {
    let name = share_name(name)?;
    let p = probe_existing(&name)?;
    let opts = QueueOptions::new()
        .start(if from_start {
            Start::Oldest
        } else {
            Start::Latest
        })
        .register_reader(false);
    let mut src = match p.kind {
        Kind::MemMsg => Tailed::Msg(Reader::attach_with(name.as_str(), &opts)?),
        Kind::MemCmd => Tailed::Cmd(MemCmd::attach_with(name.as_str(), &opts)?),
        Kind::MemKv => {
            let kv = MemKv::attach(name.as_str())?;
            let since = if from_start { 0 } else { kv.epoch() };
            Tailed::Kv(kv, since)
        }
        Kind::MemVid | Kind::MemAud | Kind::MemPkt => {
            let deadline = timeout.map(|t| Instant::now() + t);
            let seen = crate::media_tail::follow(&name, p.kind, from_start, count, deadline)?;
            return match count {
                Some(c) if seen < c => {
                    Err(format!("share {name}: timed out after {seen} of {c} items").into())
                }
                _ => Ok(()),
            };
        }
        other => {
            return Err(
                format!("share {name}: tail cannot follow {} shares", other.as_str()).into(),
            )
        }
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut seen = 0u64;
    let mut buf = Vec::new();
    let mut out = std::io::stdout().lock();
    while count.is_none_or(|c| seen < c) {
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left
            }
            None => Duration::from_secs(1),
        };
        let got = match &mut src {
            Tailed::Msg(r) => r.read_into(&mut buf, wait)?,
            Tailed::Cmd(c) => c.read_into(&mut buf, wait)?,
            Tailed::Kv(kv, since) => {
                if kv.wait_for_change(*since, wait)?.is_some() {
                    let changes = kv.changed_since(*since)?;
                    for ch in &changes.changes {
                        let slot = kv.slot_name(ch.index)?;
                        writeln!(
                            out,
                            "epoch {}: {}={}",
                            ch.epoch,
                            render(slot.as_bytes(), false),
                            render(&ch.value, hex)
                        )?;
                        seen += 1;
                    }
                    out.flush()?;
                    *since = changes.epoch;
                }
                continue;
            }
        };
        match got {
            Received::Message { .. } => {
                writeln!(out, "{}", render(&buf, hex))?;
                out.flush()?;
                seen += 1;
            }
            Received::Overrun { lost } => {
                writeln!(out, "overrun: {lost} lost")?;
                out.flush()?;
            }
            Received::Timeout => {}
        }
    }
    if let Some(c) = count {
        if seen < c {
            return Err(format!("share {name}: timed out after {seen} of {c} items").into());
        }
    }
    Ok(())
}

pub fn send(name: &str, messages: &[String], create: Option<usize>, linger: Duration) -> CmdResult {
    let name = share_name(name)?;
    let lines: Vec<Vec<u8>> = if messages.is_empty() {
        // Lines as bytes: a message need not be UTF-8.
        let mut v = Vec::new();
        for line in std::io::stdin().lock().split(b'\n') {
            let mut line = line?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                v.push(line);
            }
        }
        v
    } else {
        messages.iter().map(|m| m.clone().into_bytes()).collect()
    };
    let exists = std::path::Path::new(&crate::probe::path_of(&name)).exists();
    let write: SendFn = if !exists {
        let Some(size) = create else {
            return Err(format!(
                "share {name}: no such share (use --create SIZE to make a memmsg)"
            )
            .into());
        };
        let w = Writer::create(name.as_str(), size)?;
        Box::new(move |m| w.write(m))
    } else {
        match probe_existing(&name)?.kind {
            Kind::MemCmd => {
                let c = MemCmd::attach_with(
                    name.as_str(),
                    &QueueOptions::new().register_reader(false),
                )?;
                Box::new(move |m| c.write(m))
            }
            Kind::MemMsg => {
                let w = Writer::attach(name.as_str())?;
                Box::new(move |m| w.write(m))
            }
            other => {
                return Err(
                    format!("share {name}: cannot send to a {} share", other.as_str()).into(),
                )
            }
        }
    };
    for m in &lines {
        write(m)?;
    }
    if !exists && !linger.is_zero() {
        std::thread::sleep(linger);
    }
    drop(write);
    Ok(())
}

fn open_kv(name: &str) -> Result<(String, MemKv), Box<dyn std::error::Error>> {
    let name = share_name(name)?;
    let kind = probe_existing(&name)?.kind;
    if kind != Kind::MemKv {
        return Err(format!("share {name}: is a {} share, not a memkv", kind.as_str()).into());
    }
    let kv = MemKv::attach(name.as_str())?;
    Ok((name, kv))
}

pub fn kv_get(name: &str, key: &str) -> CmdResult {
    let (name, kv) = open_kv(name)?;
    let v = kv.get_by_name(key)?;
    if v.stale {
        eprintln!("membus: share {name}: slot {key:?} was being written during every read attempt (a writer may be stuck)");
    }
    println!("{}", render(&v.value, false));
    Ok(())
}

pub fn kv_set(name: &str, pairs: &[String]) -> CmdResult {
    let (_, kv) = open_kv(name)?;
    if pairs.len() % 2 != 0 {
        return Err("kv set takes KEY VALUE pairs".into());
    }
    let batch: Vec<(&str, &[u8])> = pairs
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_bytes()))
        .collect();
    let epoch = kv.set_many_by_name(&batch)?;
    println!("epoch {epoch}");
    Ok(())
}

pub fn kv_dump(name: &str, as_json: bool) -> CmdResult {
    let (_, kv) = open_kv(name)?;
    let snap = kv.snapshot()?;
    let names = kv.slot_names()?;
    if as_json {
        let slots: Vec<_> = names
            .iter()
            .zip(&snap.values)
            .enumerate()
            .map(|(i, (n, v))| json!({"index": i, "name": n, "value": String::from_utf8_lossy(v)}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"epoch": snap.epoch, "slots": slots}))?
        );
        return Ok(());
    }
    for (n, v) in names.iter().zip(&snap.values) {
        println!("{}={}", render(n.as_bytes(), false), render(v, false));
    }
    Ok(())
}

pub fn rm(names: &[String], stale: bool, force: bool) -> CmdResult {
    let users = users_by_share();
    let none = Vec::new();
    let mut failures = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    if stale {
        let filter = names.first().map(String::as_str).unwrap_or("");
        if names.len() > 1 {
            return Err("with --stale, give at most one text the names must contain".into());
        }
        let recognised: BTreeMap<String, Probe> = all_probes()
            .into_iter()
            .filter(|p| p.kind != Kind::Unknown && p.name.contains(filter))
            .map(|p| (p.name.clone(), p))
            .collect();
        for n in recognised.keys() {
            if state_of(n, users.get(n).unwrap_or(&none)) == State::Stale {
                targets.push(n.clone());
            }
        }
    } else {
        if names.is_empty() {
            return Err("name the shares to remove, or use --stale".into());
        }
        for n in names {
            let n = share_name(n)?;
            let s = state_of(&n, users.get(&n).unwrap_or(&none));
            if s != State::Stale && !force {
                failures.push(format!(
                    "share {n}: {} ({}); not removed without --force",
                    s.as_str(),
                    users_text(users.get(&n).unwrap_or(&none))
                ));
                continue;
            }
            targets.push(n);
        }
    }
    for n in targets {
        match membus::remove(n.as_str()) {
            Ok(true) => println!("removed {n}"),
            Ok(false) => failures.push(format!("share {n}: no such share")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\nmembus: ").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_render_as_text_or_escaped() {
        assert_eq!(render(b"pan-left", false), "pan-left");
        assert_eq!(render(b"a\tb", false), "a\tb");
        assert_eq!(render(b"a\nb", false), "a\\nb");
        assert_eq!(render(&[0xff, 0x00, b'x'], false), "\\xff\\x00x");
        assert_eq!(render(&[0xab, 0x01], true), "ab01");
        assert_eq!(render("héllo".as_bytes(), false), "héllo");
    }
}
