//! The exporting side: one worker per local share.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use membus::memaud::AudioReader;
use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::Reader;
use membus::mempkt::PacketReader;
use membus::memvid::VideoReader;
use membus::{Next, QueueOptions, Received, Start};
use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;
use zenoh::query::{Query, Queryable};
use zenoh::Wait;

use crate::config::ShareType;
use crate::stats::{ShareStats, State};
use crate::wire::{
    self, AudioBuffer, AudioInfo, Header, Info, Kind, KvBatch, PacketInfo, PacketRecord, VideoInfo,
    HEADER_LEN,
};
use crate::{random_id, BridgeError, Ctx, Result};

/// How long a worker blocks on its local share before it looks at queries and the stop flag.
const POLL: Duration = Duration::from_millis(50);

pub(crate) fn run(ctx: Ctx, name: String, kind: Option<ShareType>) {
    let mut last_err = String::new();
    while !ctx.stopped() {
        let kind = match kind.map(Ok).unwrap_or_else(|| detect(&name)) {
            Ok(k) => k,
            Err(e) => {
                let e = e.to_string();
                if e != last_err {
                    ctx.say(format!("export {name}: waiting for the share: {e}"));
                    last_err = e.clone();
                }
                ctx.stats.set_error(e);
                ctx.stats.set_state(State::Waiting);
                ctx.nap(Duration::from_millis(250));
                continue;
            }
        };
        ctx.stats.set_kind(kind.as_str());
        let r = match kind {
            ShareType::Msg => export_msg(&ctx, &name),
            ShareType::Cmd => export_cmd(&ctx, &name),
            ShareType::Kv => export_kv(&ctx, &name),
            ShareType::Vid => export_vid(&ctx, &name),
            ShareType::Aud => export_aud(&ctx, &name),
            ShareType::Pkt => export_pkt(&ctx, &name),
        };
        match r {
            Ok(()) => break,
            Err(e) => {
                let e = e.to_string();
                if e != last_err {
                    ctx.say(format!("export {} {name}: {e} (retrying)", kind.as_str()));
                    last_err = e.clone();
                }
                ctx.stats.set_error(e);
                ctx.stats.set_state(State::Waiting);
                ctx.nap(Duration::from_millis(500));
            }
        }
    }
    ctx.stats.set_state(State::Stopped);
}

/// Recognises a share that was exported without a type.
fn detect(name: &str) -> membus::Result<ShareType> {
    if VideoReader::attach(name).is_ok() {
        return Ok(ShareType::Vid);
    }
    if AudioReader::attach(name).is_ok() {
        return Ok(ShareType::Aud);
    }
    if PacketReader::attach(name).is_ok() {
        return Ok(ShareType::Pkt);
    }
    if MemKv::attach(name).is_ok() {
        return Ok(ShareType::Kv);
    }
    Reader::attach(name).map(|_| ShareType::Msg)
}

fn net_err(what: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Net(format!("{what}: {e}"))
}

/// What every export declares: the description queryable, the liveliness token and the
/// data publisher (blocking congestion control: never dropped silently).
struct Endpoint {
    /// The local share, its type and the session id of the object this export mapped.
    share: (String, ShareType, i64),
    last_check: std::time::Instant,
    decls: Decls,
    /// The [`Net`](crate::Net) generation `decls` were made on.
    gen: u64,
    session: u64,
    seq: u64,
}

/// The Zenoh declarations of an export, re-made when the session is replaced.
struct Decls {
    queries: Queryable<FifoChannelHandler<Query>>,
    _token: LivelinessToken,
    publisher: Publisher<'static>,
}

impl Decls {
    fn declare(ctx: &Ctx) -> Result<Decls> {
        let session = ctx.session();
        let queries = session
            .declare_queryable(ctx.keys.info.clone())
            .with(FifoChannel::new(64))
            .wait()
            .map_err(|e| net_err("declaring the description queryable", e))?;
        let publisher = session
            .declare_publisher(ctx.keys.data.clone())
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| net_err("declaring the publisher", e))?;
        let token = session
            .liveliness()
            .declare_token(ctx.keys.alive.clone())
            .wait()
            .map_err(|e| net_err("declaring the liveliness token", e))?;
        Ok(Decls {
            queries,
            _token: token,
            publisher,
        })
    }
}

