//! The importing side: one worker per mirrored share.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membus::layout::media::AudioFormat;
use membus::layout::media::VideoFormat;
use membus::memaud::{AudioParams, AudioWriter};
use membus::memcmd::MemCmd;
use membus::memkv::{KvOptions, MemKv};
use membus::memmsg::Writer;
use membus::mempkt::{PacketParams, PacketWriter, PktKind, RecordMeta};
use membus::memvid::{VideoParams, VideoWriter};
use membus::mirror::MirrorNote;
use membus::{ErrorKind, Identity, QueueOptions, Received};
use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::pubsub::Subscriber;
use zenoh::qos::CongestionControl;
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

use crate::export::malformed;
use crate::stats::{ShareStats, State};
use crate::wire::{self, AudioBuffer, Header, Info, Kind, KvBatch, PacketRecord, VideoFrame};
use crate::{random_id, BridgeError, Ctx, Result};

const POLL: Duration = Duration::from_millis(50);

/// How often an importer that has received nothing for a while asks the exporter how far
/// it has published (the stall watchdog, see [`Worker::check_stall`]).
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Consecutive answered probes that must find items published but never delivered
/// before the importer replaces its session (the link works, the data does not flow).
const STALL_PROBES: u32 = 2;

/// How long probes must go unanswered, while the exporter's liveliness token is still
/// there, before the importer replaces its session. Longer than Zenoh's lease (10 s by
/// default), so that an ordinary silent outage is first reported the ordinary way (the
/// token vanishes when the lease expires and the mirror goes stale).
const UNANSWERED_FOR: Duration = Duration::from_secs(12);

/// After a session replacement, how long the exporter's token may stay unseen before the
/// mirror is reported stale.
const REJOIN_GRACE: Duration = Duration::from_secs(3);

/// The exporter's liveliness as last reported by Zenoh.
const ALIVE_UNKNOWN: u8 = 0;
const ALIVE_YES: u8 = 1;
const ALIVE_GONE: u8 = 2;

fn net_err(what: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Net(format!("{what}: {e}"))
}

/// The liveliness subscription that follows the exporter's token into `flag`.
fn declare_liveliness(ctx: &Ctx, flag: &Arc<AtomicU8>) -> Result<LiveSub> {
    let flag = flag.clone();
    ctx.session()
        .liveliness()
        .declare_subscriber(ctx.keys.alive.clone())
        .history(true)
        .callback(move |s: Sample| {
            let v = match s.kind() {
                SampleKind::Put => ALIVE_YES,
                SampleKind::Delete => ALIVE_GONE,
            };
            // Relaxed: a status flag polled by the worker; no data is published with it.
            flag.store(v, Ordering::Relaxed);
        })
        .wait()
        .map_err(|e| net_err("liveliness subscription", e))
}

/// A liveliness subscription with a callback.
type LiveSub = Subscriber<()>;

