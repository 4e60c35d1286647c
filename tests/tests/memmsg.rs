//! memmsg/memcmd reader and writer behaviour, including the libmembus weaknesses W4, W5
//! and W17 fixed without changing the wire format.

use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{ErrorKind, QueueOptions, Received, Start};
use membus_tests::{le_i64, msg, share_bytes, ShmGuard};

#[test]
fn w4_a_message_that_could_never_be_read_is_refused_at_write_time() {
    let g = ShmGuard::new("w4");
    let w = Writer::create(g.name(), 128).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    assert_eq!(w.max_message_len(), 112);
    // libmembus accepts 120 bytes into S=128 (len < S) and every reader then fails.
    let e = w.write(&[7u8; 120]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(e.sizes(), Some((112, 120)));
    assert_eq!(w.seq(), 0, "nothing was written");
    let big = vec![9u8; 112];
    assert_eq!(w.write(&big).unwrap(), 1);
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Message {
            seq: 1,
            payload: big
        }
    );
}

#[test]
fn w5a_readers_start_at_the_latest_message_unless_asked_for_the_oldest() {
    let g = ShmGuard::new("w5a");
    let w = Writer::create(g.name(), 1024).unwrap();
    w.write(b"old-1").unwrap();
    w.write(b"old-2").unwrap();
    let mut latest = Reader::attach(g.name()).unwrap();
    let mut oldest =
        Reader::attach_with(g.name(), &QueueOptions::new().start(Start::Oldest)).unwrap();
    w.write(b"new").unwrap();
    assert_eq!(latest.read(Duration::ZERO).unwrap(), msg(3, "new"));
    assert_eq!(latest.read(Duration::ZERO).unwrap(), Received::Timeout);
    let all: Vec<_> = oldest.try_iter().map(|x| x.unwrap()).collect();
    assert_eq!(all, vec![msg(1, "old-1"), msg(2, "old-2"), msg(3, "new")]);
}

/// S = 128 holds exactly four frames of 16-byte payloads (stride 32).
fn four_slot_ring(tag: &str) -> (ShmGuard, Writer, Reader) {
    let g = ShmGuard::new(tag);
    let w = Writer::create(g.name(), 128).unwrap();
    let r = Reader::attach(g.name()).unwrap();
    (g, w, r)
}

fn m16(i: u64) -> Vec<u8> {
    format!("message-{i:08}").into_bytes()
}

#[test]
fn w5b_an_exact_lap_onto_the_readers_offset_is_an_overrun_not_empty() {
    let (g, w, mut r) = four_slot_ring("w5b");
    w.write(&m16(1)).unwrap();
    assert_eq!(r.read(Duration::ZERO).unwrap().message().unwrap(), m16(1)); // r at 32
    for i in 2..=5 {
        w.write(&m16(i)).unwrap(); // 32, 64, 96, then wrap to 0: write offset = 32 again
    }
    assert_eq!(
        le_i64(&share_bytes(g.name()), 8),
        32,
        "the writer landed exactly on the reader"
    );
    assert!(r.poll(), "poll sees the lap through the global seq");
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Overrun { lost: 4 }
    );
    w.write(&m16(6)).unwrap();
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Message {
            seq: 6,
            payload: m16(6)
        }
    );
}

#[test]
fn w5c_a_read_position_at_exactly_the_capacity_keeps_gap_detection() {
    let (_g, w, mut r) = four_slot_ring("w5c");
    for i in 1..=4 {
        w.write(&m16(i)).unwrap();
    }
    for i in 1..=4 {
        assert_eq!(r.read(Duration::ZERO).unwrap().message().unwrap(), m16(i));
    }
    // The reader stands at offset 128 = S. The next frame wraps to 0 and is delivered.
    w.write(&m16(5)).unwrap();
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Message {
            seq: 5,
            payload: m16(5)
        }
    );
    for i in 6..=8 {
        w.write(&m16(i)).unwrap();
    }
    for i in 6..=8 {
        assert_eq!(r.read(Duration::ZERO).unwrap().message().unwrap(), m16(i));
    }
    // At S again; now the writer laps: 9..=12 fill the ring, 13 wraps.
    for i in 9..=13 {
        w.write(&m16(i)).unwrap();
    }
    // libmembus resets L here and silently delivers 13 as if nothing was lost.
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Overrun { lost: 5 }
    );
    assert_eq!(r.read(Duration::ZERO).unwrap(), Received::Timeout);
}