impl Endpoint {
    fn declare(ctx: &Ctx, name: &str, kind: ShareType, ours: i64) -> Result<Endpoint> {
        let gen = ctx.net.generation();
        Ok(Endpoint {
            share: (name.to_owned(), kind, ours),
            last_check: std::time::Instant::now(),
            decls: Decls::declare(ctx)?,
            gen,
            session: random_id(),
            seq: 0,
        })
    }

    /// Declares everything again on a replaced session (same bridge session and sequence:
    /// importers see no new session, and count what went missing meanwhile).
    fn refresh(&mut self, ctx: &Ctx) -> Result<()> {
        let gen = ctx.net.generation();
        if gen != self.gen {
            self.decls = Decls::declare(ctx)?;
            self.gen = gen;
        }
        Ok(())
    }

    /// A frame buffer holding the header of the next item (seq already advanced).
    fn start_item(&mut self, kind: Kind, skipped: u64, body_len: usize) -> Vec<u8> {
        self.seq += 1 + skipped;
        let mut out = Vec::with_capacity(HEADER_LEN + body_len);
        Header {
            kind,
            session: self.session,
            seq: self.seq,
            skipped,
            stamp: wire::now_ns(),
        }
        .write(&mut out);
        out
    }

    fn put(&mut self, ctx: &Ctx, frame: Vec<u8>) -> Result<()> {
        self.refresh(ctx)?;
        self.decls
            .publisher
            .put(frame)
            .wait()
            .map_err(|e| net_err("publishing", e))?;
        ShareStats::add(&ctx.stats.sent, 1);
        Ok(())
    }

    /// Answers pending description queries with `describe()`'s body. About once a second
    /// it also checks that the name still refers to the object being exported: a share
    /// removed or re-created by its owner ends this export (the worker then attaches to
    /// the new one, under a new bridge session).
    fn answer(&mut self, ctx: &Ctx, describe: impl Fn() -> Result<Info>) -> Result<()> {
        self.refresh(ctx)?;
        if self.last_check.elapsed() >= Duration::from_secs(1) {
            self.last_check = std::time::Instant::now();
            let (name, kind, ours) = &self.share;
            match current_session(name, *kind) {
                Ok(id) if id == *ours => {}
                Ok(_) => {
                    return Err(BridgeError::Config(format!(
                        "local share {name} was re-created; re-attaching"
                    )))
                }
                Err(e) if e.kind() == membus::ErrorKind::OpenFailed => {
                    return Err(BridgeError::Config(format!(
                        "local share {name} was removed; waiting for it"
                    )))
                }
                // Anything else (a share being created right now): look again later.
                Err(_) => {}
            }
        }
        while let Ok(Some(q)) = self.decls.queries.try_recv() {
            let mut out = Vec::new();
            Header {
                kind: Kind::Info,
                session: self.session,
                seq: self.seq,
                skipped: 0,
                stamp: wire::now_ns(),
            }
            .write(&mut out);
            // `?probe`: an importer's stall watchdog wants only how far this export has
            // published (the header), not the description (a memkv's is a full snapshot).
            if q.parameters().get(wire::PROBE_PARAM).is_none() {
                describe()?.write(&mut out);
            }
            if let Err(e) = q.reply(ctx.keys.info.clone(), out).wait() {
                ctx.stats
                    .set_error(format!("answering a description query: {e}"));
            }
        }
        Ok(())
    }
}

/// The session id of the object `name` refers to now.
fn current_session(name: &str, kind: ShareType) -> membus::Result<i64> {
    Ok(match kind {
        ShareType::Msg => Reader::attach(name)?.session_id(),
        ShareType::Cmd => {
            MemCmd::attach_with(name, &QueueOptions::new().register_reader(false))?.session_id()
        }
        ShareType::Kv => MemKv::attach(name)?.session_id(),
        ShareType::Vid => VideoReader::attach(name)?.session_id(),
        ShareType::Aud => AudioReader::attach(name)?.session_id(),
        ShareType::Pkt => PacketReader::attach(name)?.session_id(),
    })
}