pub(crate) fn run(ctx: Ctx, local: String) {
    let alive = Arc::new(AtomicU8::new(ALIVE_UNKNOWN));
    let mut gen = ctx.net.generation();
    // Keeps the liveliness subscription for the worker's life.
    let mut live = match declare_liveliness(&ctx, &alive) {
        Ok(s) => s,
        Err(e) => {
            ctx.stats.set_error(e.to_string());
            ctx.stats.set_state(State::Failed);
            ctx.say(format!("import {local}: {e}"));
            return;
        }
    };
    let mut last_err = String::new();
    let mut told_waiting = false;
    while !ctx.stopped() {
        let (h, info) = match describe(&ctx) {
            Ok(Some(d)) => d,
            Ok(None) => {
                if !told_waiting {
                    ctx.say(format!(
                        "import {local}: waiting for the exporter of {}",
                        ctx.keys.base
                    ));
                    told_waiting = true;
                }
                ctx.nap(Duration::from_millis(300));
                continue;
            }
            Err(e) => {
                report_err(&ctx, &local, &mut last_err, e);
                ctx.nap(Duration::from_millis(500));
                continue;
            }
        };
        ctx.stats.set_kind(info.type_name());
        let mut w = Worker {
            ctx: &ctx,
            local: &local,
            alive: &alive,
            live: &mut live,
            gen: &mut gen,
            cur_session: 0,
            expected: 0,
            was_stale: false,
            snapshot_session: 0,
            rejected_session: 0,
            info: info.clone(),
            sub_capacity: 0,
            last_data: Instant::now(),
            last_probe: Instant::now(),
            suspect: 0,
            unanswered_since: None,
            restarted_at: None,
            note_kept: false,
        };
        let r = match info {
            Info::Msg { capacity } => w.msg(capacity),
            Info::Cmd { capacity } => w.cmd(capacity),
            Info::Kv { .. } => w.kv(h, info),
            Info::Video(v) => w.vid(v),
            Info::Audio(a) => w.aud(a),
            Info::Packet(p) => w.pkt(p),
        };
        match r {
            Ok(()) => break,
            Err(e) => {
                report_err(&ctx, &local, &mut last_err, e);
                ctx.stats.set_state(State::Waiting);
                ctx.nap(Duration::from_millis(500));
            }
        }
    }
    ctx.stats.set_state(State::Stopped);
}

fn report_err(ctx: &Ctx, local: &str, last: &mut String, e: BridgeError) {
    let e = e.to_string();
    if *last != e {
        ctx.say(format!("import {local}: {e} (retrying)"));
        *last = e.clone();
    }
    ctx.stats.set_error(e);
}

/// Asks the exporter for its description. `Ok(None)`: no exporter answered in time.
fn describe(ctx: &Ctx) -> Result<Option<(Header, Info)>> {
    let replies = ctx
        .session()
        .get(ctx.keys.info.clone())
        .timeout(Duration::from_secs(2))
        .wait()
        .map_err(|e| net_err("querying the exporter", e))?;
    while let Ok(reply) = replies.recv() {
        let Ok(sample) = reply.into_result() else {
            continue;
        };
        let bytes = sample.payload().to_bytes();
        match Header::parse(&bytes).and_then(|(h, body)| {
            if h.kind != Kind::Info {
                return Err(wire::WireError(format!(
                    "{:?} frame as a description",
                    h.kind
                )));
            }
            Ok((h, Info::parse(body)?))
        }) {
            Ok(d) => return Ok(Some(d)),
            Err(e) => malformed(ctx, format!("description: {e}")),
        }
    }
    Ok(None)
}

/// Asks the exporter only how far it has published (a stall probe, see
/// [`Worker::check_stall`]): its session and last sequence number. `Ok(None)`: no answer.
fn probe(ctx: &Ctx) -> Result<Option<Header>> {
    let replies = ctx
        .session()
        .get(format!("{}?{}=1", ctx.keys.info, wire::PROBE_PARAM))
        .timeout(Duration::from_secs(2))
        .wait()
        .map_err(|e| net_err("probing the exporter", e))?;
    while let Ok(reply) = replies.recv() {
        let Ok(sample) = reply.into_result() else {
            continue;
        };
        match Header::parse(&sample.payload().to_bytes()) {
            Ok((h, _)) if h.kind == Kind::Info => return Ok(Some(h)),
            Ok((h, _)) => malformed(ctx, format!("{:?} frame as a probe answer", h.kind)),
            Err(e) => malformed(ctx, format!("probe answer: {e}")),
        }
    }
    Ok(None)
}

/// Creates the mirror; a leftover of the same name without a live membus owner (a bridge
/// that crashed) is replaced.
fn create_fresh<T>(local: &str, mut make: impl FnMut() -> membus::Result<T>) -> Result<T> {
    match make() {
        Err(e)
            if e.kind() == ErrorKind::CreateFailed
                && !membus::has_live_owner(local).unwrap_or(true) =>
        {
            membus::remove(local)?;
            Ok(make()?)
        }
        r => Ok(r?),
    }
}

