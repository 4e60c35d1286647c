//! memvid against pymembus fixtures (read-back, byte-identical creation), ring behaviour
//! (order, overrun, empty, intact checks), typed rows, W13 replacement and hostile headers.

use membus::layout::media::VideoFormat;
use membus::memvid::{ReaderOptions, VideoParams, VideoReader, VideoWriter};
use membus::pixel::{Gray, Rgb};
use membus::{ErrorKind, Identity, Next, ReadFrom};
use membus_tests::{
    fixture_bytes, fixture_entry, install_fixture, install_share, share_bytes, ShmGuard,
};

fn rgb24_params() -> VideoParams {
    VideoParams::new(16, 8, VideoFormat::Rgb24, 30, 2)
}

fn gray8_extra_params() -> VideoParams {
    let mut p = VideoParams::new(641, 481, VideoFormat::Gray8, 25, 3);
    p.frameextra = 20;
    p.identity = Identity {
        fourcc: 875967048,
        guid: core::array::from_fn(|i| i as u8),
        meta: b"sdp=1".to_vec(),
    };
    p
}

#[test]
fn rgb24_fixture_reads_back() {
    let e = fixture_entry("memvid_rgb24.bin");
    let g = install_fixture("memvid_rgb24.bin");
    let r = VideoReader::attach(g.name()).unwrap();
    assert_eq!(r.session_id(), e["session_id"].as_i64().unwrap());
    assert_eq!(r.seq(), e["expect"]["seq"].as_u64().unwrap());
    let l = r.layout();
    assert_eq!(
        (
            l.video.width,
            l.video.height,
            l.video.format,
            l.frames.bufs,
            l.frames.size
        ),
        (16, 8, VideoFormat::Rgb24, 2, 4992)
    );
    let f = r.slot(0).unwrap();
    assert_eq!(f.seq(), 1);
    assert_eq!((f.vpts(), f.apts()), (123456, 123000));
    let expect: Vec<u8> = (0..384).map(|i| ((i * 7) % 256) as u8).collect();
    assert_eq!(f.to_vec(), expect);
    let row0 = f.row::<Rgb>(0).unwrap();
    assert_eq!(row0.len(), 16);
    assert_eq!(
        row0[1],
        Rgb {
            r: 21,
            g: 28,
            b: 35
        }
    );
    assert!(
        f.row::<Gray>(0).is_err(),
        "a gray view of an rgb24 frame is refused"
    );
    assert!(f.is_intact());
    // Oldest-first reading delivers the fixture's frame.
    let mut r = VideoReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Oldest,
            expect: Some(rgb24_params()),
        },
    )
    .unwrap();
    match r.next().unwrap() {
        Next::Frame(f) => assert_eq!((f.seq(), f.vpts()), (1, 123456)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.next().unwrap(), Next::Empty));
}

#[test]
fn gray8_extra_fixture_reads_back() {
    let e = fixture_entry("memvid_gray8_extra.bin");
    let g = install_fixture("memvid_gray8_extra.bin");
    let r = VideoReader::attach(g.name()).unwrap();
    assert_eq!(r.fourcc(), e["params"]["fourcc"].as_u64().unwrap() as u32);
    assert_eq!(hex(&r.guid()), e["params"]["guid_hex"].as_str().unwrap());
    assert_eq!(r.meta().unwrap(), b"sdp=1");
    assert_eq!(r.layout().frames.frameextra, 24);
    let s0 = r.slot(0).unwrap();
    assert_eq!(s0.seq(), 1);
    assert!(s0.to_vec().iter().all(|&b| b == 17));
    assert_eq!(s0.user_data(), b"frame-0-info");
    let s1 = r.slot(1).unwrap();
    assert_eq!((s1.seq(), s1.vpts()), (2, 77));
    assert!(s1.to_vec().iter().all(|&b| b == 34));
    assert_eq!(s1.row::<Gray>(480).unwrap().len(), 641);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything but the session id (offset 48) must match.
fn assert_same_but_id(ours: &[u8], theirs: &[u8]) {
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if !(48..56).contains(&i) {
            assert_eq!(a, b, "byte {i} differs");
        }
    }
}

#[test]
fn membus_writes_the_same_bytes_as_pymembus() {
    let g = ShmGuard::new("vid-bytes");
    let mut w = VideoWriter::create(g.name(), &rgb24_params()).unwrap();
    {
        let mut f = w.frame();
        for (i, b) in f.bytes_mut().unwrap().iter_mut().enumerate() {
            *b = ((i * 7) % 256) as u8;
        }
        f.set_vpts(123456);
        f.set_apts(123000);
    }
    assert_eq!(w.publish().unwrap(), 1);
    assert_same_but_id(&share_bytes(g.name()), &fixture_bytes("memvid_rgb24.bin"));

    let g = ShmGuard::new("vid-bytes-extra");
    let mut w = VideoWriter::create(g.name(), &gray8_extra_params()).unwrap();
    {
        let mut f = w.frame();
        f.fill(17).unwrap();
        f.set_user_data(b"frame-0-info").unwrap();
    }
    w.publish().unwrap();
    {
        let mut f = w.frame();
        f.fill(34).unwrap();
        f.set_vpts(77);
    }
    w.publish().unwrap();
    assert_same_but_id(
        &share_bytes(g.name()),
        &fixture_bytes("memvid_gray8_extra.bin"),
    );
}