fn announce(ctx: &Ctx, name: &str, kind: &str, detail: String) {
    ctx.stats.set_state(State::Live);
    ctx.say(format!(
        "export {kind} {name} as {} ({detail})",
        ctx.keys.base
    ));
}

fn export_msg(ctx: &Ctx, name: &str) -> Result<()> {
    let mut reader = Reader::attach_with(name, &QueueOptions::new().start(Start::Latest))?;
    let capacity = reader.capacity() as u64;
    let mut ep = Endpoint::declare(ctx, name, ShareType::Msg, reader.session_id())?;
    announce(ctx, name, "memmsg", format!("capacity {capacity}"));
    let describe = || Ok(Info::Msg { capacity });
    let mut buf = Vec::new();
    let mut since_answer = 0u32;
    while !ctx.stopped() {
        match reader.read_into(&mut buf, POLL)? {
            Received::Message { .. } => {
                let mut out = ep.start_item(Kind::Msg, 0, buf.len());
                out.extend_from_slice(&buf);
                ep.put(ctx, out)?;
                since_answer += 1;
                if since_answer >= 256 {
                    since_answer = 0;
                    ep.answer(ctx, describe)?;
                }
            }
            Received::Overrun { lost } => {
                // Lost at the source: the local writer overtook this reader. The gap in
                // the bridge's sequence makes every importer count them too.
                ep.seq += lost;
                ShareStats::add(&ctx.stats.lost, lost);
            }
            Received::Timeout => ep.answer(ctx, describe)?,
        }
    }
    Ok(())
}

