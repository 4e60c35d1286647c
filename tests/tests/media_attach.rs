//! Read-write attach of media shares (`VideoWriter::attach`, `AudioWriter::attach`,
//! `PacketWriter::attach`): a child process creates and owns the share, this process
//! attaches read-write and publishes, readers see every frame in order; hostile headers
//! and wrong parameters give clear errors; `SeqWatch` waits on a writer's ring.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use membus::layout::media::VideoFormat;
use membus::memaud::{AudioReader, AudioWriter};
use membus::mempkt::{PacketParams, PacketReader, PacketWriter};
use membus::memvid::{ReaderOptions, VideoParams, VideoReader, VideoWriter};
use membus::{ErrorKind, Next, ReadFrom};
use membus_tests::{first_line, packet, peer_bin, RawShare, ShmGuard};

/// Header word offsets (libmembus wire format, "MBUS" prefix).
const H_MAGIC: usize = 0;
const H_PTR: usize = 32;
const H_SEQ: usize = 40;
/// mempkt's arena cursor.
const H_WCURSOR: usize = 184;

/// A child that creates `kind` at `name` (the `create-and-wait` role of membus-peer) and
/// holds it until its stdin closes.
fn creator(kind: &str, name: &str) -> Child {
    let mut child = Command::new(peer_bin!())
        .args(["create-and-wait", kind, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn membus-peer");
    assert_eq!(first_line(&mut child), "created");
    child
}

fn finish(mut child: Child) {
    let _ = writeln!(child.stdin.as_mut().unwrap());
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// The parameters of `membus_tests::tiny_video`.
fn tiny_params() -> VideoParams {
    VideoParams::new(8, 4, VideoFormat::Gray8, 200, 8)
}

fn pkt_params() -> PacketParams {
    PacketParams::new(8, 1 << 16, 4096)
}

fn oldest() -> ReaderOptions {
    ReaderOptions {
        from: ReadFrom::Oldest,
        expect: None,
    }
}

/// Writes `packet(seq)` (at most 4000 bytes of it) through `w` and checks that `r` reads
/// it back next, whole.
fn write_and_read_back(w: &mut PacketWriter, r: &mut PacketReader, seq: u64) {
    let (p, m) = packet(seq);
    let p = &p[..p.len().min(4000)];
    assert_eq!(w.write(p, &m.as_record()).unwrap(), seq);
    let (mut payload, mut meta) = (Vec::new(), Vec::new());
    match r.next_into(&mut payload, &mut meta).unwrap() {
        Next::Frame(info) => {
            assert_eq!(info.seq, seq);
            assert_eq!(payload, p, "record {seq}");
            assert_eq!(meta, m.meta);
        }
        other => panic!("expected record {seq}, got {other:?}"),
    }
}

#[test]
fn a_video_writer_attached_to_a_childs_share_continues_its_sequence() {
    let g = ShmGuard::new("attach-vid");
    let child = creator("memvid", g.name());
    let mut r = VideoReader::attach_with(g.name(), &oldest()).unwrap();
    // Two writers one after the other: the second continues from the first's pointer
    // and sequence, which it reads from the header.
    for round in 0..2u64 {
        let mut w = VideoWriter::attach(g.name(), &tiny_params()).unwrap();
        assert_eq!(w.seq(), round * 3);
        assert_eq!(w.ptr(), (round * 3) as usize % 8);
        for i in 1..=3u64 {
            let seq = round * 3 + i;
            {
                let mut f = w.frame();
                f.fill(seq as u8).unwrap();
                f.set_vpts(seq as i64 * 10);
            }
            assert_eq!(w.publish().unwrap(), seq);
        }
    }
    for seq in 1..=6u64 {
        match r.next().unwrap() {
            Next::Frame(f) => {
                assert_eq!(f.seq(), seq, "frames arrive in order");
                assert_eq!(f.vpts(), seq as i64 * 10);
                assert!(f.to_vec().iter().all(|&b| b == seq as u8));
                assert!(f.is_intact());
            }
            other => panic!("expected frame {seq}, got {other:?}"),
        }
    }
    assert!(matches!(r.next().unwrap(), Next::Empty));
    // The attached writers never owned the share: it is still there, the creator's.
    assert!(VideoReader::attach(g.name()).is_ok());
    // A new create still finds the live owner and refuses to replace its share.
    assert_eq!(
        VideoWriter::create(g.name(), &tiny_params())
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::CreateFailed)
    );
    finish(child);
    // The creator removed it when it exited.
    assert_eq!(
        VideoReader::attach(g.name()).err().map(|e| e.kind()),
        Some(ErrorKind::OpenFailed)
    );
}

#[test]
fn an_audio_writer_attached_to_a_childs_share_publishes_in_order() {
    let g = ShmGuard::new("attach-aud");
    let child = creator("memaud", g.name());
    let mut r = AudioReader::attach(g.name()).unwrap();
    let mut w = AudioWriter::attach(g.name(), &membus_tests::small_audio_params()).unwrap();
    for seq in 1..=6u64 {
        {
            let mut b = w.buffer();
            b.samples_mut::<i16>().unwrap().fill(seq as i16);
            b.set_pts(seq as i64);
        }
        w.publish().unwrap();
        match r.next().unwrap() {
            Next::Frame(b) => {
                assert_eq!(b.seq(), seq);
                assert_eq!(b.pts(), seq as i64);
                assert!(b.samples::<i16>().unwrap().iter().all(|&s| s == seq as i16));
            }
            other => panic!("expected buffer {seq}, got {other:?}"),
        }
    }
    drop(w);
    finish(child);
}

#[test]
fn a_packet_writer_attached_to_a_childs_share_continues_the_arena() {
    let g = ShmGuard::new("attach-pkt");
    let child = creator("mempkt", g.name());
    let mut r = PacketReader::attach(g.name()).unwrap();
    let mut seq = 0u64;
    // Enough records to lap the 64 KiB arena: the second writer must continue the
    // first's arena cursor, or its records would overwrite unread bytes out of order.
    for _round in 0..2 {
        let mut w = PacketWriter::attach(g.name(), &pkt_params()).unwrap();
        assert_eq!(w.seq(), seq);
        for _ in 0..20 {
            seq += 1;
            write_and_read_back(&mut w, &mut r, seq);
        }
    }
    finish(child);
}

#[test]
fn attach_checks_the_parameters_and_names_every_difference() {
    let g = ShmGuard::new("attach-params");
    let _w = membus_tests::tiny_video(g.name());
    let mut p = tiny_params();
    p.width = 16;
    p.bufs = 4;
    let e = VideoWriter::attach(g.name(), &p).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::SizeMismatch, "{e}");
    let text = e.to_string();
    assert!(text.contains("width") && text.contains("bufs"), "{text}");
    let e = PacketWriter::attach(g.name(), &pkt_params()).err().unwrap();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidLayout,
        "a memvid is not a mempkt: {e}"
    );
    assert_eq!(
        VideoWriter::attach("/membus-test-attach-none", &tiny_params())
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::OpenFailed)
    );
}

