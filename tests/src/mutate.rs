//! Mutated shares: deterministic mutations of a share image (bit flips and word
//! overwrites with extreme values in the header, the lock bytes and the slot or
//! descriptor areas), and one function per share type that drives every accessor on a
//! share, timing each call.
//!
//! Used by the `membus-mutant` child binary (the mutated-header harness of
//! `tests/mutated_fixtures.rs`) and by the fuzz targets in `fuzz/`.

use std::time::{Duration, Instant};

use membus::layout::media::{header_words, AudLayout, PktLayout, VidLayout};
use membus::memkv::{KvOptions, MemKv};
use membus::Next;

/// A share type, as the fixtures' manifest names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareType {
    /// memmsg.
    Msg,
    /// memcmd.
    Cmd,
    /// memkv.
    Kv,
    /// memvid.
    Vid,
    /// memaud.
    Aud,
    /// mempkt.
    Pkt,
}

impl ShareType {
    /// Parses a manifest `type` string.
    pub fn parse(s: &str) -> Option<ShareType> {
        Some(match s {
            "memmsg" => ShareType::Msg,
            "memcmd" => ShareType::Cmd,
            "memkv" => ShareType::Kv,
            "memvid" => ShareType::Vid,
            "memaud" => ShareType::Aud,
            "mempkt" => ShareType::Pkt,
            _ => return None,
        })
    }

    /// Header length and (mutex offset, lock bytes length) of the lock-based types.
    fn lock_layout(self) -> Option<(usize, usize, usize)> {
        match self {
            ShareType::Msg => Some((120, 32, 88)),
            ShareType::Cmd => Some((128, 40, 88)),
            ShareType::Kv => Some((128, 40, 88)),
            _ => None,
        }
    }
}

/// splitmix64: a small deterministic generator, so a case number names its mutation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const EXTREME_I64: [i64; 12] = [
    0,
    1,
    -1,
    2,
    i64::MIN,
    i64::MIN + 1,
    i64::MAX,
    i64::MAX - 1,
    i32::MAX as i64,
    u32::MAX as i64,
    4096,
    -4096,
];

const EXTREME_U32: [u32; 16] = [
    0,
    1,
    2,
    3,
    0x10,
    0x20,
    0x40,
    0x80,
    0x90,
    0xc0,
    0x180,
    0x7fff_ffff,
    0x7fff_fffe,
    0x8000_0000,
    0x4000_0000,
    u32::MAX,
];

