//! 1,000 idle async readers in one process cost no CPU of their own: alone in its test
//! binary, so the process-wide counters see only this test.

use std::time::Duration;

use membus::memmsg::{Reader, Writer};
use membus_tests::ShmGuard;

fn usage() -> (i64, Duration) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid and writable; RUSAGE_SELF always exists.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (u.ru_nvcsw + u.ru_nivcsw, tv(u.ru_utime) + tv(u.ru_stime))
}

#[test]
fn a_thousand_idle_async_readers_sleep() {
    let g = ShmGuard::new("aio-idle");
    let w = Writer::create(g.name(), 1 << 16).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let readers: Vec<Reader> = (0..1000)
        .map(|_| Reader::attach(g.name()).unwrap())
        .collect();
    let (switches, cpu, got) = rt.block_on(async move {
        let tasks: Vec<_> = readers
            .into_iter()
            .map(|mut r| tokio::spawn(async move { r.read_async().await.unwrap().message() }))
            .collect();
        // Let every task reach its wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (s0, c0) = usage();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (s1, c1) = usage();
        w.write(b"wake").unwrap();
        let mut got = 0;
        for t in tasks {
            if t.await.unwrap().as_deref() == Some(&b"wake"[..]) {
                got += 1;
            }
        }
        (s1 - s0, c1 - c0, got)
    });
    eprintln!("1,000 idle async readers for 2 s: {switches} context switches, {cpu:?} CPU");
    assert_eq!(got, 1000, "one write wakes every reader");
    // Polling each reader every millisecond would be ~2,000,000 wake-ups; the reactor's
    // safety net re-reads the one word they share 4 times a second.
    assert!(switches < 200, "{switches} context switches in 2 s");
}