#[test]
fn readers_get_frames_in_order_then_overruns_then_empty() {
    let g = ShmGuard::new("vid-ring");
    let mut w =
        VideoWriter::create(g.name(), &VideoParams::new(4, 2, VideoFormat::Rgb24, 30, 3)).unwrap();
    let mut r = VideoReader::attach(g.name()).unwrap();
    assert!(
        matches!(r.next().unwrap(), Next::Empty),
        "W6: nothing new is reported as such"
    );
    for i in 0..2u8 {
        w.frame()
            .row_mut::<Rgb>(0)
            .unwrap()
            .fill(Rgb { r: i, g: i, b: i });
        w.publish().unwrap();
    }
    for i in 0..2u8 {
        match r.next().unwrap() {
            Next::Frame(f) => {
                assert_eq!(f.seq(), u64::from(i) + 1);
                assert_eq!(f.row::<Rgb>(0).unwrap()[3], Rgb { r: i, g: i, b: i });
                assert!(f.is_intact());
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(r.next().unwrap(), Next::Empty));
    // Seven more frames through 3 slots: the reader lost 4 and then gets the newest, #9.
    for _ in 0..7 {
        w.frame().fill(9).unwrap();
        w.publish().unwrap();
    }
    assert!(matches!(r.next().unwrap(), Next::Overrun { lost: 6 }));
    match r.next().unwrap() {
        Next::Frame(f) => assert_eq!(f.seq(), 9),
        other => panic!("{other:?}"),
    }
    // A view is told when the writer starts rewriting its slot.
    w.frame().fill(1).unwrap();
    w.publish().unwrap();
    let Next::Frame(f) = r.next().unwrap() else {
        panic!()
    };
    assert_eq!(f.seq(), 10);
    let slot = f.slot();
    assert!(f.is_intact());
    let _ = f;
    w.frame().fill(2).unwrap();
    w.publish().unwrap();
    w.frame().fill(3).unwrap();
    w.publish().unwrap();
    let f = r.slot(slot).unwrap();
    assert_eq!(f.seq(), 10);
    let _ = w.frame(); // starts rewriting `slot` (ptr wrapped back to it)
    assert!(!f.is_intact(), "a rewrite in progress is reported");
}

#[test]
fn a_live_writer_is_never_replaced_a_stale_share_is() {
    let g = ShmGuard::new("vid-owner");
    let w = VideoWriter::create(g.name(), &rgb24_params()).unwrap();
    let e = VideoWriter::create(g.name(), &rgb24_params())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::CreateFailed);
    assert!(
        e.to_string().contains("a live membus process owns it"),
        "{e}"
    );
    drop(w);
    // A libmembus-made share (no owner lock) of that name is replaced.
    let stale = install_fixture("memvid_rgb24.bin");
    let w2 = VideoWriter::create(
        stale.name(),
        &VideoParams::new(8, 8, VideoFormat::Gray8, 10, 2),
    )
    .unwrap();
    assert_eq!(
        VideoReader::attach(stale.name())
            .unwrap()
            .layout()
            .video
            .width,
        8
    );
    assert_ne!(
        w2.session_id(),
        fixture_entry("memvid_rgb24.bin")["session_id"]
            .as_i64()
            .unwrap()
    );
}

#[test]
fn expected_parameters_are_checked_and_every_difference_named() {
    let g = install_fixture("memvid_rgb24.bin");
    let mut p = VideoParams::new(32, 8, VideoFormat::Bgr24, 25, 2);
    p.scanwidth = 0;
    let e = VideoReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Newest,
            expect: Some(p),
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::SizeMismatch);
    let msg = e.to_string();
    for part in [
        "width: expected 32, found 16",
        "format: expected 3, found 2",
        "fps: expected 25, found 30",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
}

#[test]
fn corrupt_headers_are_invalid_layout() {
    let good = fixture_bytes("memvid_rgb24.bin");
    let cases: &[(usize, i64)] = &[
        (0, 0x1234),    // magic
        (8, 2),         // type
        (16, 7),        // version
        (192, 99),      // format (W11: libmembus does not check)
        (168, 17),      // width: 17 × 3 > scanwidth 48 (W11)
        (56, 1 << 40),  // bufs
        (208, 64),      // blocksz
        (232, 1 << 50), // dataoffset
        (24, 1 << 20),  // size
        (184, 0),       // scanwidth
    ];
    for &(off, v) in cases {
        let mut b = good.clone();
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        let g = install_share("vid-corrupt", &b);
        let e = VideoReader::attach(g.name())
            .err()
            .unwrap_or_else(|| panic!("offset {off} = {v} accepted"));
        assert_eq!(e.kind(), ErrorKind::InvalidLayout, "offset {off}: {e}");
    }
    // A write pointer out of range, set while attached: an error, not an out-of-bounds read.
    let g = install_fixture("memvid_rgb24.bin");
    let mut r = VideoReader::attach(g.name()).unwrap();
    let raw = membus_tests::RawShare::open(g.name()).unwrap();
    raw.put_i64(32, 99);
    raw.put_i64(40, 10);
    assert_eq!(r.next().err().unwrap().kind(), ErrorKind::InvalidLayout);
    // Truncated object.
    let g = install_share("vid-short", &good[..200]);
    assert_eq!(
        VideoReader::attach(g.name()).err().unwrap().kind(),
        ErrorKind::InvalidLayout
    );
}

#[test]
fn writer_parameters_are_validated() {
    let g = ShmGuard::new("vid-params");
    for p in [
        VideoParams::new(0, 8, VideoFormat::Rgb24, 30, 2),
        VideoParams::new(5, 8, VideoFormat::Yuyv422, 30, 2),
        VideoParams::new(8, 8, VideoFormat::UserType, 30, 2),
        VideoParams::new(8, 8, VideoFormat::Rgb24, 30, 0),
    ] {
        assert_eq!(
            VideoWriter::create(g.name(), &p).err().unwrap().kind(),
            ErrorKind::InvalidArgument
        );
    }
    let mut w = VideoWriter::create(g.name(), &rgb24_params()).unwrap();
    let e = w.frame().set_user_data(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
}
