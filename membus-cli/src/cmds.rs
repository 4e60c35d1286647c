//! The inspection subcommands: ls, info, tail, send, rm.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::mirror::{MirrorNote, MIRROR_SUFFIX};
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
    /// A live bridge keeps it as a mirror of a share on another host whose exporter is
    /// gone (its mirror note says so): the data is the last the exporter sent.
    StaleMirror,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::InUse => "in use",
            State::Stale => "stale",
            State::StaleMirror => "stale mirror",
        }
    }
}

fn state_of(name: &str, users: &[User]) -> State {
    if membus::has_live_owner(name).unwrap_or(false) {
        match MirrorNote::read(name) {
            Ok(Some(n)) if !n.live => State::StaleMirror,
            _ => State::Live,
        }
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

/// One line about a mirror note: its source, whether live, since when, kept by whom.
fn mirror_text(n: &MirrorNote) -> String {
    let ago = n
        .since
        .elapsed()
        .map(|d| format!("{} s ago", d.as_secs()))
        .unwrap_or_else(|_| "just now".into());
    format!(
        "of {} (exporter {} since {ago}; kept by pid {})",
        n.source,
        if n.live { "live" } else { "gone" },
        n.pid
    )
}

fn entry_json(p: &Probe, state: State, users: &[User]) -> serde_json::Value {
    let mut v = p.to_json();
    v["state"] = json!(state.as_str());
    if let Ok(Some(n)) = MirrorNote::read(p.name.as_str()) {
        let since = n
            .since
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        v["mirror"] = json!({"source": n.source, "live": n.live, "since": since, "pid": n.pid});
    }
    v["users"] = json!(users
        .iter()
        .map(|u| json!({"pid": u.pid, "comm": u.comm}))
        .collect::<Vec<_>>());
    let typed = crate::schema_cmds::label(&p.name);
    v["typed"] = json!(typed.is_some());
    v["type_name"] = json!(typed.and_then(|(_, t)| t));
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
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|(p, s, u)| {
            [
                p.name.clone(),
                match crate::schema_cmds::label(&p.name) {
                    Some((_, Some(t))) => format!("{} [{t}]", p.type_label()),
                    Some((_, None)) => format!("{} [typed]", p.type_label()),
                    None => p.type_label(),
                },
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
    )?;
    Ok(())
}

/// Prints `rows` under `head`, each column as wide as its widest cell.
///
/// # Errors
/// A failed write to standard output (closed by its reader, for one).
pub(crate) fn print_table<const N: usize>(
    head: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
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
        outln!("{}", s.trim_end())
    };
    line(head.to_vec())?;
    for r in rows {
        line(r.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// The one text for a share that does not exist.
fn no_such_share(name: &str) -> String {
    format!("share {name}: no such share (`membus ls` lists the shares)")
}

/// [`no_such_share`] with a command-specific hint.
fn no_such_share_hint(name: &str, hint: &str) -> String {
    format!("share {name}: no such share (`membus ls` lists the shares; {hint})")
}

/// "a memkv share", or "an object of no known share type".
fn a_share_of(kind: Kind) -> String {
    match kind {
        Kind::Unknown => "an object of no known share type".into(),
        k => format!("a {} share", k.as_str()),
    }
}

fn probe_existing(name: &str) -> Result<Probe, Box<dyn std::error::Error>> {
    probe(name).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            no_such_share(name).into()
        } else {
            format!("share {name}: {e}").into()
        }
    })
}

pub fn info(name: &str, as_json: bool) -> CmdResult {
    let name = share_name(name)?;
    let p = probe_existing(&name)?;
    let users = users_by_share().remove(&name).unwrap_or_default();
    let state = state_of(&name, &users);
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&entry_json(&p, state, &users))?
        )?;
        return Ok(());
    }
    let mut rows: Vec<(String, String)> = vec![
        ("name".into(), p.name.clone()),
        ("type".into(), p.type_label()),
        ("size".into(), p.size.to_string()),
        ("state".into(), state.as_str().into()),
        (
            "typed".into(),
            crate::schema_cmds::label(&name).map_or_else(|| "no".to_owned(), |(l, _)| l),
        ),
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
        let v = v.to_string().trim_matches('"').to_string();
        // The media header repeats `type` and `size`: show each field once, and the header's
        // own value only where it differs (the problem line then says why).
        if let Some(row) = rows.iter().position(|(rk, _)| rk == k) {
            if *k == "size" && v != rows[row].1 {
                rows.push(("header size".into(), v));
            }
            continue;
        }
        rows.push((k.to_string(), v));
    }
    match MirrorNote::read(name.as_str()) {
        Ok(Some(n)) => rows.push(("mirror".into(), mirror_text(&n))),
        Ok(None) => {}
        Err(e) => rows.push(("mirror".into(), e.to_string())),
    }
    if let Some(problem) = &p.problem {
        rows.push(("problem".into(), problem.clone()));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        outln!("{k:<w$}  {v}")?;
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
            return Err(format!(
                "share {name}: tail cannot follow {} (it follows memmsg, memcmd, memkv, \
                 memvid, memaud and mempkt shares)",
                a_share_of(other)
            )
            .into())
        }
    };
    // A typed share's values are shown typed (unless --hex asks for bytes).
    let described = if hex {
        None
    } else {
        membus::typed::schema::read(name.as_str()).ok().flatten()
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
                        if count.is_some_and(|c| seen >= c) {
                            break;
                        }
                        let slot = kv.slot_name(ch.index)?;
                        let field = described.as_ref().and_then(|s| s.fields.get(ch.index));
                        match (field, std::str::from_utf8(&ch.value)) {
                            (Some(f), Ok(text)) => writeln!(
                                out,
                                "epoch {}: {} = {}",
                                ch.epoch,
                                f.name,
                                f.render(text)
                            )?,
                            _ => writeln!(
                                out,
                                "epoch {}: {}={}",
                                ch.epoch,
                                render(slot.as_bytes(), false),
                                render(&ch.value, hex)
                            )?,
                        }
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
                match described.as_ref().and_then(|s| s.message.as_ref()) {
                    Some(m) => match m.check(&buf) {
                        Ok(shown) => writeln!(out, "{shown}")?,
                        Err(e) => writeln!(out, "undecodable ({e}): {}", render(&buf, false))?,
                    },
                    None => writeln!(out, "{}", render(&buf, hex))?,
                }
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

/// Blocks SIGINT and SIGTERM in this thread (before any other thread exists, so in the
/// whole process), so that [`wait_for_signal`] can take them synchronously and the caller's
/// destructors (which remove a created share) run.
fn block_stop_signals() -> std::io::Result<libc::sigset_t> {
    // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t for each call; the signal numbers are valid;
    // pthread_sigmask only reads `set` and may write the null old-set pointer not at all.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(set)
}

/// Waits until one of the blocked signals in `set` arrives, or `limit` has passed. Returns
/// the signal number, if one came.
fn wait_for_signal(set: &libc::sigset_t, limit: Option<Duration>) -> Option<i32> {
    let end = limit.map(|l| Instant::now() + l);
    loop {
        let step = match end {
            Some(e) => {
                let left = e.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                left.min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        let ts = libc::timespec {
            tv_sec: step.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(step.subsec_nanos() as i32),
        };
        // SAFETY: `set` is an initialised sigset_t, `ts` a valid timespec; the siginfo
        // pointer may be null. Both outlive the call.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            return Some(sig);
        }
        // EAGAIN (this step timed out) or EINTR: check the deadline and wait again.
    }
}

pub fn send(
    name: &str,
    messages: &[String],
    create: Option<usize>,
    linger: Option<Duration>,
    raw: bool,
) -> CmdResult {
    let name = share_name(name)?;
    // Before anything else: a created share must be removed however the command ends.
    let signals = match create {
        Some(_) => Some(block_stop_signals()?),
        None => None,
    };
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
            return Err(no_such_share_hint(&name, "--create SIZE makes a memmsg").into());
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
                return Err(format!(
                    "share {name}: cannot send to {} (only to a memmsg or memcmd)",
                    a_share_of(other)
                )
                .into())
            }
        }
    };
    if exists && !raw {
        if let Some(s) = crate::schema_cmds::message_schema(&name)? {
            for m in &lines {
                crate::schema_cmds::check_message(&name, &s, m)?;
            }
        }
    }
    for m in &lines {
        write(m)?;
    }
    if let (false, Some(set)) = (exists, signals.as_ref()) {
        match linger {
            Some(l) => errln!(
                "membus: created memmsg {name}; removing it in {:.1} s (or on Ctrl-C)",
                l.as_secs_f64()
            ),
            None => errln!("membus: created memmsg {name}; keeping it until Ctrl-C or SIGTERM"),
        }
        wait_for_signal(set, linger);
    }
    drop(write);
    Ok(())
}

