//! memaud against pymembus fixtures (read-back, byte-identical creation), typed samples,
//! ring behaviour and hostile headers.

use membus::layout::media::AudioFormat;
use membus::memaud::{AudioParams, AudioReader, AudioWriter, ReaderOptions};
use membus::pixel::S24;
use membus::{ErrorKind, Identity, Next, ReadFrom};
use membus_tests::{
    fixture_bytes, fixture_entry, install_fixture, install_share, share_bytes, ShmGuard,
};

fn s16_params() -> AudioParams {
    AudioParams::new(2, AudioFormat::S16le, 48000, 50, 4)
}

fn user_params() -> AudioParams {
    let mut p = AudioParams::new(1, AudioFormat::UserType, 8000, 10, 3);
    p.payload_size = 1000;
    p.identity = Identity {
        fourcc: 827347023,
        ..Identity::default()
    };
    p
}

#[test]
fn s16le_fixture_reads_back() {
    let e = fixture_entry("memaud_s16le.bin");
    let g = install_fixture("memaud_s16le.bin");
    let r = AudioReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Newest,
            expect: Some(s16_params()),
        },
    )
    .unwrap();
    assert_eq!(r.session_id(), e["session_id"].as_i64().unwrap());
    assert_eq!(
        r.layout().frames.payload as u64,
        e["expect"]["buf_size"].as_u64().unwrap()
    );
    let b = r.slot(0).unwrap();
    assert_eq!((b.seq(), b.pts()), (1, 555));
    let expect: Vec<u8> = (0..3840).map(|i| ((i * 3) % 256) as u8).collect();
    assert_eq!(b.to_vec(), expect);
    let s = b.samples::<i16>().unwrap();
    assert_eq!(s.len(), 1920);
    assert_eq!(s[1], i16::from_le_bytes([6, 9]));
    assert!(
        b.samples::<f32>().is_err(),
        "an f32 view of s16le is refused"
    );
    let mut r = AudioReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Oldest,
            expect: None,
        },
    )
    .unwrap();
    assert!(matches!(r.next().unwrap(), Next::Frame(ref b) if b.pts() == 555));
}

#[test]
fn user_type_fixture_reads_back() {
    let g = install_fixture("memaud_usertype.bin");
    let r = AudioReader::attach(g.name()).unwrap();
    assert_eq!(r.fourcc(), 827347023);
    assert_eq!(r.layout().frames.payload, 1000);
    assert!(r.slot(0).unwrap().to_vec().iter().all(|&b| b == 90));
}

#[test]
fn membus_writes_the_same_bytes_as_pymembus() {
    let g = ShmGuard::new("aud-bytes");
    let mut w = AudioWriter::create(g.name(), &s16_params()).unwrap();
    {
        let mut b = w.buffer();
        for (i, x) in b.bytes_mut().unwrap().iter_mut().enumerate() {
            *x = ((i * 3) % 256) as u8;
        }
        b.set_pts(555);
    }
    w.publish().unwrap();
    let (ours, theirs) = (share_bytes(g.name()), fixture_bytes("memaud_s16le.bin"));
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((48..56).contains(&i) || a == b, "byte {i} differs");
    }
    let g = ShmGuard::new("aud-bytes-user");
    let mut w = AudioWriter::create(g.name(), &user_params()).unwrap();
    w.buffer().fill(90).unwrap();
    w.publish().unwrap();
    let (ours, theirs) = (share_bytes(g.name()), fixture_bytes("memaud_usertype.bin"));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((48..56).contains(&i) || a == b, "byte {i} differs");
    }
}

#[test]
fn typed_samples_round_trip_through_the_ring() {
    let g = ShmGuard::new("aud-typed");
    let mut w = AudioWriter::create(
        g.name(),
        &AudioParams::new(2, AudioFormat::S24le, 48000, 100, 4),
    )
    .unwrap();
    let mut r = AudioReader::attach(g.name()).unwrap();
    {
        let mut b = w.buffer();
        let s = b.samples_mut::<S24>().unwrap();
        assert_eq!(s.len(), 480 * 2);
        for (i, x) in s.iter_mut().enumerate() {
            *x = S24::new(i as i32 - 500);
        }
        b.set_pts(7);
    }
    w.publish().unwrap();
    let Next::Frame(b) = r.next().unwrap() else {
        panic!("no buffer")
    };
    assert_eq!(b.pts(), 7);
    assert!(b
        .samples::<S24>()
        .unwrap()
        .iter()
        .enumerate()
        .all(|(i, x)| x.get() == i as i32 - 500));
    assert!(b.is_intact());
    assert!(matches!(r.next().unwrap(), Next::Empty));
    for _ in 0..10 {
        w.buffer().fill(0).unwrap();
        w.publish().unwrap();
    }
    assert!(matches!(r.next().unwrap(), Next::Overrun { lost: 9 }));
    assert!(matches!(r.next().unwrap(), Next::Frame(ref b) if b.seq() == 11));
}

#[test]
fn corrupt_headers_are_invalid_layout() {
    let good = fixture_bytes("memaud_s16le.bin");
    for &(off, v) in &[
        (184usize, 42i64),
        (232, 3000),
        (168, 0),
        (16, 2),
        (200, 1 << 40),
    ] {
        let mut b = good.clone();
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        let g = install_share("aud-corrupt", &b);
        let e = AudioReader::attach(g.name())
            .err()
            .unwrap_or_else(|| panic!("offset {off} accepted"));
        assert_eq!(e.kind(), ErrorKind::InvalidLayout, "offset {off}: {e}");
    }
    let g = install_fixture("memvid_rgb24.bin");
    assert_eq!(
        AudioReader::attach(g.name()).err().unwrap().kind(),
        ErrorKind::InvalidLayout,
        "a memvid is not a memaud"
    );
}
