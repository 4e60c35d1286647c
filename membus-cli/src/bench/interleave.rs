//! "memmsg round trip ÷ floor, interleaved (2 processes)": the cross-process memmsg round
//! trip and the bare shared-memory spin ping-pong (the floor), measured against one echo
//! process in alternating slices of [`SLICE`], so that both see the same moments of the
//! machine.
//!
//! On a virtual machine the cost of a cache line crossing between two vCPUs depends on
//! where the host has placed them and can change from one second to the next, so a ratio
//! of two cases measured seconds apart mostly measures the host. Here each memmsg slice
//! has a floor slice right next to it (the order alternates from pair to pair), each pair
//! gives the ratio of its two p50s, and the case reports the median of those ratios, with
//! the whole case's p50, p99 and p99.9 of each side and each side's p99.9 ÷ p99.
//!
//! Protocol with the echo process (`membus bench-peer interleave-echo:POLICY FWD REV MAP`):
//! between slices it reads the FWD memmsg ring with the waiting policy POLICY and echoes
//! each 64-byte ping into REV. The 4-byte message `spin` sends it into floor mode, where it
//! spins on the ping sequence word of MAP and echoes 64 bytes through MAP (exactly the
//! floor case); the parent ends a floor slice by storing [`SWITCH`] as the ping sequence,
//! which the echo acknowledges in the pong word before it goes back to the ring. `stop`
//! (a message, or [`STOP`] in the ping word, or its standard input closing) ends it.
//!
//! The floor needs both of its processes running at once. When a third busy process
//! shares a 2-CPU machine, one of them waits for the scheduler and a floor round trip
//! takes a scheduler slice, while the memmsg round trip (whose readers sleep after their
//! spin) does not. A memmsg round trip does more work than the floor's, so a slice pair
//! whose ratio is below 1 did not see the same machine on both sides (that, or the host
//! moved a vCPU between the two slices); the report counts such pairs.
//!
//! A third slice kind, the locked floor, is the floor with one change: each side takes a
//! robust process-shared mutex around its payload and sequence stores, and the mutex lies
//! in the cache line of the sequence word the other side polls, as a libmembus ring's
//! mutex lies beside the write offset its readers poll. It measures what the lock every
//! writer of a libmembus-compatible ring must take costs on its own, so the memmsg ratio
//! can be read against it. Between memmsg and floor slices, `spin-locked` sends the echo
//! into it (the same echo loop on the locked words, see [`LOCKED_PING`]).
//!
//! A fourth slice in each group measures the machine itself: the echo spins in floor
//! mode (one ping, then none) while the parent reads the clock in a tight loop and counts
//! the gaps over 1 µs, time a vCPU lost to the machine (see the `machine stalls` case). A
//! stall that overlaps a round trip lands on it whole, so the report gives the rate and
//! the probability that a memmsg round trip of its p50 meets one, about 2 × rate × p50
//! with both vCPUs in the exchange: once that exceeds 0.1 %, the p99.9 is a stall's
//! length whatever the IPC does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use membus::memmsg::{Reader, Writer};
use membus::{MemMap, QueueOptions, Received};

use super::cases::{clock_gaps, finish, spawn_peer, stop_requested, wait_policy};
use super::cases::{PING_DATA, PING_SEQ, PONG_DATA, PONG_SEQ, STOP};
use super::{json_str, unique_name, BenchResult, Latency, GRACE};

/// The case's title (what `--only` matches).
pub(crate) const TITLE: &str = "memmsg round trip ÷ floor, interleaved (2 processes)";

/// The name of the memmsg side's latency row.
const MEMMSG_ROW: &str = "memmsg round-trip latency (2 processes, interleaved with floor)";

/// The name of the floor side's latency row.
const FLOOR_ROW: &str = "shm spin ping-pong (2 processes, floor, interleaved)";

/// The name of the locked floor's latency row.
const LOCKED_ROW: &str =
    "shm spin ping-pong with a robust mutex (2 processes, locked floor, interleaved)";

/// Where the locked floor's ping side lives in the floor's block: a `pthread_mutex_t` (40
/// bytes on x86-64 and aarch64 glibc) at the start of a cache line, the ping sequence word
/// right after it in the same line. The pong side is the next line.
const LOCKED_PING: usize = 256;
const LOCKED_PONG: usize = 320;
/// Offset of the sequence word in a locked side's line.
const LOCKED_SEQ: usize = 48;

/// How long each side measures before the other takes over.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// Round trips at the start of each slice that are not recorded (the first exchanges after
/// a switch pay for waking the echo and for moving the other side's cache lines).
const SLICE_WARMUP: usize = 16;