fn open_kv(name: &str) -> Result<(String, MemKv), Box<dyn std::error::Error>> {
    let name = share_name(name)?;
    let kind = probe_existing(&name)?.kind;
    if kind != Kind::MemKv {
        return Err(format!("share {name}: this is {}, not a memkv", a_share_of(kind)).into());
    }
    let kv = MemKv::attach(name.as_str())?;
    Ok((name, kv))
}

pub fn kv_get(name: &str, key: &str) -> CmdResult {
    let (name, kv) = open_kv(name)?;
    let v = kv.get_by_name(key)?;
    if v.stale {
        errln!("membus: share {name}: slot {key:?} was being written during every read attempt (a writer may be stuck)");
    }
    outln!("{}", render(&v.value, false))?;
    Ok(())
}

/// What a typed (membus-derived) reader accepts in a slot, as far as its current text
/// tells: the schema itself is only recorded as a fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Bool,
    Number,
    /// Text, an enum name, or an empty (None) value: nothing to check.
    Any,
}

fn shape_of(text: &str) -> Shape {
    if text == "true" || text == "false" {
        Shape::Bool
    } else if !text.is_empty() && text.parse::<f64>().is_ok() {
        Shape::Number
    } else {
        Shape::Any
    }
}

/// Refuses values a typed reader of this store could not parse, when the store is typed.
fn check_typed(name: &str, kv: &MemKv, batch: &[(&str, &[u8])]) -> CmdResult {
    let names = kv.slot_names()?;
    if !names
        .iter()
        .any(|n| n == membus::typed::kv::FINGERPRINT_SLOT)
    {
        return Ok(());
    }
    for (key, value) in batch {
        if *key == membus::typed::kv::FINGERPRINT_SLOT {
            return Err(format!(
                "share {name}: `{key}` holds the store's schema fingerprint; writing it would \
                 make typed peers refuse the store (use --raw to write it anyway)"
            )
            .into());
        }
        let Ok(current) = kv.get_by_name(key) else {
            continue; // the write itself reports the unknown key
        };
        let current = String::from_utf8_lossy(&current.value).into_owned();
        let new = String::from_utf8_lossy(value);
        // Empty is `None` for an `Option` field, which the slot's text cannot rule out.
        let ok = new.is_empty()
            || match shape_of(&current) {
                Shape::Bool => new == "true" || new == "false",
                Shape::Number => new.parse::<f64>().is_ok(),
                Shape::Any => true,
            };
        if !ok {
            let want = if shape_of(&current) == Shape::Bool {
                "true or false"
            } else {
                "a number"
            };
            return Err(format!(
                "share {name}: slot `{key}` of this typed store holds {current:?}, so its typed \
                 readers expect {want}, not {new:?}; nothing was written (use --raw to write \
                 it anyway)"
            )
            .into());
        }
    }
    Ok(())
}