#[test]
fn overrun_counts_what_was_skipped_and_resumes_at_the_newest() {
    let g = ShmGuard::new("overrun");
    let w = Writer::create(g.name(), 256).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    for i in 1..=40u64 {
        w.write(format!("{i}").as_bytes()).unwrap();
    }
    let got = r.read(Duration::ZERO).unwrap();
    assert_eq!(got, Received::Overrun { lost: 40 });
    let e = got.into_result().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overrun);
    assert_eq!(e.code(), 12);
    w.write(b"41").unwrap();
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(41, "41"));
}

#[test]
fn blocking_read_wakes_on_a_write_from_another_thread_and_times_out_otherwise() {
    let g = ShmGuard::new("block");
    let w = Writer::create(g.name(), 4096).unwrap();
    // No spin: the reader must be woken through the condition.
    let mut r = Reader::attach_with(g.name(), &QueueOptions::new().spin(Duration::ZERO)).unwrap();
    let t = Instant::now();
    let got = r.read(Duration::from_millis(50)).unwrap();
    assert_eq!(got, Received::Timeout);
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "a timed read waits its whole timeout"
    );
    assert_eq!(got.into_result().unwrap_err().kind(), ErrorKind::Timeout);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            w.write(b"wake").unwrap();
        });
        assert_eq!(r.read(Duration::from_secs(10)).unwrap(), msg(1, "wake"));
    });
}

#[test]
fn read_into_reuses_the_buffer_and_read_to_slice_keeps_a_message_that_does_not_fit() {
    let g = ShmGuard::new("bufs");
    let w = Writer::create(g.name(), 4096).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    w.write(b"0123456789").unwrap();
    w.write(b"abc").unwrap();
    let mut small = [0u8; 4];
    let e = r.read_to_slice(&mut small, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(e.sizes(), Some((10, 4)));
    let mut big = [0u8; 64];
    assert_eq!(
        r.read_to_slice(&mut big, Duration::ZERO).unwrap(),
        Received::Message {
            seq: 1,
            payload: 10
        }
    );
    assert_eq!(&big[..10], b"0123456789");
    let mut v = Vec::with_capacity(64);
    let cap = v.capacity();
    assert_eq!(
        r.read_into(&mut v, Duration::ZERO).unwrap(),
        Received::Message { seq: 2, payload: 3 }
    );
    assert_eq!(v, b"abc");
    assert_eq!(v.capacity(), cap, "no reallocation");
}

#[test]
fn memcmd_handles_all_write_and_each_reads_everything() {
    let g = ShmGuard::new("cmd-many");
    let mut a = MemCmd::create(g.name(), 4096).unwrap();
    let mut b = MemCmd::attach(g.name()).unwrap();
    let c = MemCmd::attach_with(g.name(), &QueueOptions::new().register_reader(false)).unwrap();
    assert_eq!(a.reader_count(), 2);
    assert_eq!(a.write(b"from-a").unwrap(), 1);
    assert_eq!(b.write(b"from-b").unwrap(), 2);
    assert_eq!(c.write(b"from-c").unwrap(), 3);
    for h in [&mut a, &mut b] {
        let got: Vec<_> = h.try_iter().map(|x| x.unwrap()).collect();
        assert_eq!(
            got,
            vec![msg(1, "from-a"), msg(2, "from-b"), msg(3, "from-c")]
        );
    }
    assert_eq!(a.session_id(), b.session_id());
    drop(b);
    assert_eq!(a.reader_count(), 1);
}

#[test]
fn open_or_create_attaches_to_an_existing_share_and_checks_its_capacity() {
    let g = ShmGuard::new("ooc");
    let r = Reader::open_or_create(g.name(), 512).unwrap();
    let w = Writer::open_or_create(g.name(), 512).unwrap();
    assert!(!w.is_creator());
    assert_eq!(r.session_id(), w.session_id());
    let e = Writer::open_or_create(g.name(), 1024).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::SizeMismatch);
    assert_eq!(e.sizes(), Some((1024, 512)));
    drop(w);
    drop(r);
    assert!(
        !std::path::Path::new(&format!("/dev/shm{}", g.name())).exists(),
        "the creating reader removed it"
    );
}