/// The ping sequence value that ends a floor slice (the echo acknowledges it in the pong
/// word and goes back to reading the ring). Pings count up from 1 and never reach it.
const SWITCH: u64 = u64::MAX - 1;

/// The payload size of both exchanges, as in the separate cases.
const PAYLOAD: usize = 64;

/// What the case measured: every side's samples (µs) and each slice group's p50s.
pub(crate) struct Interleaved {
    pub memmsg: Latency,
    pub floor: Latency,
    pub locked: Latency,
    /// Per slice group: (memmsg round trip p50, floor p50, locked floor p50), µs.
    pub pairs: Vec<(f64, f64, f64)>,
    /// The machine's stalls over 1 µs counted in the stall slices, and those slices' total
    /// length in seconds.
    pub stalls: usize,
    pub stall_secs: f64,
}

/// Three percentiles of one side over the whole case.
pub(crate) struct Side {
    pub samples: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Side {
    /// `l` must be sorted.
    fn of(l: &Latency) -> Side {
        Side {
            samples: l.samples_us.len(),
            p50: l.percentile(50.0),
            p99: l.percentile(99.0),
            p999: l.percentile(99.9),
        }
    }

    /// p99.9 ÷ p99: how much tail this side has beyond its p99.
    fn tail_ratio(&self) -> f64 {
        self.p999 / self.p99
    }

    fn json(&self) -> String {
        format!(
            "{{\"samples\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"p999_over_p99\":{}}}",
            self.samples,
            json_num(self.p50),
            json_num(self.p99),
            json_num(self.p999),
            json_num(self.tail_ratio())
        )
    }
}

/// The figures the table and the JSON report for one interleaved case.
pub(crate) struct Summary {
    pub name: String,
    pub memmsg: Side,
    pub floor: Side,
    pub locked: Side,
    /// Each slice pair's memmsg p50 ÷ floor p50, in measuring order.
    pub ratios: Vec<f64>,
    /// Each slice group's locked floor p50 ÷ floor p50, in measuring order.
    pub locked_ratios: Vec<f64>,
    /// Each slice group's memmsg p50 ÷ locked floor p50, in measuring order.
    pub memmsg_locked_ratios: Vec<f64>,
    /// The machine's stalls over 1 µs per second, in the stall slices.
    pub stalls_per_sec: f64,
}

impl Summary {
    /// Sorts every side's samples and returns the summary and the three latency rows (for
    /// the latency table and `latency_results`).
    pub(crate) fn of(i: Interleaved) -> (Summary, [Latency; 3]) {
        let (m, f, l) = (i.memmsg.sorted(), i.floor.sorted(), i.locked.sorted());
        let s = Summary {
            name: TITLE.into(),
            memmsg: Side::of(&m),
            floor: Side::of(&f),
            locked: Side::of(&l),
            ratios: i.pairs.iter().map(|&(a, b, _)| a / b).collect(),
            locked_ratios: i.pairs.iter().map(|&(_, b, c)| c / b).collect(),
            memmsg_locked_ratios: i.pairs.iter().map(|&(a, _, c)| a / c).collect(),
            stalls_per_sec: i.stalls as f64 / i.stall_secs,
        };
        (s, [m, f, l])
    }

    /// The median of the per-pair ratios (the mean of the middle two for an even count).
    pub(crate) fn ratio_median(&self) -> f64 {
        median(&self.ratios)
    }

    /// How many slice pairs had the memmsg round trip faster than the floor (a sign that
    /// the two slices did not see the same machine).
    fn below_floor(&self) -> usize {
        self.ratios.iter().filter(|&&r| r < 1.0).count()
    }

    /// The lower and upper quartile of the per-pair ratios (libmembus's index rule).
    fn ratio_quartiles(&self) -> (f64, f64) {
        quartiles(&self.ratios)
    }

    /// The probability that a memmsg round trip of the p50 meets a machine stall: about
    /// 2 × rate × p50 (either vCPU of the exchange can stall).
    fn memmsg_stall_probability(&self) -> f64 {
        2.0 * self.stalls_per_sec * self.memmsg.p50 * 1e-6
    }