pub fn kv_set(name: &str, pairs: &[String], raw: bool) -> CmdResult {
    let (share, kv) = open_kv(name)?;
    if pairs.len() % 2 != 0 {
        return Err("kv set takes KEY VALUE pairs".into());
    }
    let batch: Vec<(&str, &[u8])> = pairs
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_bytes()))
        .collect();
    if !raw {
        match crate::schema_cmds::kv_schema(&share)? {
            Some(s) => crate::schema_cmds::check_kv_set(&share, &s, &batch)?,
            None => check_typed(&share, &kv, &batch)?,
        }
    }
    let epoch = kv.set_many_by_name(&batch)?;
    outln!("epoch {epoch}")?;
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
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"epoch": snap.epoch, "slots": slots}))?
        )?;
        return Ok(());
    }
    for (n, v) in names.iter().zip(&snap.values) {
        outln!("{}={}", render(n.as_bytes(), false), render(v, false))?;
    }
    Ok(())
}

/// The owner uid of the share `name`, if it can be read.
fn owner_uid(name: &str) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(crate::probe::path_of(name))
        .ok()
        .map(|m| m.uid())
}

pub fn rm(names: &[String], stale: bool, all_users: bool, force: bool) -> CmdResult {
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
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
            .filter(|p| all_users || owner_uid(&p.name) == Some(me))
            .map(|p| (p.name.clone(), p))
            .collect();
        for n in recognised.keys() {
            if state_of(n, users.get(n).unwrap_or(&none)) == State::Stale {
                targets.push(n.clone());
            }
        }
        // Companions whose share is gone: waiter registries (`NAME.membus-wait`), which
        // membus leaves beside shares that libmembus or pymembus made; mirror notes
        // (`NAME.membus-mirror`) a bridge killed outright left; schema descriptions
        // (`NAME.membus-schema`) whose creator died between removing its share and them.
        for p in all_probes() {
            let Some(main) = p
                .name
                .strip_suffix(".membus-wait")
                .or_else(|| p.name.strip_suffix(MIRROR_SUFFIX))
                .or_else(|| p.name.strip_suffix(membus::typed::schema::SCHEMA_SUFFIX))
            else {
                continue;
            };
            if p.name.contains(filter)
                && (all_users || owner_uid(&p.name) == Some(me))
                && !std::path::Path::new(&format!("/dev/shm{main}")).exists()
            {
                targets.push(p.name.clone());
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
    // A closed standard output does not stop the removals; its error is returned after them.
    let mut print_error = None;
    for n in targets {
        match membus::remove(n.as_str()) {
            Ok(true) => {
                if let Err(e) = outln!("removed {n}") {
                    print_error.get_or_insert(e);
                }
            }
            Ok(false) => failures.push(no_such_share(&n)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    match (failures.is_empty(), print_error) {
        (false, _) => Err(failures.join("\nmembus: ").into()),
        (true, Some(e)) => Err(e.into()),
        (true, None) => Ok(()),
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