#[test]
fn attach_refuses_hostile_headers() {
    for (what, off, v) in [
        ("write pointer past bufs", H_PTR, 8),
        ("negative write pointer", H_PTR, -1),
        ("negative sequence", H_SEQ, -5),
        ("sequence near overflow", H_SEQ, i64::MAX),
        ("no magic", H_MAGIC, 0x1234),
    ] {
        let g = ShmGuard::new("attach-hostile");
        let _w = membus_tests::tiny_video(g.name());
        RawShare::open(g.name()).unwrap().put_i64(off, v);
        let e = VideoWriter::attach(g.name(), &tiny_params()).err();
        assert_eq!(
            e.as_ref().map(|e| e.kind()),
            Some(ErrorKind::InvalidLayout),
            "{what}: {e:?}"
        );
    }
    for v in [-1, i64::MAX] {
        let g = ShmGuard::new("attach-hostile-pkt");
        let _w = PacketWriter::create(g.name(), &pkt_params()).unwrap();
        RawShare::open(g.name()).unwrap().put_i64(H_WCURSOR, v);
        let e = PacketWriter::attach(g.name(), &pkt_params()).err();
        assert_eq!(
            e.as_ref().map(|e| e.kind()),
            Some(ErrorKind::InvalidLayout),
            "arena cursor {v}: {e:?}"
        );
    }
}