    /// The human text: a heading, how it was measured, and a line of figures for each of
    /// the round trip against the floor, the locked floor and the machine's stalls.
    pub(crate) fn text(&self) -> String {
        let (q1, q3) = self.ratio_quartiles();
        let (lq1, lq3) = quartiles(&self.locked_ratios);
        let (mlq1, mlq3) = quartiles(&self.memmsg_locked_ratios);
        let (m, f) = (&self.memmsg, &self.floor);
        let mut s = format!(
            "--- {} ---\n\
             (the memmsg round trip, default wait policy, and the spin ping-pong floor, 64 B, \
             against one echo process in alternating {} ms slices; each slice pair's ratio is \
             memmsg p50 ÷ floor p50 of those same moments; p99/p99.9 are over the whole case, \
             µs)\n\
             interleaved: memmsg round trip p50 {:.3} µs, floor p50 {:.3} µs, per-slice p50 \
             ratio median {:.2} (slices: {}, middle half {:.2}–{:.2}), memmsg p99 {:.3} p99.9 \
             {:.3} (p99.9 ÷ p99 {:.2}), floor p99 {:.3} p99.9 {:.3} (p99.9 ÷ p99 {:.2})\n\
             locked floor (the floor with each side taking a robust mutex in the line the \
             other polls, as a libmembus ring's writer must): p50 {:.3} µs, per-slice p50 \
             ratio to the floor median {:.2} (middle half {:.2}–{:.2}); memmsg ÷ locked floor \
             median {:.2} (middle half {:.2}–{:.2})\n\
             machine stalls over 1 µs (a clock-reading slice in each group, the echo \
             spinning): {:.0} per second; a memmsg round trip of the p50 meets one with a \
             probability of about {:.3} % (2 × rate × p50; above 0.1 % the p99.9 is a \
             stall's length)\n",
            self.name,
            SLICE.as_millis(),
            m.p50,
            f.p50,
            self.ratio_median(),
            self.ratios.len(),
            q1,
            q3,
            m.p99,
            m.p999,
            m.tail_ratio(),
            f.p99,
            f.p999,
            f.tail_ratio(),
            self.locked.p50,
            median(&self.locked_ratios),
            lq1,
            lq3,
            median(&self.memmsg_locked_ratios),
            mlq1,
            mlq3,
            self.stalls_per_sec,
            100.0 * self.memmsg_stall_probability(),
        );
        let below = self.below_floor();
        if below > 0 {
            s.push_str(&format!(
                "note: in {below} of {} slices the memmsg round trip beat the floor; it does \
                 more work than the floor, so those two slices did not see the same machine \
                 (the floor's two spinning processes could not both run, as with another busy \
                 process on the CPUs, or the host moved a vCPU between the slices)\n",
                self.ratios.len()
            ));
        }
        s
    }

    /// One entry of the JSON's `interleaved_results`.
    pub(crate) fn json(&self) -> String {
        let (q1, q3) = self.ratio_quartiles();
        let ratios: Vec<String> = self.ratios.iter().map(|&r| json_num(r)).collect();
        format!(
            "{{\"name\":{},\"memmsg_row\":{},\"floor_row\":{},\"locked_floor_row\":{},\"slice_ms\":{},\"slices\":{},\"slices_memmsg_below_floor\":{},\"p50_ratio_median\":{},\"p50_ratio_p25\":{},\"p50_ratio_p75\":{},\"locked_floor_over_floor_median\":{},\"memmsg_over_locked_floor_median\":{},\"machine_stalls_per_sec\":{},\"memmsg_stall_probability\":{},\"memmsg\":{},\"floor\":{},\"locked_floor\":{},\"p50_ratios\":[{}]}}",
            json_str(&self.name),
            json_str(MEMMSG_ROW),
            json_str(FLOOR_ROW),
            json_str(LOCKED_ROW),
            SLICE.as_millis(),
            self.ratios.len(),
            self.below_floor(),
            json_num(self.ratio_median()),
            json_num(q1),
            json_num(q3),
            json_num(median(&self.locked_ratios)),
            json_num(median(&self.memmsg_locked_ratios)),
            json_num(self.stalls_per_sec),
            json_num(self.memmsg_stall_probability()),
            self.memmsg.json(),
            self.floor.json(),
            self.locked.json(),
            ratios.join(",")
        )
    }
}

/// A number for JSON: `null` where it is not finite (no pair measured, a zero p99).
fn json_num(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        "null".into()
    }
}

/// A sorted copy of `v`.
fn sorted(v: &[f64]) -> Vec<f64> {
    let mut r = v.to_vec();
    r.sort_by(f64::total_cmp);
    r
}

/// The median of `v` (the mean of the middle two for an even count; NaN when empty).
fn median(v: &[f64]) -> f64 {
    let r = sorted(v);
    match r.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => r[n / 2],
        n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
    }
}

/// The lower and upper quartile of `v` (libmembus's index rule; NaN when empty).
fn quartiles(v: &[f64]) -> (f64, f64) {
    let r = sorted(v);
    if r.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let at = |p: f64| r[((p * r.len() as f64) as usize).min(r.len() - 1)];
    (at(0.25), at(0.75))
}