struct Worker<'a> {
    ctx: &'a Ctx,
    local: &'a str,
    alive: &'a Arc<AtomicU8>,
    /// The liveliness subscription (declared afresh on a replaced session).
    live: &'a mut LiveSub,
    /// The [`Net`](crate::Net) generation the worker's declarations were made on.
    gen: &'a mut u64,
    cur_session: u64,
    expected: u64,
    was_stale: bool,
    /// memkv: the exporter session whose snapshot the mirror holds.
    snapshot_session: u64,
    /// An exporter session whose share no longer matches the mirror (its items are skipped).
    rejected_session: u64,
    /// The description the mirror was made from.
    info: Info,
    /// The data subscription's queue length (for re-subscribing).
    sub_capacity: usize,
    /// When the last data frame arrived.
    last_data: Instant,
    /// When the stall watchdog last asked the exporter.
    last_probe: Instant,
    /// Consecutive probes that found items published but not delivered.
    suspect: u32,
    /// Since when probes have gone unanswered while the exporter's token was there.
    unanswered_since: Option<Instant>,
    /// When this worker last replaced the session.
    restarted_at: Option<Instant>,
    /// Whether this worker wrote a mirror note (removed when the worker ends).
    note_kept: bool,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        if self.note_kept {
            let _ = MirrorNote::remove(self.local);
        }
    }
}

/// The data subscription of an import.
type DataSub = Subscriber<FifoChannelHandler<Sample>>;

