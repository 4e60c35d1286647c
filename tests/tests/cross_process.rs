//! memmsg and memcmd between real processes: delivery accounting, many writers, and peers
//! that die holding the share's lock.

use std::io::BufReader;
use std::process::Child;
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received};
use membus_tests::{msg, peer_bin, ShmGuard};

fn spawn(args: &[&str]) -> Child {
    membus_tests::spawn(&peer_bin!(), args)
}

fn line(child: &mut Child) -> String {
    membus_tests::first_line(child)
}

fn wait_ok(mut child: Child) -> String {
    let out = child.stdout.take();
    let status = child.wait().expect("wait child");
    let mut rest = String::new();
    if let Some(out) = out {
        let _ = std::io::Read::read_to_string(&mut BufReader::new(out), &mut rest);
    }
    assert!(status.success(), "child failed: {status}; stdout: {rest}");
    rest.trim().to_string()
}

fn parse_summary(s: &str) -> (u64, u64, u64) {
    let mut it = s.split_whitespace().map(|kv| {
        kv.split_once('=')
            .expect("k=v")
            .1
            .parse::<u64>()
            .expect("number")
    });
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

/// Two reader processes account for every message `writer_role` writes into a ring of
/// `capacity` bytes: each delivered intact and in order, or reported lost. `pause_every`
/// (0: never) has the writer sleep 50 µs after that many messages, so that readers of a
/// small ring deliver some messages as well as lose some.
fn two_readers_account_for_every_message(
    tag: &str,
    capacity: usize,
    writer_role: &str,
    pause_every: u64,
) {
    const COUNT: u64 = 200_000;
    let g = ShmGuard::new(tag);
    // The test process owns the share; the children attach.
    let _owner = Writer::create(g.name(), capacity).unwrap();
    let mut readers: Vec<Child> = (0..2)
        .map(|_| spawn(&["msg-read", g.name(), &COUNT.to_string()]))
        .collect();
    for r in &mut readers {
        assert_eq!(line(r), "ready");
    }
    let writer = spawn(&[
        writer_role,
        g.name(),
        &COUNT.to_string(),
        &pause_every.to_string(),
    ]);
    wait_ok(writer);
    for r in readers {
        let (delivered, lost, overruns) = parse_summary(&wait_ok(r));
        assert_eq!(
            delivered + lost,
            COUNT,
            "every sequence number is delivered or reported lost"
        );
        assert!(delivered > 0);
        assert_eq!(lost > 0, overruns > 0);
        eprintln!("reader: delivered {delivered}, lost {lost} in {overruns} overruns");
    }
}

#[test]
fn one_writer_two_readers_account_for_every_message() {
    two_readers_account_for_every_message("xproc-msg", 64 * 1024, "msg-write", 64);
}

/// Readers read without the lock while the writer laps a 4 KiB ring about every 25
/// messages: whatever they deliver must be intact (`msg-read` checks each payload).
#[test]
fn lock_free_readers_stay_exact_while_a_writer_laps_a_small_ring() {
    two_readers_account_for_every_message("xproc-msg-small", 4096, "msg-write", 16);
}

/// The same against a writer that stores in libmembus's order (global seq first, the write
/// offset set to 0 before a wrapped frame is written).
#[test]
fn lock_free_readers_stay_exact_against_a_libmembus_order_writer() {
    two_readers_account_for_every_message("xproc-msg-foreign", 4096, "foreign-msg-write", 16);
}

/// A `membus-peer` child holding the memmsg `name`'s mutex until its stdin closes.
fn hold_lock(name: &str) -> Child {
    let mut holder = std::process::Command::new(peer_bin!())
        .args(["lock-and-hold", name, "32"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn membus-peer");
    assert_eq!(line(&mut holder), "locked");
    holder
}

/// A writer stalled mid-write (the lock held by a peer, the stores done by this test as a
/// writer of either library makes them) has wrapped to 0 and overwritten part of the unread
/// message 2 — all but its header, whose bytes happen to be rewritten unchanged. The reader
/// must not deliver message 2 from that state: it may only wait for the lock (and time out
/// here), never hand out the torn bytes. A libmembus writer has bumped the global seq and
/// set W = 0 first, so its frame carries the seq the reader sees; a membus writer publishes
/// both after the frame, whose header carries the next seq.
fn reader_never_takes_a_message_being_overwritten(libmembus_order: bool) {
    let g = ShmGuard::new("xproc-torn");
    let w = Writer::create(g.name(), 4096).unwrap();
    let opts = QueueOptions::new().lock_timeout(Duration::from_millis(200));
    let mut r = Reader::attach_with(g.name(), &opts).unwrap();
    w.write(&[b'a'; 1000]).unwrap(); // at 0..1016
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(1, &"a".repeat(1000)));
    w.write(&[b'b'; 2000]).unwrap(); // at 1016..3032, unread
    let mut holder = hold_lock(g.name());
    // Message 3 (2000 bytes) does not fit after 3032: the writer marks the wrap and writes
    // the frame at 0; it has copied 2500 payload bytes so far.
    let raw = membus_tests::RawShare::open(g.name()).unwrap();
    raw.put_i64(RING + 3032, 0);
    if libmembus_order {
        raw.put_i64(16, 3);
        raw.put_i64(8, 0);
    }
    raw.put_i64(RING + 8, 3);
    raw.put_i64(RING, 2000);
    let mut torn = vec![b'c'; 2500];
    // Message 2's header lies at ring offset 1016, payload byte 1000 of message 3.
    torn[1000..1008].copy_from_slice(&2000i64.to_le_bytes());
    torn[1008..1016].copy_from_slice(&2i64.to_le_bytes());
    for (i, b) in torn.iter().enumerate() {
        // SAFETY: inside the mapping (`at` panics otherwise); a volatile store, as another
        // process's copy is to this one.
        unsafe { std::ptr::write_volatile(raw.at(RING + 16 + i), *b) };
    }
    match r.read(Duration::ZERO) {
        Err(e) => assert_eq!(e.kind(), membus::ErrorKind::LockTimeout, "{e}"),
        Ok(got) => assert_eq!(got, msg(2, &"b".repeat(2000)), "torn bytes delivered"),
    }
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
}

#[test]
fn a_reader_never_takes_a_message_a_libmembus_writer_is_overwriting() {
    reader_never_takes_a_message_being_overwritten(true);
}

#[test]
fn a_reader_never_takes_a_message_a_membus_writer_is_overwriting() {
    reader_never_takes_a_message_being_overwritten(false);
}

/// Ring offset of a memmsg's data area, and the stride of a 1000-byte message's frame.
const RING: usize = 120;
const STRIDE_1000: usize = 1016;

/// A 4 KiB memmsg whose reader has read messages 1–4 (1000 bytes each, frames at 0, 1016,
/// 2032 and 3048), so the next frame wraps to 0. Returns the guard, writer and reader.
fn wrapped_ring(tag: &str) -> (ShmGuard, Writer, Reader) {
    let g = ShmGuard::new(tag);
    let w = Writer::create(g.name(), 4096).unwrap();
    let opts = QueueOptions::new().lock_timeout(Duration::from_millis(200));
    let mut r = Reader::attach_with(g.name(), &opts).unwrap();
    for i in 1..=4u64 {
        w.write(&[b'0' + i as u8; 1000]).unwrap();
        assert_eq!(
            r.read(Duration::ZERO).unwrap(),
            msg(i, &format!("{i}").repeat(1000))
        );
    }
    let raw = membus_tests::RawShare::open(g.name()).unwrap();
    assert_eq!(
        raw.get_i64(8),
        4 * STRIDE_1000 as i64,
        "write offset after four frames"
    );
    (g, w, r)
}

/// The newest message sitting at ring offset 0, once a write that wrapped is published, is
/// read without the lock too (about once per lap in a stream; under the lock it cost a
/// futex sleep whenever the writer still held it).
#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "lock-free reads are x86-64 only; elsewhere readers take the lock"
)]
fn the_newest_message_at_offset_0_is_read_without_the_lock() {
    let (g, w, mut r) = wrapped_ring("xproc-wrap0");
    w.write(&[b'5'; 1000]).unwrap();
    let raw = membus_tests::RawShare::open(g.name()).unwrap();
    assert_eq!(raw.get_i64(8), STRIDE_1000 as i64, "message 5 wrapped to 0");
    let mut holder = hold_lock(g.name());
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(5, &"5".repeat(1000)));
    assert_eq!(r.read(Duration::ZERO).unwrap(), Received::Timeout);
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
}