/// The p50 by libmembus's index rule (`sorted[n / 2]`) of a slice's samples (not empty).
fn p50(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// A robust, process-shared pthread mutex in the floor's block (the locked floor's lock),
/// valid while the block's mapping, borrowed for `'a`, is. The block is this case's own
/// (a unique name, created with mode 0600, used by the parent and its echo only), so its
/// bytes are handed to glibc unchecked, unlike a share's, whose lock words membus checks
/// first.
struct SharedMutex<'a> {
    m: *mut libc::pthread_mutex_t,
    _map: std::marker::PhantomData<&'a MemMap>,
}

/// Unlocks on drop.
struct SharedMutexGuard<'m, 'a>(&'m SharedMutex<'a>);

impl<'a> SharedMutex<'a> {
    /// The mutex at `offset` of `map` (a whole `pthread_mutex_t` in bounds and 8-aligned,
    /// checked). With `init`, it is initialised first (robust, process-shared): only the
    /// creator does that, before any other process uses the block.
    fn at(map: &'a MemMap, offset: usize, init: bool) -> BenchResult<SharedMutex<'a>> {
        let size = std::mem::size_of::<libc::pthread_mutex_t>();
        if offset % 8 != 0 || offset + size > map.len() || size > LOCKED_SEQ {
            return Err(
                format!("no room for a mutex at offset {offset} of the floor's block").into(),
            );
        }
        // SAFETY: `offset + size` is within the mapping (checked), which `map` keeps mapped
        // for `'a`; the pointer is only handed to pthread functions, never made a reference.
        let m = unsafe { map.as_ptr().add(offset) }.cast::<libc::pthread_mutex_t>();
        if init {
            // SAFETY: `attr` is initialised by pthread_mutexattr_init before any other use
            // and destroyed after; `m` points to `size` writable bytes, 8-aligned, that no
            // other process uses yet (the echo is spawned after this).
            let rc = unsafe {
                let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
                libc::pthread_mutexattr_init(attr.as_mut_ptr());
                libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
                libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
                let rc = libc::pthread_mutex_init(m, attr.as_ptr());
                libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
                rc
            };
            if rc != 0 {
                return Err(format!("pthread_mutex_init: error {rc}").into());
            }
        }
        Ok(SharedMutex {
            m,
            _map: std::marker::PhantomData,
        })
    }

    /// Locks it as a membus ring writer does (a try first, then a wait of at most
    /// [`GRACE`] with the clock read only then); a lock whose holder died is taken over.
    fn lock(&self) -> BenchResult<SharedMutexGuard<'_, 'a>> {
        // SAFETY: `m` is a mutex initialised by the block's creator (see `at`) in a mapping
        // kept alive for `'a`; a trylock never blocks.
        let mut rc = unsafe { libc::pthread_mutex_trylock(self.m) };
        if rc == libc::EBUSY {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid, writable timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
            let deadline = libc::timespec {
                tv_sec: now.tv_sec + GRACE.as_secs() as libc::time_t,
                tv_nsec: now.tv_nsec,
            };
            // SAFETY: as above; `deadline` is a valid timespec.
            rc = unsafe { libc::pthread_mutex_timedlock(self.m, &deadline) };
        }
        match rc {
            0 => Ok(SharedMutexGuard(self)),
            libc::EOWNERDEAD => {
                // SAFETY: this thread holds the mutex (EOWNERDEAD locks it).
                unsafe { libc::pthread_mutex_consistent(self.m) };
                Ok(SharedMutexGuard(self))
            }
            rc => Err(format!("the locked floor's mutex: pthread_mutex_lock error {rc}").into()),
        }
    }
}

impl Drop for SharedMutexGuard<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex when it made the guard, and the mapping
        // outlives the guard (it borrows the mutex, which borrows the map).
        unsafe { libc::pthread_mutex_unlock(self.0.m) };
    }
}

/// The parent's side of the three exchanges.
struct Session<'a> {
    ping_tx: Writer,
    pong_rx: Reader,
    map: &'a MemMap,
    ping: &'a AtomicU64,
    pong: &'a AtomicU64,
    locked_ping: &'a AtomicU64,
    locked_pong: &'a AtomicU64,
    ping_lock: SharedMutex<'a>,
    msg_seq: u64,
    spin_seq: u64,
    payload: [u8; PAYLOAD],
    back: [u8; PAYLOAD],
    buf: Vec<u8>,
}