#[test]
fn a_seq_watch_on_a_writer_wakes_when_another_thread_publishes() {
    let g = ShmGuard::new("attach-watch");
    let mut w = membus_tests::tiny_video(g.name());
    let watch = w.seq_watch().unwrap();
    assert_eq!(watch.seq(), 0);
    assert!(
        !watch.wait_seq_above(0, Duration::from_millis(20)),
        "nothing published"
    );
    let woke = std::thread::scope(|s| {
        let waiter = s.spawn(|| watch.wait_seq_above(0, Duration::from_secs(30)));
        w.frame().fill(1).unwrap();
        w.publish().unwrap();
        waiter.join().unwrap()
    });
    assert!(woke);
    assert_eq!(watch.seq(), 1);
    // The watch outlives the writer (it has its own mapping).
    drop(w);
    assert_eq!(watch.seq(), 1);
    assert!(!watch.wait_seq_above(1, Duration::from_millis(5)));
}

#[test]
fn a_seq_watch_sees_frames_of_a_writer_attached_elsewhere() {
    let g = ShmGuard::new("attach-watch2");
    let child = creator("memvid", g.name());
    let r = VideoReader::attach(g.name()).unwrap();
    let watch = r.seq_watch().unwrap();
    let mut w = VideoWriter::attach(g.name(), &tiny_params()).unwrap();
    let wwatch = w.seq_watch().unwrap();
    let (a, b) = std::thread::scope(|s| {
        let t1 = s.spawn(|| watch.wait_seq_above(0, Duration::from_secs(30)));
        let t2 = s.spawn(|| wwatch.wait_seq_above(0, Duration::from_secs(30)));
        w.publish().unwrap();
        (t1.join().unwrap(), t2.join().unwrap())
    });
    assert!(a && b);
    drop(w);
    finish(child);
}

#[test]
fn a_creator_and_an_attached_writer_taking_turns_continue_one_anothers_ring() {
    let g = ShmGuard::new("attach-turns");
    let mut c = membus_tests::tiny_video(g.name());
    let mut a = VideoWriter::attach(g.name(), &tiny_params()).unwrap();
    let mut r = VideoReader::attach_with(g.name(), &oldest()).unwrap();
    // 20 frames over an 8-slot ring, the writers alternating every one or two frames;
    // the reader drains after each, so nothing may be lost or reordered.
    for seq in 1..=20u64 {
        let w = if seq % 3 == 0 { &mut c } else { &mut a };
        {
            let mut f = w.frame();
            f.fill(seq as u8).unwrap();
        }
        assert_eq!(w.publish().unwrap(), seq);
        assert_eq!(c.seq(), seq);
        assert_eq!(a.ptr(), seq as usize % 8);
        match r.next().unwrap() {
            Next::Frame(f) => {
                assert_eq!(f.seq(), seq);
                assert!(f.to_vec().iter().all(|&b| b == seq as u8));
            }
            other => panic!("expected frame {seq}, got {other:?}"),
        }
    }
    let g2 = ShmGuard::new("attach-turns-pkt");
    let mut c = PacketWriter::create(g2.name(), &pkt_params()).unwrap();
    let mut a = PacketWriter::attach(g2.name(), &pkt_params()).unwrap();
    let mut r = PacketReader::attach(g2.name()).unwrap();
    for seq in 1..=60u64 {
        let w = if seq % 2 == 0 { &mut c } else { &mut a };
        write_and_read_back(w, &mut r, seq);
    }
}
