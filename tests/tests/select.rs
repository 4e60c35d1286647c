//! Readiness waits and `select` over mixed handles: in one process, across processes, and
//! against writers that do not wake (libmembus media writers).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::memvid::VideoReader;
use membus::select::{condition, select, Selectable, Ticker};
use membus::{Next, QueueOptions, Received};
use membus_tests::{first_line, peer_bin, select_source, tiny_video, RawShare, ShmGuard};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn each_handle_waits_until_ready_without_consuming() {
    let (gm, gc, gk, gv) = (
        ShmGuard::new("sel-m"),
        ShmGuard::new("sel-c"),
        ShmGuard::new("sel-k"),
        ShmGuard::new("sel-v"),
    );
    let w = Writer::create(gm.name(), 4096).unwrap();
    let mut r = Reader::attach(gm.name()).unwrap();
    let cmd = MemCmd::create(gc.name(), 4096).unwrap();
    let kv = MemKv::create_named(gk.name(), &["a"], 4, 16).unwrap();
    let mut vw = tiny_video(gv.name());
    let mut vr = VideoReader::attach(gv.name()).unwrap();
    let watch = kv.watch();

    assert!(!r.wait_ready(Duration::from_millis(20)));
    assert!(!cmd.wait_ready(Duration::from_millis(20)));
    assert!(!watch.wait_ready(Duration::from_millis(20)));
    assert!(!vr.wait_ready(Duration::from_millis(20)));

    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            w.write(b"m").unwrap();
            cmd.write(b"c").unwrap();
            kv.set(0, "k").unwrap();
            vw.publish().unwrap();
        });
        assert!(r.wait_ready(LONG));
        assert!(watch.wait_ready(LONG));
        assert!(vr.wait_ready(LONG));
    });
    assert!(cmd.wait_ready(LONG));
    // Waiting consumed nothing.
    assert!(r.wait_ready(Duration::ZERO));
    assert_eq!(r.read(Duration::ZERO).unwrap(), membus_tests::msg(1, "m"));
    assert!(!r.poll());
    assert!(matches!(vr.next().unwrap(), Next::Frame(f) if f.seq() == 1));
    assert!(!vr.poll());
}

#[test]
fn select_returns_the_source_that_became_ready() {
    let (gm, gk, gv) = (
        ShmGuard::new("sel2-m"),
        ShmGuard::new("sel2-k"),
        ShmGuard::new("sel2-v"),
    );
    let w = Writer::create(gm.name(), 4096).unwrap();
    let mut r = Reader::attach(gm.name()).unwrap();
    let kv = MemKv::create_named(gk.name(), &["a"], 4, 16).unwrap();
    let mut vw = tiny_video(gv.name());
    let mut vr = VideoReader::attach(gv.name()).unwrap();
    let mut watch = kv.watch();
    assert_eq!(select(&[&r, &watch, &vr], Duration::from_millis(20)), None);
    for round in 0..60u64 {
        let which = select_source(round);
        std::thread::scope(|s| {
            s.spawn(|| {
                if round % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                match which {
                    0 => drop(w.write(b"x").unwrap()),
                    1 => drop(kv.set(0, round.to_string()).unwrap()),
                    _ => drop(vw.publish().unwrap()),
                }
            });
            assert_eq!(
                select(&[&r, &watch, &vr], LONG),
                Some(which),
                "round {round}"
            );
        });
        match which {
            0 => assert!(matches!(
                r.read(Duration::ZERO).unwrap(),
                Received::Message { .. }
            )),
            1 => assert_eq!(watch.changes().unwrap().changes.len(), 1),
            _ => assert!(matches!(vr.next().unwrap(), Next::Frame(_))),
        }
    }
}

#[test]
fn a_busy_low_index_does_not_starve_higher_ones() {
    let (g0, g1) = (ShmGuard::new("fair-0"), ShmGuard::new("fair-1"));
    let w0 = Writer::create(g0.name(), 1 << 16).unwrap();
    let w1 = Writer::create(g1.name(), 1 << 16).unwrap();
    let mut r0 = Reader::attach(g0.name()).unwrap();
    let mut r1 = Reader::attach(g1.name()).unwrap();
    let stop = AtomicBool::new(false);
    let mut hits = [0u32; 2];
    std::thread::scope(|s| {
        for w in [&w0, &w1] {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    w.write(b"load").unwrap();
                    std::thread::sleep(Duration::from_micros(20));
                }
            });
        }
        // Both sources stay ready: every call finds both with something to read.
        while hits.iter().sum::<u32>() < 400 {
            if !(r0.poll() && r1.poll()) {
                std::thread::yield_now();
                continue;
            }
            let i = select(&[&r0, &r1], LONG).unwrap();
            hits[i] += 1;
            let r = if i == 0 { &mut r0 } else { &mut r1 };
            assert!(!matches!(
                r.read(Duration::ZERO).unwrap(),
                Received::Timeout
            ));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(hits[0] >= 150 && hits[1] >= 150, "served {hits:?}");
}