impl Worker<'_> {
    fn subscribe(&mut self, capacity: usize) -> Result<DataSub> {
        self.sub_capacity = capacity;
        self.last_data = Instant::now();
        self.ctx
            .session()
            .declare_subscriber(self.ctx.keys.data.clone())
            .with(FifoChannel::new(capacity))
            .wait()
            .map_err(|e| net_err("subscribing", e))
    }

    /// A second description round trip after subscribing: the exporter has then seen the
    /// subscription (declarations and queries travel in order), so nothing it publishes
    /// from now on misses this importer.
    /// The reply's sequence number is the exporter's last item before that point: counting
    /// starts right after it.
    fn sync(&mut self) -> Result<Option<(Header, Info)>> {
        let d = describe(self.ctx)?;
        if let Some((h, _)) = &d {
            self.cur_session = h.session;
            self.expected = h.seq + 1;
        }
        Ok(d)
    }

    fn ready(&mut self, detail: String) {
        self.note(true);
        self.note_kept = true;
        self.ctx.stats.set_state(State::Live);
        self.ctx.say(format!(
            "import {} {} <- {} ready ({detail})",
            self.ctx.stats.kind(),
            self.local,
            self.ctx.keys.base
        ));
    }

    /// After the session was replaced (see [`Net`](crate::Net)): declares the liveliness
    /// subscription again and returns true, so the caller declares its own again too.
    fn refresh(&mut self) -> Result<bool> {
        let gen = self.ctx.net.generation();
        if gen == *self.gen {
            return Ok(false);
        }
        // The old session is closed, so its callback no longer runs; the token is unknown
        // until the new subscription reports it (its history brings a live token at once).
        // Relaxed: see the callback's store.
        self.alive.store(ALIVE_UNKNOWN, Ordering::Relaxed);
        self.restarted_at = Some(Instant::now());
        self.last_data = Instant::now();
        *self.live = declare_liveliness(self.ctx, self.alive)?;
        *self.gen = gen;
        Ok(true)
    }

    /// Writes the mirror note (see `membus::mirror`): local tools can tell a mirror whose
    /// exporter is gone. A note that cannot be written is reported; the data keeps flowing.
    fn note(&self, live: bool) {
        let note = MirrorNote::new(self.ctx.keys.base.clone(), live);
        if let Err(e) = note.write(self.local) {
            self.ctx.stats.set_error(format!("mirror note: {e}"));
        }
    }

    /// Follows the exporter's liveliness into the state and the event lines.
    fn watch_liveness(&mut self) {
        // Relaxed: see the callback's store.
        let flag = self.alive.load(Ordering::Relaxed);
        // After a session replacement the token is unknown until the new session sees it.
        let rejoining = flag == ALIVE_UNKNOWN
            && self
                .restarted_at
                .is_some_and(|t| t.elapsed() >= REJOIN_GRACE);
        let gone = flag == ALIVE_GONE || rejoining;
        if gone && !self.was_stale {
            self.was_stale = true;
            self.note(false);
            self.ctx.stats.set_state(State::Stale);
            self.ctx.say(format!(
                "import {}: exporter of {} is gone; mirror stale",
                self.local, self.ctx.keys.base
            ));
        } else if !gone && self.was_stale {
            self.was_stale = false;
            self.note(true);
            self.ctx.stats.set_state(State::Live);
            self.ctx.say(format!(
                "import {}: exporter of {} is back",
                self.local, self.ctx.keys.base
            ));
        }
    }

    /// Next data frame of `kind`, or `None` on timeout/malformed. Accounts for session
    /// changes, gaps (lost and skipped) and duplicates; returns the header and body.
    fn next(&mut self, sub: &mut DataSub, kind: Kind) -> Result<Option<(Header, Sample)>> {
        if self.refresh()? {
            *sub = self.subscribe(self.sub_capacity)?;
        }
        self.watch_liveness();
        let sample = match sub.recv_timeout(POLL) {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.check_stall()?;
                return Ok(None);
            }
            Err(e) => return Err(net_err("subscriber", e)),
        };
        self.last_data = Instant::now();
        self.suspect = 0;
        self.unanswered_since = None;
        let bytes = sample.payload().to_bytes();
        let h = match Header::parse(&bytes) {
            Ok((h, _)) if h.kind == kind => h,
            Ok((h, _)) => {
                malformed(self.ctx, format!("{:?} frame on a {kind:?} share", h.kind));
                return Ok(None);
            }
            Err(e) => {
                malformed(self.ctx, e.to_string());
                return Ok(None);
            }
        };
        if h.session == self.rejected_session {
            malformed(
                self.ctx,
                "item from an exporter whose share no longer matches the mirror".into(),
            );
            return Ok(None);
        }
        if h.session != self.cur_session && kind != Kind::KvBatch {
            // A new exporter session: its share must still be the one mirrored (memkv
            // checks its own snapshot instead).
            if let Some((h2, info2)) = describe(self.ctx)? {
                if h2.session == h.session && info2 != self.info {
                    self.rejected_session = h.session;
                    malformed(
                        self.ctx,
                        format!(
                            "exporter's share is now a {} of another geometry or identity; its items are skipped",
                            info2.type_name()
                        ),
                    );
                    self.ctx.say(format!(
                        "import {}: the exporter of {} now has a share of another type or geometry; skipping its items (restart the import to follow it)",
                        self.local, self.ctx.keys.base
                    ));
                    return Ok(None);
                }
            }
        }
        let st = &self.ctx.stats;
        if h.session != self.cur_session {
            if self.cur_session != 0 {
                ShareStats::add(&st.resyncs, 1);
                self.ctx.say(format!(
                    "import {}: exporter of {} has a new session; resynchronising",
                    self.local, self.ctx.keys.base
                ));
            }
            self.cur_session = h.session;
            self.expected = h.seq;
        }
        if h.seq < self.expected {
            ShareStats::add(&st.duplicates, 1);
            return Ok(None);
        }
        let gap = h.seq - self.expected;
        let skipped = h.skipped.min(gap);
        ShareStats::add(&st.skipped, skipped);
        ShareStats::add(&st.lost, gap - skipped);
        self.expected = h.seq + 1;
        st.lag_ns
            .store(wire::now_ns().saturating_sub(h.stamp), Ordering::Relaxed);
        drop(bytes);
        Ok(Some((h, sample)))
    }

    /// The stall watchdog. Zenoh can come out of a broken link with the exporter's
    /// liveliness token back and the transport kept alive, yet with nothing arriving from
    /// the exporter any more (see [`Net`](crate::Net) for the mechanism): `put` succeeds
    /// there, and nothing comes here, for ever. So when nothing has arrived for a while
    /// although the exporter's token is there, the importer asks the exporter how far it
    /// has published (the description's sequence number), and replaces the process's
    /// Zenoh session (every worker then declares afresh) when
    /// - [`STALL_PROBES`] answers in a row show items published that never arrived, or
    /// - no probe has been answered for [`UNANSWERED_FOR`] (longer than the lease, so an
    ///   ordinary outage is reported as a stale mirror first).
    ///
    /// What went missing is counted as lost by the sequence gap when the stream resumes.
    fn check_stall(&mut self) -> Result<()> {
        // Relaxed: see the liveliness callback's store.
        let alive = self.alive.load(Ordering::Relaxed) == ALIVE_YES;
        if !alive || self.was_stale {
            self.suspect = 0;
            self.unanswered_since = None;
            return Ok(());
        }
        if self.last_data.elapsed() < PROBE_EVERY || self.last_probe.elapsed() < PROBE_EVERY {
            return Ok(());
        }
        self.last_probe = Instant::now();
        let what = match probe(self.ctx)? {
            None => {
                let since = *self.unanswered_since.get_or_insert_with(Instant::now);
                if since.elapsed() < UNANSWERED_FOR {
                    return Ok(());
                }
                format!(
                    "has not answered for {:.0} s",
                    since.elapsed().as_secs_f64()
                )
            }
            Some(h) => {
                self.unanswered_since = None;
                let undelivered = if h.session == self.cur_session {
                    h.seq >= self.expected
                } else {
                    // A new exporter session that has already published.
                    h.seq > 0
                };
                if !undelivered {
                    self.suspect = 0;
                    return Ok(());
                }
                self.suspect += 1;
                if self.suspect < STALL_PROBES {
                    return Ok(());
                }
                format!("has published up to item {}", h.seq)
            }
        };
        self.suspect = 0;
        self.unanswered_since = None;
        ShareStats::add(&self.ctx.stats.stalls, 1);
        self.ctx.say(format!(
            "import {}: the exporter of {} is alive and {what}, but nothing has arrived for {:.1} s; opening a new Zenoh session",
            self.local,
            self.ctx.keys.base,
            self.last_data.elapsed().as_secs_f64()
        ));
        self.last_data = Instant::now();
        // Every worker notices the new generation and declares afresh (`refresh`).
        self.ctx.net.restart(*self.gen)
    }

    fn msg(&mut self, capacity: u64) -> Result<()> {
        let cap = usize::try_from(capacity)
            .map_err(|_| BridgeError::Config(format!("capacity {capacity}")))?;
        let writer = create_fresh(self.local, || Writer::create(self.local, cap))?;
        let mut sub = self.subscribe(8192)?;
        self.sync()?;
        self.ready(format!("capacity {capacity}"));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&mut sub, Kind::Msg)? else {
                continue;
            };
            let frame = sample.payload().to_bytes();
            let body = &frame[wire::HEADER_LEN..];
            match writer.write(body) {
                Ok(_) => ShareStats::add(&self.ctx.stats.received, 1),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::MessageTooLarge | ErrorKind::InvalidArgument
                    ) =>
                {
                    malformed(self.ctx, e.to_string())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn cmd(&mut self, capacity: u64) -> Result<()> {
        let cap = usize::try_from(capacity)
            .map_err(|_| BridgeError::Config(format!("capacity {capacity}")))?;
        let opts = QueueOptions::new().register_reader(false);
        let mut cmd = create_fresh(self.local, || MemCmd::create_with(self.local, cap, &opts))?;
        let declare = |ctx: &Ctx| {
            ctx.session()
                .declare_publisher(ctx.keys.cmd.clone())
                .congestion_control(CongestionControl::Block)
                .wait()
                .map_err(|e| net_err("declaring the command publisher", e))
        };
        let mut publisher = declare(self.ctx)?;
        self.sync()?;
        self.ready(format!(
            "capacity {capacity}, commands flow to the exporter"
        ));
        let sender = random_id();
        let mut seq = 0u64;
        let mut buf = Vec::new();
        while !self.ctx.stopped() {
            if self.refresh()? {
                publisher = declare(self.ctx)?;
            }
            self.watch_liveness();
            match cmd.read_into(&mut buf, POLL)? {
                Received::Message { .. } => {
                    seq += 1;
                    let mut out = Vec::with_capacity(wire::HEADER_LEN + buf.len());
                    Header {
                        kind: Kind::Cmd,
                        session: sender,
                        seq,
                        skipped: 0,
                        stamp: wire::now_ns(),
                    }
                    .write(&mut out);
                    out.extend_from_slice(&buf);
                    publisher
                        .put(out)
                        .wait()
                        .map_err(|e| net_err("sending a command", e))?;
                    ShareStats::add(&self.ctx.stats.sent, 1);
                }
                Received::Overrun { lost } => {
                    seq += lost;
                    ShareStats::add(&self.ctx.stats.lost, lost);
                }
                // Commands flow the other way, so only unanswered probes tell a wedged
                // link here.
                Received::Timeout => self.check_stall()?,
            }
        }
        Ok(())
    }

    fn kv(&mut self, _first: Header, first: Info) -> Result<()> {
        let Info::Kv {
            max_name,
            max_value,
            names,
            ..
        } = &first
        else {
            unreachable!("kv() is called with a memkv description");
        };
        let (max_name, max_value) = (*max_name as usize, *max_value as usize);
        let count = names.len();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let kv = create_fresh(self.local, || {
            MemKv::create_with(
                self.local,
                &name_refs,
                max_name,
                max_value,
                &KvOptions::new(),
            )
        })?;
        let mut sub = self.subscribe(8192)?;
        // The snapshot that counts is the one taken after the subscription is in place.
        let mut applied = match self.sync()? {
            Some((h, info)) => self.apply_snapshot(&kv, h, info, &first)?,
            None => return Err(BridgeError::Net("exporter vanished during set-up".into())),
        };
        self.ready(format!("{count} slots, snapshot at epoch {applied}"));
        while !self.ctx.stopped() {
            // Relaxed: only this worker adds to `lost` on an import.
            let lost_before = self.ctx.stats.lost.load(Ordering::Relaxed);
            let Some((h, sample)) = self.next(&mut sub, Kind::KvBatch)? else {
                continue;
            };
            if h.session == self.snapshot_session
                && self.ctx.stats.lost.load(Ordering::Relaxed) != lost_before
            {
                // Batches went missing (a broken link): values the mirror never saw may
                // differ, so take a fresh snapshot; batches up to it are then skipped.
                if let Some((h2, info)) = describe(self.ctx)? {
                    applied = self.apply_snapshot(&kv, h2, info, &first)?;
                }
            }
            let frame = sample.payload().to_bytes();
            let body = &frame[wire::HEADER_LEN..];
            if h.session == self.rejected_session {
                malformed(self.ctx, "batch from a store of another geometry".into());
                continue;
            }
            if h.session != self.snapshot_session {
                // A new exporter session: its epochs start afresh; take its snapshot.
                match describe(self.ctx)? {
                    Some((h2, info)) => applied = self.apply_snapshot(&kv, h2, info, &first)?,
                    None => continue,
                }
                if h.session == self.rejected_session {
                    malformed(self.ctx, "batch from a store of another geometry".into());
                    continue;
                }
                if h.session != self.snapshot_session {
                    continue;
                }
            }
            let batch = match KvBatch::parse(body, count, kv.max_value_len()) {
                Ok(b) => b,
                Err(e) => {
                    malformed(self.ctx, e.to_string());
                    continue;
                }
            };
            if batch.epoch <= applied {
                continue; // already in the snapshot
            }
            let set: Vec<(usize, &[u8])> = batch
                .values
                .iter()
                .map(|(i, v)| (*i, v.as_slice()))
                .collect();
            match kv.set_many_at_least(&set, batch.epoch) {
                Ok(_) => {
                    applied = batch.epoch;
                    ShareStats::add(&self.ctx.stats.received, 1);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::MessageTooLarge | ErrorKind::InvalidArgument
                    ) =>
                {
                    malformed(self.ctx, e.to_string())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Applies a description's snapshot as one batch; returns the exporter epoch it
    /// stands for. A store of another geometry is reported and its session skipped.
    fn apply_snapshot(&mut self, kv: &MemKv, h: Header, info: Info, first: &Info) -> Result<i64> {
        let same = match (&info, first) {
            (
                Info::Kv {
                    max_name: a,
                    max_value: b,
                    names: c,
                    ..
                },
                Info::Kv {
                    max_name: x,
                    max_value: y,
                    names: z,
                    ..
                },
            ) => a == x && b == y && c == z,
            _ => false,
        };
        let Info::Kv { epoch, values, .. } = info else {
            return Err(BridgeError::Config("exporter's share changed type".into()));
        };
        if !same || values.len() != kv.count() {
            self.rejected_session = h.session;
            malformed(
                self.ctx,
                "the exported store changed its slots or limits; its batches are skipped".into(),
            );
            return Ok(i64::MAX);
        }
        let set: Vec<(usize, &[u8])> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.as_slice()))
            .collect();
        // The mirror's epochs follow the exporter's (never backwards, see
        // `set_many_at_least`). A fresh exporter store (epoch 0) over a fresh mirror holds
        // nothing to copy.
        let nothing = epoch == 0 && kv.epoch() == 0;
        if let Err(e) = if nothing {
            Ok(0)
        } else {
            kv.set_many_at_least(&set, epoch)
        } {
            if matches!(
                e.kind(),
                ErrorKind::MessageTooLarge | ErrorKind::InvalidArgument
            ) {
                malformed(self.ctx, format!("snapshot: {e}"));
            } else {
                return Err(e.into());
            }
        }
        ShareStats::add(&self.ctx.stats.received, 1);
        self.snapshot_session = h.session;
        self.cur_session = h.session;
        self.expected = h.seq + 1;
        Ok(epoch)
    }

    fn vid(&mut self, v: wire::VideoInfo) -> Result<()> {
        let format = VideoFormat::from_value(v.format).ok_or_else(|| {
            BridgeError::Config(format!(
                "exporter describes unknown video format {}",
                v.format
            ))
        })?;
        let mut params = VideoParams::new(v.width, v.height, format, v.fps, v.bufs);
        params.scanwidth = usize::try_from(v.scanwidth).unwrap_or(usize::MAX);
        params.align = usize::try_from(v.align).unwrap_or(usize::MAX);
        params.frameextra = usize::try_from(v.frameextra).unwrap_or(usize::MAX);
        params.identity = Identity {
            fourcc: v.fourcc,
            guid: v.guid,
            meta: v.meta.clone(),
        };
        let mut writer = VideoWriter::create(self.local, &params)?;
        let l = writer.layout().clone();
        let payload_len = l.video.scanwidth * l.video.height;
        let max_user = l.frames.frameextra;
        // A few frames of slack: video is never queued without bound.
        let mut sub = self.subscribe(4)?;
        self.sync()?;
        self.ready(format!(
            "{}x{} format {} bufs {}",
            v.width, v.height, v.format, v.bufs
        ));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&mut sub, Kind::Video)? else {
                continue;
            };
            let frame = sample.payload().to_bytes();
            let body = &frame[wire::HEADER_LEN..];
            let f = match VideoFrame::parse(body, payload_len, max_user) {
                Ok(f) => f,
                Err(e) => {
                    malformed(self.ctx, e.to_string());
                    continue;
                }
            };
            {
                let mut slot = writer.frame();
                slot.bytes_mut()?.copy_from_slice(f.payload);
                slot.set_vpts(f.vpts);
                slot.set_apts(f.apts);
                slot.set_user_data(f.user)?;
            }
            writer.publish()?;
            ShareStats::add(&self.ctx.stats.received, 1);
        }
        Ok(())
    }

    fn aud(&mut self, a: wire::AudioInfo) -> Result<()> {
        let format = AudioFormat::from_value(a.format).ok_or_else(|| {
            BridgeError::Config(format!(
                "exporter describes unknown audio format {}",
                a.format
            ))
        })?;
        let mut params = AudioParams::new(a.channels, format, a.sample_rate, a.fps, a.bufs);
        params.align = usize::try_from(a.align).unwrap_or(usize::MAX);
        params.frameextra = usize::try_from(a.frameextra).unwrap_or(usize::MAX);
        params.payload_size = usize::try_from(a.payload).unwrap_or(usize::MAX);
        params.identity = Identity {
            fourcc: a.fourcc,
            guid: a.guid,
            meta: a.meta.clone(),
        };
        let mut writer = AudioWriter::create(self.local, &params)?;
        let l = writer.layout().clone();
        if l.frames.payload as u64 != a.payload {
            return Err(BridgeError::Config(format!(
                "exporter's audio buffers are {} bytes, these parameters give {}",
                a.payload, l.frames.payload
            )));
        }
        let mut sub = self.subscribe(1024)?;
        self.sync()?;
        self.ready(format!(
            "{} ch format {} at {} Hz",
            a.channels, a.format, a.sample_rate
        ));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&mut sub, Kind::Audio)? else {
                continue;
            };
            let frame = sample.payload().to_bytes();
            let body = &frame[wire::HEADER_LEN..];
            let b = match AudioBuffer::parse(body, l.frames.payload, l.frames.frameextra) {
                Ok(b) => b,
                Err(e) => {
                    malformed(self.ctx, e.to_string());
                    continue;
                }
            };
            {
                let mut slot = writer.buffer();
                slot.bytes_mut()?.copy_from_slice(b.payload);
                slot.set_pts(b.pts);
                slot.set_user_data(b.user)?;
            }
            writer.publish()?;
            ShareStats::add(&self.ctx.stats.received, 1);
        }
        Ok(())
    }

    fn pkt(&mut self, p: wire::PacketInfo) -> Result<()> {
        let mut params = PacketParams::new(
            p.bufs,
            usize::try_from(p.arenasz).unwrap_or(usize::MAX),
            usize::try_from(p.maxrec).unwrap_or(usize::MAX),
        );
        params.align = usize::try_from(p.align).unwrap_or(usize::MAX);
        params.identity = Identity {
            fourcc: p.fourcc,
            guid: p.guid,
            meta: p.meta.clone(),
        };
        let mut writer = PacketWriter::create(self.local, &params)?;
        let maxrec = writer.layout().maxrec;
        let mut sub = self.subscribe(8192)?;
        self.sync()?;
        self.ready(format!(
            "{} descriptors, arena {}, records up to {maxrec}",
            p.bufs, p.arenasz
        ));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&mut sub, Kind::Packet)? else {
                continue;
            };
            let frame = sample.payload().to_bytes();
            let body = &frame[wire::HEADER_LEN..];
            let r = match PacketRecord::parse(body, maxrec) {
                Ok(r) => r,
                Err(e) => {
                    malformed(self.ctx, e.to_string());
                    continue;
                }
            };
            let meta = RecordMeta {
                kind: PktKind::from_value(r.kind),
                track: r.track,
                pts: r.pts,
                meta: r.meta,
            };
            match writer.write(r.payload, &meta) {
                Ok(_) => ShareStats::add(&self.ctx.stats.received, 1),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::MessageTooLarge | ErrorKind::InvalidArgument
                    ) =>
                {
                    malformed(self.ctx, e.to_string())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