/// The same place in the ring while a libmembus writer is still writing message 5 there
/// (W moved to 0, the global seq bumped, the frame header and half the payload stored,
/// the lock held): the reader, which wants exactly that message, must wait for the lock
/// (and time out here) rather than take the half-written frame for the newest one. Once
/// the write is finished (W past the frame), it reads message 5 whole, the lock still held.
#[test]
fn a_message_a_libmembus_writer_is_still_writing_at_offset_0_is_not_read() {
    let (g, _w, mut r) = wrapped_ring("xproc-wrap0-busy");
    let raw = membus_tests::RawShare::open(g.name()).unwrap();
    let mut holder = hold_lock(g.name());
    let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let store = |from: usize, to: usize| {
        for (i, b) in body.iter().enumerate().take(to).skip(from) {
            // SAFETY: inside the mapping (`at` panics otherwise); a volatile store, as
            // another process's copy is to this one.
            unsafe { std::ptr::write_volatile(raw.at(RING + 16 + i), *b) };
        }
    };
    // libmembus 2.1's order (see the `foreign-msg-write` peer role): the wrap marker, W = 0,
    // the global seq, the frame's length and seq, then the payload.
    raw.put_i64(RING + 4 * STRIDE_1000, 0);
    raw.put_i64(8, 0);
    raw.put_i64(16, 5);
    raw.put_i64(RING, 1000);
    raw.put_i64(RING + 8, 5);
    store(0, 500);
    match r.read(Duration::ZERO) {
        Err(e) => assert_eq!(e.kind(), membus::ErrorKind::LockTimeout, "{e}"),
        Ok(got) => panic!("a half-written message was delivered: {got:?}"),
    }
    store(500, 1000);
    raw.put_i64(8, STRIDE_1000 as i64);
    raw.put_i64(RING + STRIDE_1000, 0);
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        msg(5, std::str::from_utf8(&body).unwrap())
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
}

