//! libmembus's slot-index API on the membus core (what the Python module builds on):
//! raw payload pointers of a memmap and of every media slot, slot-indexed reads and
//! writes on writers, write-pointer control (`set_ptr`, `publish_advance`), the readers'
//! view of the header pointer, and mempkt random access by index on writers and readers.

use membus::layout::media::{AudioFormat, VideoFormat};
use membus::memaud::{AudioParams, AudioReader, AudioWriter};
use membus::memmsg::{Reader, Writer};
use membus::mempkt::{PacketParams, PacketReader, PacketWriter, PktKind, RecordMeta};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::{ErrorKind, MemMap, Next};
use membus_tests::ShmGuard;

#[test]
fn memmap_raw_pointer_sees_and_makes_copies() {
    let g = ShmGuard::new("slot-map");
    let m = MemMap::create(g.name(), 64).unwrap();
    m.write(b"abc");
    let ro = MemMap::attach_read_only(g.name()).unwrap();
    // SAFETY: the pointers are used while both handles live, within len() bytes, with
    // plain byte copies (no references held across other writers).
    unsafe {
        let p = m.as_ptr();
        assert_eq!(std::slice::from_raw_parts(ro.as_ptr(), 3), b"abc");
        p.add(63).write(9);
    }
    assert_eq!(ro.read(0)[63], 9);
    assert_eq!(ro.len(), 64);
}