fn export_cmd(ctx: &Ctx, name: &str) -> Result<()> {
    // Not counted as a reader: this handle only writes what importers send.
    let cmd = MemCmd::attach_with(name, &QueueOptions::new().register_reader(false))?;
    let capacity = cmd.capacity() as u64;
    let max = cmd.max_message_len();
    let mut ep = Endpoint::declare(ctx, name, ShareType::Cmd, cmd.session_id())?;
    let subscribe = || {
        ctx.session()
            .declare_subscriber(ctx.keys.cmd.clone())
            .with(FifoChannel::new(4096))
            .wait()
            .map_err(|e| net_err("subscribing to commands", e))
    };
    let mut sub = subscribe()?;
    announce(
        ctx,
        name,
        "memcmd",
        format!("capacity {capacity}, commands flow here"),
    );
    let describe = || Ok(Info::Cmd { capacity });
    // Last sequence delivered per sending importer: exactly once, in order per sender.
    let mut last: HashMap<u64, u64> = HashMap::new();
    while !ctx.stopped() {
        let gen = ep.gen;
        ep.answer(ctx, describe)?;
        if ep.gen != gen {
            // The session was replaced (see `Net`): commands arrive on the new one.
            sub = subscribe()?;
        }
        let sample = match sub.recv_timeout(POLL) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => return Err(net_err("command subscriber", e)),
        };
        let bytes = sample.payload().to_bytes();
        let (h, body) = match Header::parse(&bytes) {
            Ok((h, b)) if h.kind == Kind::Cmd => (h, b),
            Ok((h, _)) => {
                malformed(ctx, format!("{:?} frame on the command key", h.kind));
                continue;
            }
            Err(e) => {
                malformed(ctx, format!("command frame: {e}"));
                continue;
            }
        };
        if body.is_empty() || body.len() > max {
            malformed(
                ctx,
                format!("command of {} bytes (1..={max} fit)", body.len()),
            );
            continue;
        }
        let prev = last.get(&h.session).copied().unwrap_or(0);
        if h.seq <= prev {
            ShareStats::add(&ctx.stats.duplicates, 1);
            continue;
        }
        if prev != 0 && h.seq > prev + 1 {
            ShareStats::add(&ctx.stats.lost, h.seq - prev - 1);
        }
        cmd.write(body)?;
        last.insert(h.session, h.seq);
        ShareStats::add(&ctx.stats.received, 1);
        ctx.stats.lag_ns.store(
            wire::now_ns().saturating_sub(h.stamp),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    Ok(())
}

pub(crate) fn malformed(ctx: &Ctx, what: String) {
    ShareStats::add(&ctx.stats.malformed, 1);
    ctx.stats.set_error(format!("malformed: {what}"));
}

fn export_kv(ctx: &Ctx, name: &str) -> Result<()> {
    let kv = MemKv::attach(name)?;
    let names = kv.slot_names()?;
    let max_name = kv.max_name_len() as u32;
    let max_value = kv.max_value_len() as u32;
    let mut ep = Endpoint::declare(ctx, name, ShareType::Kv, kv.session_id())?;
    announce(
        ctx,
        name,
        "memkv",
        format!(
            "{} slots, names {max_name}, values {max_value}",
            names.len()
        ),
    );
    let describe = || {
        let snap = kv.snapshot()?;
        Ok(Info::Kv {
            max_name,
            max_value,
            names: names.clone(),
            epoch: snap.epoch,
            values: snap.values,
        })
    };
    let mut since = kv.epoch();
    while !ctx.stopped() {
        ep.answer(ctx, describe)?;
        if kv.wait_for_change(since, POLL)?.is_none() {
            continue;
        }
        let ch = kv.changed_since(since)?;
        // Group by batch. A batch at or below the epoch read first is complete (every one
        // of its slots not overwritten since shows it); later ones wait for the next pass,
        // which reports them again.
        let mut batches: BTreeMap<i64, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        for c in ch.changes {
            if c.epoch > since && c.epoch <= ch.epoch {
                batches.entry(c.epoch).or_default().push((c.index, c.value));
            }
        }
        for (epoch, values) in batches {
            let b = KvBatch { epoch, values };
            let mut out = ep.start_item(Kind::KvBatch, 0, 64);
            b.write(&mut out);
            ep.put(ctx, out)?;
        }
        since = ch.epoch;
    }
    Ok(())
}

fn export_vid(ctx: &Ctx, name: &str) -> Result<()> {
    let mut reader = VideoReader::attach(name)?;
    let l = reader.layout().clone();
    let info = VideoInfo {
        width: l.video.width as u32,
        height: l.video.height as u32,
        format: l.video.format.value(),
        fps: l.video.fps.clamp(0, i64::from(u32::MAX)) as u32,
        bufs: l.frames.bufs as u32,
        scanwidth: l.video.scanwidth as u64,
        align: l.frames.align as u64,
        frameextra: l.frames.frameextra as u64,
        fourcc: reader.fourcc(),
        guid: reader.guid(),
        meta: reader.meta()?,
    };
    let payload_len = l.video.scanwidth * l.video.height;
    let mut ep = Endpoint::declare(ctx, name, ShareType::Vid, reader.session_id())?;
    announce(
        ctx,
        name,
        "memvid",
        format!(
            "{}x{} format {} bufs {}",
            info.width, info.height, info.format, info.bufs
        ),
    );
    let describe = || Ok(Info::Video(info.clone()));
    // The newest complete frame read so far and how many frames were passed over since the
    // last one sent.
    let mut pending: Option<Vec<u8>> = None;
    let mut skipped = 0u64;
    while !ctx.stopped() {
        ep.answer(ctx, describe)?;
        if pending.is_none() && !reader.wait_ready(POLL) {
            continue;
        }
        // Drain: keep only the newest frame. Under a slow link the publisher blocks; the
        // frames the source wrote meanwhile are passed over here and counted.
        loop {
            match reader.next()? {
                Next::Frame(f) => {
                    let mut out = Vec::with_capacity(HEADER_LEN + 40 + payload_len + 64);
                    // Header placeholder: filled once we know how many were skipped.
                    out.resize(HEADER_LEN, 0);
                    out.extend_from_slice(&f.vpts().to_le_bytes());
                    out.extend_from_slice(&f.apts().to_le_bytes());
                    out.extend_from_slice(&f.seq().to_le_bytes());
                    wire::put_blob(&mut out, &f.user_data());
                    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
                    let at = out.len();
                    out.resize(at + payload_len, 0);
                    f.copy_to(&mut out[at..])?;
                    if !f.is_intact() {
                        // Overwritten while copied: not a frame anyone will see.
                        skipped += 1;
                        continue;
                    }
                    if pending.replace(out).is_some() {
                        skipped += 1;
                    }
                }
                Next::Overrun { lost } => skipped += lost,
                Next::Empty => break,
            }
        }
        if let Some(mut out) = pending.take() {
            let head = ep.start_item(Kind::Video, skipped, 0);
            out[..HEADER_LEN].copy_from_slice(&head);
            ShareStats::add(&ctx.stats.skipped, skipped);
            skipped = 0;
            ep.put(ctx, out)?;
        }
    }
    Ok(())
}

fn export_aud(ctx: &Ctx, name: &str) -> Result<()> {
    let mut reader = AudioReader::attach(name)?;
    let l = reader.layout().clone();
    let info = AudioInfo {
        channels: l.channels as u32,
        format: l.format.value(),
        sample_rate: l.sample_rate.clamp(0, i64::from(u32::MAX)) as u32,
        fps: l.fps.clamp(0, i64::from(u32::MAX)) as u32,
        bufs: l.frames.bufs as u32,
        align: l.frames.align as u64,
        frameextra: l.frames.frameextra as u64,
        payload: l.frames.payload as u64,
        fourcc: reader.fourcc(),
        guid: reader.guid(),
        meta: reader.meta()?,
    };
    let mut ep = Endpoint::declare(ctx, name, ShareType::Aud, reader.session_id())?;
    announce(
        ctx,
        name,
        "memaud",
        format!(
            "{} ch format {} at {} Hz, {} bytes per buffer",
            info.channels, info.format, info.sample_rate, info.payload
        ),
    );
    let describe = || Ok(Info::Audio(info.clone()));
    let mut pcm = vec![0u8; l.frames.payload];
    while !ctx.stopped() {
        ep.answer(ctx, describe)?;
        if !reader.wait_ready(POLL) {
            continue;
        }
        // Audio is never skipped on purpose: every buffer is sent (Block), in order.
        loop {
            let (pts, src_seq, user) = match reader.next()? {
                Next::Frame(b) => {
                    b.copy_to(&mut pcm)?;
                    let meta = (b.pts(), b.seq(), b.user_data());
                    if !b.is_intact() {
                        // Overwritten while copied: lost at the source.
                        ep.seq += 1;
                        ShareStats::add(&ctx.stats.lost, 1);
                        continue;
                    }
                    meta
                }
                Next::Overrun { lost } => {
                    ep.seq += lost;
                    ShareStats::add(&ctx.stats.lost, lost);
                    continue;
                }
                Next::Empty => break,
            };
            let mut out = ep.start_item(Kind::Audio, 0, pcm.len() + 64);
            AudioBuffer {
                pts,
                src_seq,
                user: &user,
                payload: &pcm,
            }
            .write(&mut out);
            ep.put(ctx, out)?;
        }
    }
    Ok(())
}

fn export_pkt(ctx: &Ctx, name: &str) -> Result<()> {
    let mut reader = PacketReader::attach(name)?;
    let l = *reader.layout();
    let info = PacketInfo {
        bufs: l.bufs as u32,
        arenasz: l.arenasz as u64,
        maxrec: l.maxrec as u64,
        align: l.align as u64,
        fourcc: reader.fourcc(),
        guid: reader.guid(),
        meta: reader.meta()?,
    };
    let mut ep = Endpoint::declare(ctx, name, ShareType::Pkt, reader.session_id())?;
    announce(
        ctx,
        name,
        "mempkt",
        format!(
            "{} descriptors, arena {}, records up to {}",
            info.bufs, info.arenasz, info.maxrec
        ),
    );
    let describe = || Ok(Info::Packet(info.clone()));
    let (mut payload, mut meta) = (Vec::new(), Vec::new());
    while !ctx.stopped() {
        ep.answer(ctx, describe)?;
        if !reader.wait_ready(POLL) {
            continue;
        }
        loop {
            match reader.next_into(&mut payload, &mut meta)? {
                Next::Frame(r) => {
                    let mut out = ep.start_item(Kind::Packet, 0, payload.len() + meta.len() + 48);
                    PacketRecord {
                        kind: r.kind.value(),
                        track: r.track,
                        pts: r.pts,
                        meta: &meta,
                        payload: &payload,
                    }
                    .write(&mut out);
                    ep.put(ctx, out)?;
                }
                Next::Overrun { lost } => {
                    ep.seq += lost;
                    ShareStats::add(&ctx.stats.lost, lost);
                }
                Next::Empty => break,
            }
        }
    }
    Ok(())
}