/// A reader reads what is published without the lock: a peer holding the lock (a writer
/// stalled mid-write, say) delays writers, not readers.
#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "lock-free reads are x86-64 only; elsewhere readers take the lock"
)]
fn readers_do_not_wait_for_a_peer_holding_the_lock() {
    let g = ShmGuard::new("xproc-held");
    let w = Writer::create(g.name(), 4096).unwrap();
    let opts = QueueOptions::new().lock_timeout(Duration::from_millis(300));
    let mut r = Reader::attach_with(g.name(), &opts).unwrap();
    for i in 1..=3u64 {
        w.write(format!("m{i}").as_bytes()).unwrap();
    }
    let mut holder = hold_lock(g.name());
    for i in 1..=3u64 {
        assert_eq!(r.read(Duration::ZERO).unwrap(), msg(i, &format!("m{i}")));
    }
    assert_eq!(
        r.read(Duration::from_millis(20)).unwrap(),
        Received::Timeout
    );
    // The writer does wait for the lock, and says so.
    let err = Writer::attach_with(g.name(), &opts)
        .unwrap()
        .write(b"m4")
        .unwrap_err();
    assert_eq!(err.kind(), membus::ErrorKind::LockTimeout, "{err}");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
}

#[test]
fn four_writer_processes_one_reader_nothing_lost_or_duplicated() {
    const PER: u64 = 5_000;
    let g = ShmGuard::new("xproc-cmd");
    // 20,000 frames of at most 32 bytes fit in 1 MiB: nothing may be lost.
    let mut rx = MemCmd::create(g.name(), 1 << 20).unwrap();
    let writers: Vec<Child> = (0..4)
        .map(|id| spawn(&["cmd-write", g.name(), &id.to_string(), &PER.to_string()]))
        .collect();
    let mut next = [0u64; 4];
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().sum::<u64>() < 4 * PER {
        assert!(Instant::now() < deadline, "stalled at {next:?}");
        match rx.read(Duration::from_secs(5)).unwrap() {
            Received::Message { seq, payload } => {
                let text = String::from_utf8(payload).unwrap();
                let (id, i) = text.split_once(':').unwrap();
                let (id, i): (usize, u64) = (id.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[id], "writer {id}: out of order or duplicated");
                next[id] += 1;
                seqs.push(seq);
            }
            Received::Timeout => panic!("timeout at {next:?}"),
            Received::Overrun { lost } => panic!("overrun lost {lost} with a ring large enough"),
        }
    }
    for w in writers {
        wait_ok(w);
    }
    assert_eq!(
        seqs,
        (1..=4 * PER).collect::<Vec<_>>(),
        "global sequence numbers are dense and ordered"
    );
    assert_eq!(rx.read(Duration::ZERO).unwrap(), Received::Timeout);
    assert_eq!(rx.reader_count(), 1, "unregistered writers are not counted");
}