#[test]
fn video_writer_slot_index_api() {
    let g = ShmGuard::new("slot-vid");
    let mut p = VideoParams::new(8, 4, VideoFormat::Rgb24, 30, 4);
    p.frameextra = 16;
    let mut w = VideoWriter::create(g.name(), &p).unwrap();
    let r = VideoReader::attach(g.name()).unwrap();
    assert_eq!(w.ptr(), 0);
    assert_eq!(r.write_ptr().unwrap(), 0);
    {
        let mut s2 = w.slot_mut(2).unwrap();
        assert_eq!(s2.index(), 2);
        s2.set_vpts(20);
        s2.set_apts(21);
        s2.set_user_data(b"two").unwrap();
        s2.fill(0x22).unwrap();
    }
    {
        let s2 = w.slot_mut(2).unwrap();
        assert_eq!((s2.vpts(), s2.apts(), s2.seq()), (20, 21, 0));
        assert_eq!(s2.user_data(), b"two");
    }
    assert!(matches!(w.slot_mut(4), Err(e) if e.kind() == ErrorKind::InvalidArgument));
    // Publishing slot 0 and jumping two slots ahead.
    assert_eq!(w.publish_advance(2).unwrap(), 2);
    assert_eq!((w.seq(), w.slot_seq(0).unwrap()), (1, 1));
    assert_eq!(r.write_ptr().unwrap(), 2);
    // Slot 2 (prepared above) is published next; then back by one.
    assert_eq!(w.publish_advance(-1).unwrap(), 1);
    assert_eq!(w.slot_seq(2).unwrap(), 2);
    let f = r.slot(2).unwrap();
    assert_eq!((f.seq(), f.vpts(), f.apts()), (2, 20, 21));
    assert_eq!(f.user_data(), b"two");
    assert!(f.to_vec().iter().all(|&b| b == 0x22));
    // inc 0 stamps the same slot again.
    assert_eq!(w.publish_advance(0).unwrap(), 1);
    assert_eq!(w.slot_seq(1).unwrap(), 3);
    assert_eq!(w.publish_advance(0).unwrap(), 1);
    assert_eq!(w.slot_seq(1).unwrap(), 4);
    w.set_ptr(3).unwrap();
    assert_eq!((w.ptr(), r.write_ptr().unwrap()), (3, 3));
    assert_eq!(w.set_ptr(4).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(r.seq(), 4);
}

#[test]
fn video_payload_pointers_cover_each_slot() {
    let g = ShmGuard::new("slot-vid-ptr");
    let mut p = VideoParams::new(8, 4, VideoFormat::Gray8, 30, 3);
    p.scanwidth = 16;
    let w = VideoWriter::create(g.name(), &p).unwrap();
    let r = VideoReader::attach(g.name()).unwrap();
    let len = w.layout().frames.payload;
    assert_eq!(len, 64);
    for slot in 0..3 {
        // SAFETY: used while `w` and `r` live, for `len` bytes, as plain byte accesses.
        unsafe {
            let wp = w.payload_ptr(slot).unwrap();
            std::ptr::write_bytes(wp, slot as u8 + 1, len);
            let rp = r.payload_ptr(slot).unwrap();
            assert!(std::slice::from_raw_parts(rp, len)
                .iter()
                .all(|&b| b == slot as u8 + 1));
        }
        assert!(r
            .slot(slot)
            .unwrap()
            .to_vec()
            .iter()
            .all(|&b| b == slot as u8 + 1));
    }
    // SAFETY: only the error path is exercised; no pointer is used.
    unsafe {
        assert_eq!(
            w.payload_ptr(3).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            r.payload_ptr(3).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}

#[test]
fn audio_writer_slot_index_api() {
    let g = ShmGuard::new("slot-aud");
    let mut p = AudioParams::new(2, AudioFormat::S16le, 48_000, 100, 3);
    p.frameextra = 8;
    let mut w = AudioWriter::create(g.name(), &p).unwrap();
    let r = AudioReader::attach(g.name()).unwrap();
    {
        let mut b = w.slot_mut(1).unwrap();
        b.set_pts(77);
        b.set_user_data(b"u").unwrap();
        b.fill(3).unwrap();
        assert_eq!((b.pts(), b.seq()), (77, 0));
    }
    w.set_ptr(1).unwrap();
    assert_eq!(w.publish_advance(1).unwrap(), 2);
    assert_eq!(r.write_ptr().unwrap(), 2);
    let b = r.slot(1).unwrap();
    assert_eq!((b.seq(), b.pts()), (1, 77));
    assert_eq!(b.user_data(), b"u");
    // SAFETY: used while `r` lives, for the payload's length, as plain byte reads.
    let all_three = unsafe {
        let rp = r.payload_ptr(1).unwrap();
        std::slice::from_raw_parts(rp, r.layout().frames.payload)
            .iter()
            .all(|&x| x == 3)
    };
    assert!(all_three);
}

#[test]
fn mempkt_random_access_on_writer_and_reader() {
    let g = ShmGuard::new("slot-pkt");
    let mut w = PacketWriter::create(g.name(), &PacketParams::new(4, 256, 128)).unwrap();
    let mut r = PacketReader::attach(g.name()).unwrap();
    assert_eq!(r.record_at(0).unwrap(), None);
    let rec = |i: i64| RecordMeta {
        kind: PktKind::Audio,
        track: 5,
        pts: i,
        meta: b"mm",
    };
    w.write(b"first", &rec(1)).unwrap();
    w.write(b"second", &rec(2)).unwrap();
    assert_eq!((w.ptr(), w.seq(), r.write_ptr().unwrap()), (2, 2, 2));
    let a = w.record_at(1).unwrap().unwrap();
    assert_eq!(
        (a.payload.as_slice(), a.meta.as_slice()),
        (&b"second"[..], &b"mm"[..])
    );
    assert_eq!((a.info.seq, a.info.pts, a.info.track), (2, 2, 5));
    assert_eq!(a.info.kind, PktKind::Audio);
    assert_eq!(r.record_at(0).unwrap().unwrap().payload, b"first");
    assert_eq!((w.slot_seq(1).unwrap(), r.slot_seq(1).unwrap()), (2, 2));
    assert_eq!(w.wcursor(), r.wcursor());
    assert_eq!(
        r.record_at(4).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // Random access did not move the reader's cursor: it still delivers the first record.
    let mut payload = Vec::new();
    match r.next_into(&mut payload, &mut Vec::new()).unwrap() {
        Next::Frame(info) => assert_eq!((info.seq, payload.as_slice()), (1, &b"first"[..])),
        other => panic!("expected the first record, got {other:?}"),
    }
    // Lap the 256-byte arena: records whose bytes were overwritten read as None.
    for i in 0..6 {
        w.write(&[b'x'; 100], &rec(10 + i)).unwrap();
    }
    for slot in 0..4 {
        if let Some(got) = r.record_at(slot).unwrap() {
            assert!(got.info.seq > 4, "slot {slot} kept a lapped record");
            assert_eq!(got.payload, [b'x'; 100]);
        }
    }
}

#[test]
fn memmsg_reader_reports_creation() {
    let g = ShmGuard::new("slot-msg");
    let r = Reader::open_or_create(g.name(), 1024).unwrap();
    assert!(r.is_creator());
    let w = Writer::attach(g.name()).unwrap();
    assert!(!w.is_creator());
    assert!(!Reader::attach(g.name()).unwrap().is_creator());
}

#[test]
fn readers_wait_for_the_global_sequence() {
    let g = ShmGuard::new("slot-wait");
    let mut w =
        VideoWriter::create(g.name(), &VideoParams::new(8, 4, VideoFormat::Gray8, 30, 2)).unwrap();
    let r = VideoReader::attach(g.name()).unwrap();
    assert!(!r.wait_seq_above(0, std::time::Duration::ZERO));
    assert!(!r.wait_seq_above(0, std::time::Duration::from_millis(10)));
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.publish().unwrap();
        w
    });
    // Woken by the publish (the 60 s timeout is only a bound for a broken wake-up).
    assert!(r.wait_seq_above(0, std::time::Duration::from_secs(60)));
    assert_eq!(r.seq(), 1);
    let _w = publisher.join().unwrap();
    assert!(r.wait_seq_above(0, std::time::Duration::ZERO));
    assert!(!r.wait_seq_above(1, std::time::Duration::ZERO));

    let gp = ShmGuard::new("slot-wait-pkt");
    let mut pw = PacketWriter::create(gp.name(), &PacketParams::new(4, 256, 64)).unwrap();
    let pr = PacketReader::attach(gp.name()).unwrap();
    assert!(!pr.wait_seq_above(0, std::time::Duration::ZERO));
    pw.write(b"x", &RecordMeta::default()).unwrap();
    assert!(pr.wait_seq_above(0, std::time::Duration::from_secs(60)));

    let ga = ShmGuard::new("slot-wait-aud");
    let mut aw = AudioWriter::create(
        ga.name(),
        &AudioParams::new(1, AudioFormat::U8, 8000, 10, 2),
    )
    .unwrap();
    let ar = AudioReader::attach(ga.name()).unwrap();
    assert!(!ar.wait_seq_above(0, std::time::Duration::ZERO));
    aw.publish().unwrap();
    assert!(ar.wait_seq_above(0, std::time::Duration::from_secs(60)));
}