impl Session<'_> {
    /// One memmsg round trip, in µs: the ping carries a sequence number in its first 8
    /// bytes, and only its own echo ends the wait.
    fn memmsg_round_trip(&mut self) -> BenchResult<f64> {
        self.msg_seq += 1;
        self.payload[..8].copy_from_slice(&self.msg_seq.to_le_bytes());
        let t0 = Instant::now();
        self.ping_tx.write(&self.payload)?;
        loop {
            let got = self
                .pong_rx
                .read_into(&mut self.buf, Duration::from_millis(100))?;
            match got {
                Received::Message { .. } if self.buf.get(..8) == Some(&self.payload[..8]) => {
                    return Ok(t0.elapsed().as_secs_f64() * 1e6);
                }
                _ if t0.elapsed() > GRACE => {
                    return Err(format!(
                        "the echo process did not answer memmsg ping {} within {} s",
                        self.msg_seq,
                        GRACE.as_secs()
                    )
                    .into());
                }
                // An older echo, a timeout step or an overrun: wait on for this one.
                _ => {}
            }
        }
    }

    /// Waits until the pong word `pong` holds `want`; an error after [`GRACE`].
    fn wait_pong(pong: &AtomicU64, want: u64, t0: Instant) -> BenchResult<()> {
        let mut spins = 0u32;
        // Acquire: pairs with the echo's Release store of the pong word (after its payload
        // copy, or its acknowledgement of SWITCH).
        while pong.load(Ordering::Acquire) != want {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 && t0.elapsed() > GRACE {
                return Err(format!(
                    "the echo process did not answer spin ping {want:#x} within {} s",
                    GRACE.as_secs()
                )
                .into());
            }
        }
        Ok(())
    }

    /// One floor round trip, in µs: the same steps as the floor case.
    fn spin_round_trip(&mut self) -> BenchResult<f64> {
        self.spin_seq += 1;
        let i = self.spin_seq;
        let t0 = Instant::now();
        self.map.write_at(PING_DATA, &self.payload)?;
        // Release: publishes the payload; pairs with the echo's Acquire load of PING_SEQ.
        self.ping.store(i, Ordering::Release);
        Self::wait_pong(self.pong, i, t0)?;
        self.map.read_at(PONG_DATA, &mut self.back)?;
        Ok(t0.elapsed().as_secs_f64() * 1e6)
    }

    /// One locked floor round trip, in µs: the floor's steps, each side storing under its
    /// mutex (the one in the line of the sequence word it stores).
    fn locked_round_trip(&mut self) -> BenchResult<f64> {
        self.spin_seq += 1;
        let i = self.spin_seq;
        let t0 = Instant::now();
        {
            let _held = self.ping_lock.lock()?;
            self.map.write_at(PING_DATA, &self.payload)?;
            // Release: publishes the payload; pairs with the echo's Acquire load.
            self.locked_ping.store(i, Ordering::Release);
        }
        Self::wait_pong(self.locked_pong, i, t0)?;
        self.map.read_at(PONG_DATA, &mut self.back)?;
        Ok(t0.elapsed().as_secs_f64() * 1e6)
    }

    /// Runs `op` for one slice: at least [`SLICE`] and at least one recorded round trip
    /// after [`SLICE_WARMUP`] unrecorded ones. Returns the recorded samples.
    fn slice(&mut self, op: fn(&mut Self) -> BenchResult<f64>) -> BenchResult<Vec<f64>> {
        let start = Instant::now();
        let mut samples = Vec::with_capacity(64 * 1024);
        let mut n = 0usize;
        while n <= SLICE_WARMUP || start.elapsed() < SLICE {
            let us = op(self)?;
            if n >= SLICE_WARMUP {
                samples.push(us);
            }
            n += 1;
        }
        Ok(samples)
    }

    /// A memmsg slice (the echo is reading the ring before and after).
    fn memmsg_slice(&mut self) -> BenchResult<Vec<f64>> {
        self.slice(Self::memmsg_round_trip)
    }

    /// Sends the echo into floor mode (with `locked`, the locked floor's), runs `body`,
    /// and brings the echo back to the ring; returns what `body` returned.
    fn in_floor_mode<T>(
        &mut self,
        locked: bool,
        body: impl FnOnce(&mut Self) -> BenchResult<T>,
    ) -> BenchResult<T> {
        let (mode, ping, pong): (&[u8], _, _) = if locked {
            (b"spin-locked", self.locked_ping, self.locked_pong)
        } else {
            (b"spin", self.ping, self.pong)
        };
        self.ping_tx.write(mode)?;
        let out = body(self)?;
        // Release: pairs with the echo's Acquire load of this mode's ping word; ends the mode.
        ping.store(SWITCH, Ordering::Release);
        Self::wait_pong(pong, SWITCH, Instant::now())?;
        Ok(out)
    }

    /// A floor slice (with `locked`, a locked floor slice): sends the echo into that mode,
    /// measures, brings it back to the ring.
    fn floor_slice(&mut self, locked: bool) -> BenchResult<Vec<f64>> {
        let op: fn(&mut Self) -> BenchResult<f64> = if locked {
            Self::locked_round_trip
        } else {
            Self::spin_round_trip
        };
        self.in_floor_mode(locked, |s| s.slice(op))
    }

    /// A stall slice: the echo in floor mode (where it spins, as in a floor slice), this
    /// process reads the clock for one slice; returns the gaps over 1 µs and the seconds
    /// measured.
    fn stall_slice(&mut self) -> BenchResult<(Vec<f64>, f64)> {
        self.in_floor_mode(false, |s| {
            // One floor round trip first: the echo is then surely in floor mode, and the
            // SWITCH that ends the mode changes both words (the echo acts on changes only).
            s.spin_round_trip()?;
            Ok(clock_gaps(SLICE))
        })
    }

    /// One slice group, the floor in the middle and the order of the other two alternating;
    /// returns (memmsg, floor, locked floor) samples.
    fn pair(&mut self, memmsg_first: bool) -> BenchResult<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        Ok(if memmsg_first {
            let m = self.memmsg_slice()?;
            let f = self.floor_slice(false)?;
            (m, f, self.floor_slice(true)?)
        } else {
            let l = self.floor_slice(true)?;
            let f = self.floor_slice(false)?;
            (self.memmsg_slice()?, f, l)
        })
    }

    /// A warm-up pair, then pairs until `d` has passed (and at least one pair, for at
    /// most `d` + [`GRACE`]).
    fn measure(&mut self, d: Duration) -> BenchResult<Interleaved> {
        self.pair(true)?;
        let mut r = Interleaved {
            memmsg: Latency {
                name: MEMMSG_ROW.into(),
                group: "memmsg",
                payload: "64 B".into(),
                samples_us: Vec::new(),
            },
            floor: Latency {
                name: FLOOR_ROW.into(),
                group: "floor",
                payload: "64 B".into(),
                samples_us: Vec::new(),
            },
            locked: Latency {
                name: LOCKED_ROW.into(),
                group: "floor",
                payload: "64 B".into(),
                samples_us: Vec::new(),
            },
            pairs: Vec::new(),
            stalls: 0,
            stall_secs: 0.0,
        };
        let start = Instant::now();
        let mut k = 0usize;
        while start.elapsed() < d || (r.pairs.is_empty() && start.elapsed() < d + GRACE) {
            let (mut m, mut f, mut l) = self.pair(k % 2 == 0)?;
            k += 1;
            r.pairs.push((p50(&mut m), p50(&mut f), p50(&mut l)));
            let (gaps, secs) = self.stall_slice()?;
            r.stalls += gaps.len();
            r.stall_secs += secs;
            r.memmsg.samples_us.extend_from_slice(&m);
            r.floor.samples_us.extend_from_slice(&f);
            r.locked.samples_us.extend_from_slice(&l);
        }
        if r.pairs.is_empty() {
            return Err(format!(
                "{TITLE}: no slice pair completed in {:.1} s",
                start.elapsed().as_secs_f64()
            )
            .into());
        }
        Ok(r)
    }
}