fn kill_holding_lock(name: &str, mutex_offset: usize) {
    membus_tests::kill_holding_lock(&peer_bin!(), name, mutex_offset);
}

#[test]
fn a_peer_killed_holding_the_lock_does_not_stop_writers_or_readers() {
    let g = ShmGuard::new("xproc-dead-msg");
    // A short lock deadline, so a failure shows as an error rather than a 5 s stall.
    let opts = QueueOptions::new().lock_timeout(Duration::from_millis(500));
    let w = Writer::create_with(g.name(), 4096, &opts).unwrap();
    let mut r = Reader::attach_with(g.name(), &opts).unwrap();
    w.write(b"before").unwrap();
    kill_holding_lock(g.name(), 32);
    let t = Instant::now();
    assert_eq!(w.write(b"after").unwrap(), 2);
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(1, "before"));
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(2, "after"));
    eprintln!("recovered from a dead lock holder in {:?}", t.elapsed());

    // A reader is next to find the owner dead.
    kill_holding_lock(g.name(), 32);
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Timeout,
        "the empty check needs no lock"
    );
    w.write(b"again").unwrap();
    kill_holding_lock(g.name(), 32);
    assert_eq!(r.read(Duration::from_secs(1)).unwrap(), msg(3, "again"));

    let g2 = ShmGuard::new("xproc-dead-cmd");
    let mut c = MemCmd::create_with(g2.name(), 4096, &opts).unwrap();
    kill_holding_lock(g2.name(), 40);
    c.write(b"cmd").unwrap();
    assert_eq!(c.read(Duration::ZERO).unwrap().message().unwrap(), b"cmd");
}

#[test]
fn a_writer_killed_mid_write_leaves_no_torn_message_and_no_gap() {
    let g = ShmGuard::new("xproc-midwrite");
    let w = Writer::create(g.name(), 4096).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    w.write(b"one").unwrap();
    let mut child = spawn(&["die-mid-write", g.name()]);
    assert_eq!(line(&mut child), "dying");
    assert!(!child.wait().unwrap().success());
    // Recovery un-issues the dead writer's sequence number: the next message is seq 2.
    assert_eq!(w.write(b"two").unwrap(), 2);
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(1, "one"));
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(2, "two"));
    assert_eq!(r.read(Duration::ZERO).unwrap(), Received::Timeout);
}
