//! The importing side: one worker per mirrored share.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use membus::layout::media::AudioFormat;
use membus::layout::media::VideoFormat;
use membus::memaud::{AudioParams, AudioWriter};
use membus::memcmd::MemCmd;
use membus::memkv::{KvOptions, MemKv};
use membus::memmsg::Writer;
use membus::mempkt::{PacketParams, PacketWriter, PktKind, RecordMeta};
use membus::memvid::{VideoParams, VideoWriter};
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

/// The exporter's liveliness as last reported by Zenoh.
const ALIVE_UNKNOWN: u8 = 0;
const ALIVE_YES: u8 = 1;
const ALIVE_GONE: u8 = 2;

fn net_err(what: &str, e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Net(format!("{what}: {e}"))
}

pub(crate) fn run(ctx: Ctx, local: String) {
    let alive = Arc::new(AtomicU8::new(ALIVE_UNKNOWN));
    let flag = alive.clone();
    // Keeps the liveliness subscription for the worker's life.
    let _live = match ctx
        .session
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
    {
        Ok(s) => s,
        Err(e) => {
            ctx.stats.set_error(format!("liveliness subscription: {e}"));
            ctx.stats.set_state(State::Failed);
            ctx.say(format!(
                "import {local}: liveliness subscription failed: {e}"
            ));
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
            cur_session: 0,
            expected: 0,
            was_stale: false,
            snapshot_session: 0,
            rejected_session: 0,
            info: info.clone(),
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
        .session
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
    alive: &'a AtomicU8,
    cur_session: u64,
    expected: u64,
    was_stale: bool,
    /// memkv: the exporter session whose snapshot the mirror holds.
    snapshot_session: u64,
    /// An exporter session whose share no longer matches the mirror (its items are skipped).
    rejected_session: u64,
    /// The description the mirror was made from.
    info: Info,
}

impl Worker<'_> {
    fn subscribe(&self, capacity: usize) -> Result<Subscriber<FifoChannelHandler<Sample>>> {
        self.ctx
            .session
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

    fn ready(&self, detail: String) {
        self.ctx.stats.set_state(State::Live);
        self.ctx.say(format!(
            "import {} {} <- {} ready ({detail})",
            self.ctx.stats.kind(),
            self.local,
            self.ctx.keys.base
        ));
    }

    /// Follows the exporter's liveliness into the state and the event lines.
    fn watch_liveness(&mut self) {
        // Relaxed: see the callback's store.
        let gone = self.alive.load(Ordering::Relaxed) == ALIVE_GONE;
        if gone && !self.was_stale {
            self.was_stale = true;
            self.ctx.stats.set_state(State::Stale);
            self.ctx.say(format!(
                "import {}: exporter of {} is gone; mirror stale",
                self.local, self.ctx.keys.base
            ));
        } else if !gone && self.was_stale {
            self.was_stale = false;
            self.ctx.stats.set_state(State::Live);
            self.ctx.say(format!(
                "import {}: exporter of {} is back",
                self.local, self.ctx.keys.base
            ));
        }
    }

    /// Next data frame of `kind`, or `None` on timeout/malformed. Accounts for session
    /// changes, gaps (lost and skipped) and duplicates; returns the header and body.
    fn next(
        &mut self,
        sub: &Subscriber<FifoChannelHandler<Sample>>,
        kind: Kind,
    ) -> Result<Option<(Header, Sample)>> {
        self.watch_liveness();
        let sample = match sub.recv_timeout(POLL) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => return Err(net_err("subscriber", e)),
        };
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

    fn msg(&mut self, capacity: u64) -> Result<()> {
        let cap = usize::try_from(capacity)
            .map_err(|_| BridgeError::Config(format!("capacity {capacity}")))?;
        let writer = create_fresh(self.local, || Writer::create(self.local, cap))?;
        let sub = self.subscribe(8192)?;
        self.sync()?;
        self.ready(format!("capacity {capacity}"));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&sub, Kind::Msg)? else {
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
        let publisher = self
            .ctx
            .session
            .declare_publisher(self.ctx.keys.cmd.clone())
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| net_err("declaring the command publisher", e))?;
        self.sync()?;
        self.ready(format!(
            "capacity {capacity}, commands flow to the exporter"
        ));
        let sender = random_id();
        let mut seq = 0u64;
        let mut buf = Vec::new();
        while !self.ctx.stopped() {
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
                Received::Timeout => {}
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
        let sub = self.subscribe(8192)?;
        // The snapshot that counts is the one taken after the subscription is in place.
        let mut applied = match self.sync()? {
            Some((h, info)) => self.apply_snapshot(&kv, h, info, &first)?,
            None => return Err(BridgeError::Net("exporter vanished during set-up".into())),
        };
        self.ready(format!("{count} slots, snapshot at epoch {applied}"));
        while !self.ctx.stopped() {
            let Some((h, sample)) = self.next(&sub, Kind::KvBatch)? else {
                continue;
            };
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
            match kv.set_many(&set) {
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
        if let Err(e) = kv.set_many(&set) {
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
        let sub = self.subscribe(4)?;
        self.sync()?;
        self.ready(format!(
            "{}x{} format {} bufs {}",
            v.width, v.height, v.format, v.bufs
        ));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&sub, Kind::Video)? else {
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
        let sub = self.subscribe(1024)?;
        self.sync()?;
        self.ready(format!(
            "{} ch format {} at {} Hz",
            a.channels, a.format, a.sample_rate
        ));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&sub, Kind::Audio)? else {
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
        let sub = self.subscribe(8192)?;
        self.sync()?;
        self.ready(format!(
            "{} descriptors, arena {}, records up to {maxrec}",
            p.bufs, p.arenasz
        ));
        while !self.ctx.stopped() {
            let Some((_, sample)) = self.next(&sub, Kind::Packet)? else {
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