/// Runs the case with both memmsg readers waiting by `policy` (a name `wait_policy` knows).
pub(crate) fn run(d: Duration, policy: &str) -> BenchResult<Interleaved> {
    let (wait, _) = wait_policy(policy)?;
    let opts = QueueOptions::new().wait_policy(wait);
    let (fwd, rev, spin) = (
        unique_name("il_fwd"),
        unique_name("il_rev"),
        unique_name("il_spin"),
    );
    let ping_tx = Writer::create(&fwd, 4096)?;
    let _rev_owner = Writer::create(&rev, 4096)?;
    let pong_rx = Reader::attach_with(&rev, &opts)?;
    let map = MemMap::create(&spin, 4096)?;
    let (ping, pong) = (map.atomic_u64(PING_SEQ)?, map.atomic_u64(PONG_SEQ)?);
    let locked_ping = map.atomic_u64(LOCKED_PING + LOCKED_SEQ)?;
    let locked_pong = map.atomic_u64(LOCKED_PONG + LOCKED_SEQ)?;
    // Both mutexes are initialised here, before the echo exists.
    let ping_lock = SharedMutex::at(&map, LOCKED_PING, true)?;
    SharedMutex::at(&map, LOCKED_PONG, true)?;
    // The echo enters either floor mode expecting SWITCH here (see `floor_echo`).
    // Release: pairs with the echo's Acquire loads of the ping words.
    ping.store(SWITCH, Ordering::Release);
    locked_ping.store(SWITCH, Ordering::Release);
    let child = spawn_peer(&format!("interleave-echo:{policy}"), &[&fwd, &rev, &spin])?;
    let mut s = Session {
        ping_tx,
        pong_rx,
        map: &map,
        ping,
        pong,
        locked_ping,
        locked_pong,
        ping_lock,
        msg_seq: 0,
        spin_seq: 0,
        payload: [b'i'; PAYLOAD],
        back: [0; PAYLOAD],
        buf: Vec::with_capacity(PAYLOAD),
    };
    let result = s.measure(d);
    // Whichever mode the echo is in: the words end the floor modes, the message ring mode.
    // Release: pairs with the echo's Acquire loads of the ping words.
    ping.store(STOP, Ordering::Release);
    locked_ping.store(STOP, Ordering::Release);
    let told = s.ping_tx.write(b"stop");
    let finished = finish(child);
    let r = result?;
    told?;
    finished?;
    Ok(r)
}