#[test]
fn tickers_and_conditions_mix_with_handles() {
    let g = ShmGuard::new("sel-tick");
    let _w = Writer::create(g.name(), 4096).unwrap();
    let r = Reader::attach(g.name()).unwrap();
    let mut t = Ticker::new(Duration::from_millis(15));
    let flag = AtomicBool::new(false);
    let c = condition(|| flag.load(Ordering::Relaxed));
    assert_eq!(select(&[&r, &t, &c], LONG), Some(1), "the tick comes first");
    assert!(t.tick() >= 1);
    flag.store(true, Ordering::Relaxed);
    assert_eq!(select(&[&r, &c], LONG), Some(1));
    assert!(c.is_ready());
}

#[test]
fn a_media_writer_that_never_wakes_is_still_seen() {
    // A libmembus writer publishes without any futex wake: emulate it by publishing
    // through a raw mapping, stamp, pointer and sequence, as spec §9 describes.
    let g = ShmGuard::new("sel-nowake");
    let _vw = tiny_video(g.name());
    let vr = VideoReader::attach(g.name()).unwrap();
    // Slot 0's frame seq sits 32 bytes into its slot header (spec §8.2).
    let stamp = vr.layout().frames.slot(0) + 32;
    let started = Instant::now();
    let timeout = Duration::from_secs(120);
    std::thread::scope(|s| {
        s.spawn(|| {
            let raw = RawShare::open(g.name()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            raw.put_i64(40, 1); // libmembus order: seq first (spec §15.7)...
            raw.put_i64(stamp, 1); // ... then the slot's stamp and the pointer.
            raw.put_i64(32, 1);
        });
        assert!(vr.wait_ready(timeout));
    });
    assert!(
        started.elapsed() < timeout / 2,
        "the wait noticed the frame by polling, long before its timeout"
    );
    let mut vr = vr;
    assert!(matches!(vr.next().unwrap(), Next::Frame(f) if f.seq() == 1));
}

#[test]
fn thousands_of_cross_process_events_each_select_the_right_source() {
    const COUNT: u64 = 3000;
    let (gm, gk, gv, ga) = (
        ShmGuard::new("xsel-m"),
        ShmGuard::new("xsel-k"),
        ShmGuard::new("xsel-v"),
        ShmGuard::new("xsel-a"),
    );
    let ack = Writer::create(ga.name(), 4096).unwrap();
    let mut child = Command::new(peer_bin!())
        .args([
            "select-feed",
            gm.name(),
            gk.name(),
            gv.name(),
            ga.name(),
            &COUNT.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn membus-peer");
    assert_eq!(first_line(&mut child), "created");
    let mut msgs =
        Reader::attach_with(gm.name(), &QueueOptions::new().spin(Duration::ZERO)).unwrap();
    let kv = MemKv::attach(gk.name()).unwrap();
    let mut watch = kv.watch();
    let mut vid = VideoReader::attach(gv.name()).unwrap();
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let mut counts = [0u32; 3];
    for i in 0..COUNT {
        let want = select_source(i);
        let got = select(&[&msgs, &watch, &vid], LONG);
        assert_eq!(got, Some(want), "event {i}");
        let text = i.to_string();
        match want {
            0 => assert_eq!(
                msgs.read(Duration::ZERO).unwrap().message(),
                Some(text.clone().into_bytes())
            ),
            1 => {
                let c = watch.changes().unwrap();
                assert_eq!(c.changes.len(), 1, "event {i}");
                assert_eq!(c.changes[0].value, text.as_bytes());
            }
            _ => match vid.next().unwrap() {
                Next::Frame(f) => assert_eq!(f.vpts(), i as i64),
                other => panic!("event {i}: {other:?}"),
            },
        }
        counts[want] += 1;
        // Nothing else is ready: exactly one event is in flight.
        assert_eq!(select(&[&msgs, &watch, &vid], Duration::ZERO), None);
        ack.write(text.as_bytes()).unwrap();
    }
    assert_eq!(first_line(&mut child), "done");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
}

#[test]
fn a_waiting_media_reader_counts_itself_in_the_first_reserved_word() {
    // The waiter registry's bitmap lives at offset 104 (reserved0), with the waiting
    // processes' ids at 112..168 (reserved1..7); libmembus writes these as 0 and never
    // reads them; membus writers wake only when the bitmap is non-zero. One waiting
    // process takes slot 0.
    let g = ShmGuard::new("sel-count");
    let mut vw = tiny_video(g.name());
    let vr = VideoReader::attach(g.name()).unwrap();
    let raw = RawShare::open(g.name()).unwrap();
    assert_eq!(raw.get_i64(104), 0);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| vr.wait_ready(LONG));
        let started = Instant::now();
        while raw.get_i64(104) != 1 || raw.get_i64(112) != i64::from(std::process::id()) {
            assert!(started.elapsed() < LONG, "the reader never registered");
            std::thread::sleep(Duration::from_millis(1));
        }
        vw.publish().unwrap();
        assert!(waiter.join().unwrap());
    });
    assert_eq!(raw.get_i64(104), 0, "deregistered after the wait");
    assert_eq!(raw.get_i64(112), 0, "slot 0 free again");
}