/// Byte ranges worth mutating in a share image of type `ty`: the header, the lock bytes,
/// and the slot or descriptor headers (computed from the pristine image).
pub fn regions(ty: ShareType, image: &[u8]) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let len = image.len();
    let mut out = Vec::new();
    if let Some((h, m, l)) = ty.lock_layout() {
        out.push(("header", 0..h.min(len)));
        out.push(("lock", m.min(len)..(m + l).min(len)));
        out.push(("body", h.min(len)..len.min(h + 4096)));
        return out;
    }
    out.push(("header", 0..240.min(len)));
    let h = header_words(image);
    let slots: Vec<usize> = match ty {
        ShareType::Vid => VidLayout::from_header(&h, len)
            .map(|l| (0..l.frames.bufs).map(|i| l.frames.slot(i)).collect())
            .unwrap_or_default(),
        ShareType::Aud => AudLayout::from_header(&h, len)
            .map(|l| (0..l.frames.bufs).map(|i| l.frames.slot(i)).collect())
            .unwrap_or_default(),
        ShareType::Pkt => PktLayout::from_header(&h, len)
            .map(|l| (0..l.bufs).map(|i| l.desc(i)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    for s in slots.into_iter().take(8) {
        out.push(("slot", s.min(len)..(s + 64).min(len)));
    }
    out.push(("anywhere", 0..len));
    out
}

/// Applies 1–3 random mutations to `image`; returns their description.
pub fn mutate(ty: ShareType, image: &mut [u8], rng: &mut Rng) -> String {
    let regions = regions(ty, image);
    let mut desc = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let (what, r) = regions[rng.below(regions.len())].clone();
        if r.is_empty() {
            continue;
        }
        match rng.below(3) {
            0 => {
                let at = r.start + rng.below(r.len());
                let bit = rng.below(8);
                image[at] ^= 1 << bit;
                desc.push(format!("flip {what} byte {at} bit {bit}"));
            }
            1 if r.len() >= 8 => {
                let at = (r.start + rng.below(r.len() - 7)) & !7;
                let at = at.max(r.start & !7);
                let v = if rng.below(4) == 0 {
                    rng.next_u64() as i64
                } else {
                    EXTREME_I64[rng.below(EXTREME_I64.len())]
                };
                if at + 8 <= image.len() {
                    image[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    desc.push(format!("{what} i64 at {at} = {v}"));
                }
            }
            _ if r.len() >= 4 => {
                let at = (r.start + rng.below(r.len() - 3)) & !3;
                let v = EXTREME_U32[rng.below(EXTREME_U32.len())];
                if at + 4 <= image.len() {
                    image[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    desc.push(format!("{what} u32 at {at} = {v:#x}"));
                }
            }
            _ => {}
        }
    }
    desc.join("; ")
}

/// Times each call of an exercise; `slow` collects calls longer than the limit.
pub struct Timer {
    limit: Duration,
    /// Calls that took longer than the limit: (call, duration).
    pub slow: Vec<(&'static str, Duration)>,
    /// Calls made.
    pub calls: usize,
}

impl Timer {
    /// A timer that flags calls longer than `limit`.
    pub fn new(limit: Duration) -> Timer {
        Timer {
            limit,
            slow: Vec::new(),
            calls: 0,
        }
    }

    /// Runs `f`, timing it.
    pub fn call<T>(&mut self, what: &'static str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        let dt = t0.elapsed();
        self.calls += 1;
        if dt > self.limit {
            self.slow.push((what, dt));
        }
        out
    }
}

/// Short timeouts for the exercises: the lock deadline, and the wait and select timeout.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Lock deadline given to every handle.
    pub lock: Duration,
    /// Timeout of reads, waits and selects.
    pub wait: Duration,
}

/// Drives every accessor of share type `ty` on `name`. Errors are fine (a mutated share
/// should give them); panics, aborts, hangs and slow calls are what the harness looks for.
pub fn exercise(ty: ShareType, name: &str, lim: Limits, t: &mut Timer) {
    use membus::{QueueOptions, ReadFrom, Start};
    let qopts = |start| {
        QueueOptions::new()
            .lock_timeout(lim.lock)
            .start(start)
            .spin(Duration::ZERO)
    };
    match ty {
        ShareType::Msg => {
            for start in [Start::Oldest, Start::Latest] {
                if let Ok(mut r) = t.call("memmsg Reader::attach_with", || {
                    membus::memmsg::Reader::attach_with(name, &qopts(start))
                }) {
                    for _ in 0..3 {
                        let _ = t.call("memmsg read", || r.read(lim.wait));
                    }
                    let mut buf = Vec::new();
                    let _ = t.call("memmsg read_into", || r.read_into(&mut buf, lim.wait));
                    let mut small = [0u8; 16];
                    let _ = t.call("memmsg read_to_slice", || {
                        r.read_to_slice(&mut small, lim.wait)
                    });
                    let _ = t.call("memmsg try_iter", || r.try_iter().take(8).count());
                    let _ = t.call("memmsg poll", || r.poll());
                    let _ = t.call("memmsg wait_ready", || r.wait_ready(lim.wait));
                    let _ = t.call("memmsg select", || membus::select::select(&[&r], lim.wait));
                }
            }
            if let Ok(w) = t.call("memmsg Writer::attach_with", || {
                membus::memmsg::Writer::attach_with(name, &qopts(Start::Latest))
            }) {
                let _ = t.call("memmsg write", || w.write(b"mutant"));
                let _ = t.call("memmsg write large", || w.write(&[7u8; 600]));
                let _ = (w.seq(), w.capacity(), w.max_message_len(), w.session_id());
            }
        }
        ShareType::Cmd => {
            for start in [Start::Oldest, Start::Latest] {
                if let Ok(mut c) = t.call("memcmd attach_with", || {
                    membus::memcmd::MemCmd::attach_with(name, &qopts(start))
                }) {
                    for _ in 0..3 {
                        let _ = t.call("memcmd read", || c.read(lim.wait));
                    }
                    let _ = t.call("memcmd write", || c.write(b"mutant"));
                    let _ = t.call("memcmd try_iter", || c.try_iter().take(8).count());
                    let _ = t.call("memcmd wait_ready", || c.wait_ready(lim.wait));
                    let _ = t.call("memcmd select", || membus::select::select(&[&c], lim.wait));
                    let _ = (c.reader_count(), c.seq(), c.capacity());
                }
            }
        }
        ShareType::Kv => {
            let opts = KvOptions::new().lock_timeout(lim.lock);
            if let Ok(kv) = t.call("memkv attach_with", || MemKv::attach_with(name, &opts)) {
                let n = kv.count().min(64);
                for i in 0..n {
                    let _ = t.call("memkv get", || kv.get(i));
                    let _ = t.call("memkv slot_name", || kv.slot_name(i));
                }
                let _ = t.call("memkv slot_names", || kv.slot_names());
                let _ = t.call("memkv get_by_name", || kv.get_by_name("count"));
                let _ = t.call("memkv snapshot", || kv.snapshot());
                let _ = t.call("memkv changed_since", || kv.changed_since(0));
                let _ = t.call("memkv changed_since(-1)", || kv.changed_since(-1));
                let e = kv.epoch();
                let _ = t.call("memkv set", || kv.set(0, "mutant"));
                let _ = t.call("memkv set_many", || {
                    kv.set_many(&[(0, b"a"), (n.saturating_sub(1), b"b")])
                });
                let _ = t.call("memkv set_by_name", || kv.set_by_name("mode", "m"));
                let _ = t.call("memkv wait_for_change", || {
                    kv.wait_for_change(e.saturating_add(1_000), lim.wait)
                });
                let mut w = kv.watch();
                let _ = t.call("memkv watch changes", || w.changes());
                let _ = t.call("memkv wait_ready", || w.wait_ready(lim.wait));
                let _ = t.call("memkv select", || membus::select::select(&[&w], lim.wait));
            }
        }
        ShareType::Vid => {
            for from in [ReadFrom::Oldest, ReadFrom::Newest] {
                let o = membus::memvid::ReaderOptions { from, expect: None };
                if let Ok(mut r) = t.call("memvid attach_with", || {
                    membus::memvid::VideoReader::attach_with(name, &o)
                }) {
                    for _ in 0..4 {
                        t.call("memvid next", || {
                            if let Ok(Next::Frame(f)) = r.next() {
                                let _ =
                                    (f.vpts(), f.apts(), f.user_data(), f.to_vec(), f.is_intact());
                                let _ = f.row::<membus::pixel::Gray>(0);
                                let _ = f.row::<membus::pixel::Rgb>(1);
                            }
                        });
                    }
                    let bufs = r.layout().frames.bufs.min(16);
                    for i in 0..bufs + 1 {
                        t.call("memvid slot", || {
                            if let Ok(f) = r.slot(i) {
                                let _ = (f.to_vec(), f.user_data(), f.seq());
                            }
                        });
                    }
                    let _ = t.call("memvid meta", || r.meta());
                    let _ = (r.seq(), r.fourcc(), r.guid(), r.session_id(), r.poll());
                    let _ = t.call("memvid wait_ready", || r.wait_ready(lim.wait));
                    let _ = t.call("memvid select", || membus::select::select(&[&r], lim.wait));
                }
            }
        }
        ShareType::Aud => {
            for from in [ReadFrom::Oldest, ReadFrom::Newest] {
                let o = membus::memaud::ReaderOptions { from, expect: None };
                if let Ok(mut r) = t.call("memaud attach_with", || {
                    membus::memaud::AudioReader::attach_with(name, &o)
                }) {
                    for _ in 0..4 {
                        t.call("memaud next", || {
                            if let Ok(Next::Frame(b)) = r.next() {
                                let _ = (b.user_data(), b.seq(), b.is_intact(), b.len());
                                let _ = b.samples::<i16>();
                                let _ = b.samples::<u8>();
                            }
                        });
                    }
                    let bufs = r.layout().frames.bufs.min(16);
                    for i in 0..bufs + 1 {
                        t.call("memaud slot", || {
                            if let Ok(b) = r.slot(i) {
                                let _ = (b.user_data(), b.seq());
                            }
                        });
                    }
                    let _ = t.call("memaud meta", || r.meta());
                    let _ = (r.seq(), r.poll());
                    let _ = t.call("memaud wait_ready", || r.wait_ready(lim.wait));
                    let _ = t.call("memaud select", || membus::select::select(&[&r], lim.wait));
                }
            }
        }
        ShareType::Pkt => {
            for from in [ReadFrom::Oldest, ReadFrom::Newest] {
                let o = membus::mempkt::ReaderOptions { from, expect: None };
                if let Ok(mut r) = t.call("mempkt attach_with", || {
                    membus::mempkt::PacketReader::attach_with(name, &o)
                }) {
                    let (mut p, mut m) = (Vec::new(), Vec::new());
                    for _ in 0..3 {
                        let _ = t.call("mempkt next_into", || r.next_into(&mut p, &mut m));
                    }
                    for _ in 0..3 {
                        t.call("mempkt next_view", || {
                            if let Ok(Next::Frame(v)) = r.next_view() {
                                let _ = (v.payload().len(), v.meta().len(), v.is_intact());
                            }
                        });
                    }
                    let _ = t.call("mempkt meta", || r.meta());
                    let _ = (r.seq(), r.wcursor(), r.maxrec(), r.poll());
                    let _ = t.call("mempkt wait_ready", || r.wait_ready(lim.wait));
                    let _ = t.call("mempkt select", || membus::select::select(&[&r], lim.wait));
                }
            }
        }
    }
}