/// Whether the echo left floor mode to go back to the ring, or was told to stop.
enum Left {
    Switch,
    Stop,
}

/// The echo's floor mode: the floor case's echo loop, until [`SWITCH`] or [`STOP`]; with
/// `lock`, the locked floor's (each answer stored under it).
fn floor_echo(
    map: &MemMap,
    ping: &AtomicU64,
    pong: &AtomicU64,
    lock: Option<&SharedMutex<'_>>,
) -> BenchResult<Left> {
    let mut buf = [0u8; PAYLOAD];
    // The parent stores SWITCH before it sends `spin`, and pings only after.
    let mut last = SWITCH;
    let mut spins = 0u32;
    loop {
        // Acquire: pairs with the parent's Release stores of PING_SEQ.
        let s = ping.load(Ordering::Acquire);
        spins = spins.wrapping_add(1);
        if s == STOP || (spins % 4096 == 0 && stop_requested()) {
            return Ok(Left::Stop);
        }
        if s == last {
            std::hint::spin_loop();
            continue;
        }
        if s == SWITCH {
            // Release: pairs with the parent's Acquire load of PONG_SEQ in `wait_pong`.
            pong.store(SWITCH, Ordering::Release);
            return Ok(Left::Switch);
        }
        map.read_at(PING_DATA, &mut buf)?;
        let held = lock.map(SharedMutex::lock).transpose()?;
        map.write_at(PONG_DATA, &buf)?;
        // Release: publishes the echoed payload; pairs with the parent's Acquire load.
        pong.store(s, Ordering::Release);
        drop(held);
        last = s;
    }
}