#[test]
fn audio_packet_typed_and_typed_kv_sources_select_too() {
    use membus::layout::media::AudioFormat;
    use membus::memaud::{AudioParams, AudioReader, AudioWriter};
    use membus::mempkt::{PacketParams, PacketReader, PacketWriter, RecordMeta};
    use membus::typed::{Receiver, Recv, Sender};
    use membus_tests::Counters;

    #[derive(membus::Message, Debug, PartialEq)]
    enum Cmd {
        Go,
    }

    let (ga, gp, gm, gk) = (
        ShmGuard::new("sel3-a"),
        ShmGuard::new("sel3-p"),
        ShmGuard::new("sel3-m"),
        ShmGuard::new("sel3-k"),
    );
    let mut aw = AudioWriter::create(
        ga.name(),
        &AudioParams::new(2, AudioFormat::S16le, 48_000, 100, 4),
    )
    .unwrap();
    let mut ar = AudioReader::attach(ga.name()).unwrap();
    let mut pw = PacketWriter::create(gp.name(), &PacketParams::new(8, 1 << 16, 4096)).unwrap();
    let mut pr = PacketReader::attach(gp.name()).unwrap();
    let mut tx: Sender<Cmd> = Writer::create(gm.name(), 4096).unwrap().into();
    let mut rx: Receiver<Cmd> = Reader::attach(gm.name()).unwrap().into();
    let kv = membus::Kv::<Counters>::create(
        gk.name(),
        &Counters {
            a: 0,
            b: 0,
            c: 0,
            round: 0,
            ack: 0,
        },
    )
    .unwrap();
    let mut watch = kv.watch();

    assert!(!ar.wait_ready(Duration::from_millis(10)));
    assert!(!pr.wait_ready(Duration::from_millis(10)));
    assert!(!rx.wait_ready(Duration::from_millis(10)));
    assert!(!watch.wait_ready(Duration::from_millis(10)));
    for round in 0..40u64 {
        let which = select_source(round) + usize::from(round % 4 == 3);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(1));
                match which {
                    0 => drop(aw.publish().unwrap()),
                    1 => drop(pw.write(b"pkt", &RecordMeta::default()).unwrap()),
                    2 => drop(tx.send(&Cmd::Go).unwrap()),
                    _ => drop(kv.set(Counters::ROUND, round as u32).unwrap()),
                }
            });
            assert_eq!(
                select(&[&ar, &pr, &rx, &watch], LONG),
                Some(which),
                "round {round}"
            );
        });
        match which {
            0 => assert!(matches!(ar.next().unwrap(), Next::Frame(_))),
            1 => {
                let (mut p, mut m) = (Vec::new(), Vec::new());
                assert!(matches!(
                    pr.next_into(&mut p, &mut m).unwrap(),
                    Next::Frame(_)
                ));
                assert_eq!(p, b"pkt");
            }
            2 => assert!(matches!(
                rx.recv(Duration::ZERO).unwrap(),
                Recv::Message { msg: Cmd::Go, .. }
            )),
            _ => assert_eq!(watch.changes().unwrap().changes.len(), 1),
        }
    }
}
