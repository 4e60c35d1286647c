//! A process blocked in `select` with nothing arriving stays asleep. Alone in its own test
//! binary, so the process-wide counters below see only this test.

use std::time::Duration;

use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::memvid::VideoReader;
use membus::select::select;
use membus_tests::ShmGuard;

/// (voluntary context switches, CPU time) of the whole process so far. Only voluntary
/// switches count wake-ups; involuntary ones measure how busy the machine is.
fn usage() -> (i64, Duration) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid and writable; RUSAGE_SELF always exists.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (u.ru_nvcsw, tv(u.ru_utime) + tv(u.ru_stime))
}

#[test]
fn an_idle_select_over_three_kinds_of_share_sleeps() {
    let (gm, gk, gv) = (
        ShmGuard::new("idle-m"),
        ShmGuard::new("idle-k"),
        ShmGuard::new("idle-v"),
    );
    let _w = Writer::create(gm.name(), 4096).unwrap();
    let r = Reader::attach(gm.name()).unwrap();
    let kv = MemKv::create_named(gk.name(), &["a"], 4, 16).unwrap();
    let watch = kv.watch();
    let _vw = membus_tests::tiny_video(gv.name());
    let vr = VideoReader::attach(gv.name()).unwrap();
    // Warm up: companions and registries in place, pages touched.
    assert_eq!(select(&[&r, &watch, &vr], Duration::from_millis(50)), None);

    let idle = Duration::from_secs(2);
    let (switches0, cpu0) = usage();
    assert_eq!(select(&[&r, &watch, &vr], idle), None);
    let (switches1, cpu1) = usage();
    let switches = switches1 - switches0;
    let cpu = cpu1 - cpu0;
    eprintln!("idle select for {idle:?}: {switches} context switches, {cpu:?} CPU");
    // Polling every millisecond, as libmembus's select does, would be ~2,000 wake-ups.
    // Event-driven waiting leaves only the safety-net timeout (growing to 250 ms).
    assert!(
        switches < 200,
        "{switches} context switches in {idle:?} of idle select"
    );
}