/// The echo process: `names` are the FWD ring, the REV ring and the floor's block.
pub(crate) fn peer(policy: &str, names: &[String], say_ready: impl Fn()) -> BenchResult<()> {
    let [fwd, rev, spin] = names else {
        return Err(format!("interleave-echo wants 3 share names, got {}", names.len()).into());
    };
    let (wait, _) = wait_policy(policy)?;
    let opts = QueueOptions::new().wait_policy(wait);
    let mut rx = Reader::attach_with(fwd.as_str(), &opts)?;
    let tx = Writer::attach(rev.as_str())?;
    let map = MemMap::attach(spin.as_str())?;
    let (ping, pong) = (map.atomic_u64(PING_SEQ)?, map.atomic_u64(PONG_SEQ)?);
    let locked_ping = map.atomic_u64(LOCKED_PING + LOCKED_SEQ)?;
    let locked_pong = map.atomic_u64(LOCKED_PONG + LOCKED_SEQ)?;
    // Initialised by the parent before this process was spawned.
    let pong_lock = SharedMutex::at(&map, LOCKED_PONG, false)?;
    say_ready();
    let mut buf = Vec::with_capacity(PAYLOAD);
    while !stop_requested() {
        if let Received::Message { .. } = rx.read_into(&mut buf, Duration::from_millis(5))? {
            match buf.as_slice() {
                b"stop" => return Ok(()),
                b"spin" => {
                    if let Left::Stop = floor_echo(&map, ping, pong, None)? {
                        return Ok(());
                    }
                }
                b"spin-locked" => {
                    let lock = Some(&pong_lock);
                    if let Left::Stop = floor_echo(&map, locked_ping, locked_pong, lock)? {
                        return Ok(());
                    }
                }
                _ => {
                    tx.write(&buf)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(samples: Vec<f64>) -> Latency {
        Latency {
            name: "x".into(),
            group: "g",
            payload: "p".into(),
            samples_us: samples,
        }
    }

    #[test]
    fn summary_reports_per_pair_ratios_and_both_tails() {
        let i = Interleaved {
            memmsg: latency((1..=1000).map(f64::from).collect()),
            floor: latency((1..=1000).rev().map(|x| f64::from(x) / 2.0).collect()),
            locked: latency((1..=1000).rev().map(|x| f64::from(x) / 4.0).collect()),
            pairs: vec![
                (2.0, 1.0, 1.5),
                (3.0, 1.0, 2.0),
                (1.0, 1.0, 1.0),
                (4.0, 2.0, 4.0),
            ],
            stalls: 2,
            stall_secs: 0.2,
        };
        let (s, [m, f, l]) = Summary::of(i);
        // Sorted rows for the latency table.
        assert_eq!(m.samples_us.first(), Some(&1.0));
        assert_eq!(f.samples_us.first(), Some(&0.5));
        assert_eq!(l.samples_us.first(), Some(&0.25));
        assert_eq!(s.ratios, [2.0, 3.0, 1.0, 2.0]);
        assert_eq!(s.locked_ratios, [1.5, 2.0, 1.0, 2.0]);
        assert_eq!(s.memmsg_locked_ratios, [2.0 / 1.5, 1.5, 1.0, 1.0]);
        assert_eq!(s.ratio_median(), 2.0);
        assert_eq!(s.ratio_quartiles(), (2.0, 3.0));
        assert_eq!(
            (s.memmsg.p50, s.memmsg.p99, s.memmsg.p999),
            (501.0, 991.0, 1000.0)
        );
        assert_eq!(s.floor.p50, 250.5);
        let text = s.text();
        assert!(
            text.contains(
                "interleaved: memmsg round trip p50 501.000 µs, floor p50 250.500 µs, \
                 per-slice p50 ratio median 2.00 (slices: 4, middle half 2.00–3.00)"
            ),
            "{text}"
        );
        assert!(text.contains("(p99.9 ÷ p99 1.01)"), "{text}");
        assert!(
            text.contains(
                "p50 125.250 µs, per-slice p50 ratio to the floor median 1.75 (middle half \
                 1.50–2.00); memmsg ÷ locked floor median 1.17 (middle half 1.00–1.50)"
            ),
            "{text}"
        );
        assert!(!text.contains("note:"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&s.json()).expect("valid JSON");
        assert_eq!(v["slices"], 4);
        assert_eq!(v["slices_memmsg_below_floor"], 0);
        assert_eq!(v["p50_ratio_median"], 2.0);
        assert_eq!(v["memmsg"]["p999_us"], 1000.0);
        assert_eq!(v["floor"]["samples"], 1000);
        assert_eq!(v["p50_ratios"].as_array().map(Vec::len), Some(4));
        assert_eq!(v["memmsg_row"], MEMMSG_ROW);
        assert_eq!(v["locked_floor_row"], LOCKED_ROW);
        assert_eq!(v["locked_floor_over_floor_median"], 1.75);
        assert_eq!(v["locked_floor"]["p50_us"], 125.25);
        // 2 stalls in 0.2 s: 10 a second; 2 × 10 × 501 µs = 0.01002.
        assert!(
            text.contains(
                "machine stalls over 1 µs (a clock-reading slice in each group, the echo \
                 spinning): 10 per second; a memmsg round trip of the p50 meets one with a \
                 probability of about 1.002 %"
            ),
            "{text}"
        );
        assert_eq!(v["machine_stalls_per_sec"], 10.0);
        assert!(
            (v["memmsg_stall_probability"].as_f64().expect("a number") - 0.01002).abs() < 1e-12,
            "{v}"
        );
    }

    #[test]
    fn slices_where_memmsg_beats_the_floor_are_counted_and_explained() {
        let (s, _) = Summary::of(Interleaved {
            memmsg: latency(vec![1.0]),
            floor: latency(vec![1.0]),
            locked: latency(vec![1.0]),
            pairs: vec![(2.0, 1.0, 1.5), (45.0, 800.0, 900.0), (50.0, 700.0, 800.0)],
            stalls: 0,
            stall_secs: 0.06,
        });
        assert_eq!(s.below_floor(), 2);
        assert!(s.text().contains("note: in 2 of 3 slices"), "{}", s.text());
        let v: serde_json::Value = serde_json::from_str(&s.json()).expect("valid JSON");
        assert_eq!(v["slices_memmsg_below_floor"], 2);
    }

    #[test]
    fn p50_uses_the_index_rule_and_no_pairs_give_null() {
        assert_eq!(p50(&mut [3.0, 1.0, 2.0, 4.0]), 3.0);
        assert_eq!(p50(&mut [5.0]), 5.0);
        let (s, _) = Summary::of(Interleaved {
            memmsg: latency(vec![]),
            floor: latency(vec![]),
            locked: latency(vec![]),
            pairs: vec![],
            stalls: 0,
            stall_secs: 0.0,
        });
        let v: serde_json::Value = serde_json::from_str(&s.json()).expect("valid JSON");
        assert!(v["p50_ratio_median"].is_null(), "{v}");
        assert!(v["memmsg"]["p999_over_p99"].is_null(), "{v}");
        assert!(v["memmsg_over_locked_floor_median"].is_null(), "{v}");
        assert!(v["machine_stalls_per_sec"].is_null(), "{v}");
    }
}