/// Every waiting policy delivers a message written while the reader waits (in each phase:
/// during the spin, the yield phase and, for those that sleep, after it) and returns
/// `Timeout` after the whole timeout when nothing comes; the same for a memcmd reader.
#[test]
fn every_wait_policy_delivers_and_times_out() {
    use membus::WaitPolicy;
    let policies = [
        WaitPolicy::default(),
        WaitPolicy::Spin(Duration::from_micros(50)),
        WaitPolicy::Spin(Duration::ZERO),
        WaitPolicy::SpinYield {
            spin: Duration::from_micros(10),
            yield_for: Duration::from_millis(5),
        },
        WaitPolicy::BusyPoll,
    ];
    for policy in policies {
        let g = ShmGuard::new("policy");
        let w = Writer::create(g.name(), 4096).unwrap();
        let opts = QueueOptions::new().wait_policy(policy);
        let mut r = Reader::attach_with(g.name(), &opts).unwrap();
        let t = Instant::now();
        assert_eq!(
            r.read(Duration::from_millis(30)).unwrap(),
            Received::Timeout,
            "{policy:?}"
        );
        assert!(t.elapsed() >= Duration::from_millis(30), "{policy:?}");
        let mut seq = 0;
        for delay_us in [0u64, 2_000, 30_000] {
            std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(Duration::from_micros(delay_us));
                    w.write(b"hi").unwrap();
                });
                seq += 1;
                // The longest timeout there is must work too (no Instant overflow).
                let timeout = if delay_us == 2_000 {
                    Duration::MAX
                } else {
                    Duration::from_secs(10)
                };
                assert_eq!(
                    r.read(timeout).unwrap(),
                    msg(seq, "hi"),
                    "{policy:?} after {delay_us} µs"
                );
            });
        }
        let gc = ShmGuard::new("policy-cmd");
        let mut cmd = MemCmd::create_with(gc.name(), 4096, &opts).unwrap();
        let sender = MemCmd::attach(gc.name()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(1));
                sender.write(b"cmd").unwrap();
            });
            assert_eq!(
                cmd.read(Duration::from_secs(10)).unwrap(),
                msg(1, "cmd"),
                "{policy:?}"
            );
        });
    }
}

#[test]
fn writers_taking_turns_place_every_frame_where_the_spec_says() {
    // Each write places its frame before the lock from where its own handle's last write
    // ended, and re-places it under the lock when the header says otherwise (another
    // handle wrote meanwhile, or this is its first write). Two handles taking turns in an
    // irregular order, with sizes that wrap the ring at changing places, must leave the
    // header exactly where the spec's writer algorithm puts it, and every message intact.
    let g = ShmGuard::new("turns");
    const S: usize = 256;
    let a = Writer::create(g.name(), S).unwrap();
    let b = Writer::attach(g.name()).unwrap();
    let mut r = Reader::attach_with(g.name(), &QueueOptions::new().start(Start::Oldest)).unwrap();
    let mut w_model = 0usize;
    let mut buf = Vec::new();
    for i in 0..200u64 {
        // Mostly runs of one handle (its guess holds), now and then the other (it does not).
        let writer = if (i / 3) % 4 == 1 || i % 7 == 0 {
            &b
        } else {
            &a
        };
        let len = 1 + (i as usize * 37) % 90;
        let body: Vec<u8> = (0..len).map(|k| (i as usize + k) as u8).collect();
        assert_eq!(writer.write(&body).unwrap(), i + 1);
        let stride = (16 + len).div_ceil(8) * 8;
        let at = if w_model + stride <= S { w_model } else { 0 };
        w_model = at + stride;
        let bytes = share_bytes(g.name());
        assert_eq!(
            le_i64(&bytes, 8),
            w_model as i64,
            "write offset after write {i}"
        );
        assert_eq!(
            le_i64(&bytes, 16),
            i as i64 + 1,
            "global seq after write {i}"
        );
        assert_eq!(
            r.read_into(&mut buf, Duration::ZERO).unwrap(),
            Received::Message {
                seq: i + 1,
                payload: len
            },
            "message {i}"
        );
        assert_eq!(buf, body, "payload of message {i}");
    }
}
