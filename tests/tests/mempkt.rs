//! mempkt against the pymembus fixture (read-back, byte-identical creation), record
//! order, overruns, maxrec, and hostile descriptors.

use membus::mempkt::{
    PacketParams, PacketReader, PacketWriter, PktKind, ReaderOptions, RecordMeta,
};
use membus::{ErrorKind, Identity, Next, ReadFrom};
use membus_tests::{
    fixture_bytes, fixture_entry, install_fixture, install_share, share_bytes, RawShare, ShmGuard,
};

fn fixture_params() -> PacketParams {
    let mut p = PacketParams::new(8, 65541, 4096);
    p.identity = Identity {
        fourcc: 1196444237,
        meta: b"rtsp-session".to_vec(),
        ..Identity::default()
    };
    p
}

/// (payload, kind, track, pts, meta) of the fixture's three records.
type FixtureRecord = (Vec<u8>, PktKind, i64, i64, &'static [u8]);

fn fixture_records() -> Vec<FixtureRecord> {
    vec![
        (b"hello".to_vec(), PktKind::Data, 7, 42, b""),
        (
            (0..200u32).map(|i| i as u8).collect(),
            PktKind::Video,
            1,
            1000,
            b"key",
        ),
        (vec![b'x'; 3000], PktKind::Audio, 2, 2000, b"mmmmmmmmmm"),
    ]
}

#[test]
fn fixture_reads_back_as_the_manifest_says() {
    let e = fixture_entry("mempkt_basic.bin");
    let g = install_fixture("mempkt_basic.bin");
    let mut r = PacketReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Oldest,
            expect: None,
        },
    )
    .unwrap();
    assert_eq!(r.session_id(), e["session_id"].as_i64().unwrap());
    assert_eq!(r.fourcc(), 1196444237);
    assert_eq!(r.meta().unwrap(), b"rtsp-session");
    assert_eq!(r.seq(), 3);
    let (mut payload, mut meta) = (Vec::new(), Vec::new());
    for (i, (want_payload, kind, track, pts, want_meta)) in
        fixture_records().into_iter().enumerate()
    {
        let rec = &e["expect"]["records"][i];
        match r.next_into(&mut payload, &mut meta).unwrap() {
            Next::Frame(info) => {
                assert_eq!(info.seq, i as u64 + 1);
                assert_eq!(info.len as u64, rec["payload_len"].as_u64().unwrap());
                assert_eq!(info.kind.value(), rec["kind"].as_i64().unwrap());
                assert_eq!((info.kind, info.track, info.pts), (kind, track, pts));
                assert_eq!(payload, want_payload);
                assert_eq!(meta, want_meta);
                assert_eq!(meta, rec["meta"].as_str().unwrap().as_bytes());
            }
            other => panic!("record {i}: {other:?}"),
        }
    }
    assert!(matches!(
        r.next_into(&mut payload, &mut meta).unwrap(),
        Next::Empty
    ));
}

#[test]
fn membus_writes_the_same_bytes_as_pymembus() {
    let g = ShmGuard::new("pkt-bytes");
    let mut w = PacketWriter::create(g.name(), &fixture_params()).unwrap();
    for (payload, kind, track, pts, meta) in fixture_records() {
        w.write(
            &payload,
            &RecordMeta {
                kind,
                track,
                pts,
                meta,
            },
        )
        .unwrap();
    }
    let (ours, theirs) = (share_bytes(g.name()), fixture_bytes("mempkt_basic.bin"));
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((48..56).contains(&i) || a == b, "byte {i} differs");
    }
}

#[test]
fn records_in_order_then_overrun_then_empty_and_limits() {
    let g = ShmGuard::new("pkt-ring");
    let mut w = PacketWriter::create(g.name(), &PacketParams::new(4, 4096, 512)).unwrap();
    let mut r = PacketReader::attach(g.name()).unwrap();
    let (mut p, mut m) = (Vec::new(), Vec::new());
    assert!(
        matches!(r.next_into(&mut p, &mut m).unwrap(), Next::Empty),
        "W6: an empty ring is not an overrun"
    );
    for i in 0..3u8 {
        w.write(&[i; 100], &RecordMeta::default()).unwrap();
    }
    for i in 0..3u8 {
        assert!(
            matches!(r.next_into(&mut p, &mut m).unwrap(), Next::Frame(info) if info.seq == u64::from(i) + 1)
        );
        assert_eq!(p, vec![i; 100]);
    }
    for i in 0..10u8 {
        w.write(&[i; 300], &RecordMeta::default()).unwrap();
    }
    assert!(matches!(
        r.next_into(&mut p, &mut m).unwrap(),
        Next::Overrun { lost: 9 }
    ));
    assert!(matches!(r.next_into(&mut p, &mut m).unwrap(), Next::Frame(info) if info.seq == 13));
    assert_eq!(p, vec![9; 300]);
    assert_eq!(
        w.write(&[0; 513], &RecordMeta::default())
            .unwrap_err()
            .kind(),
        ErrorKind::MessageTooLarge
    );
    assert_eq!(
        w.write(&[], &RecordMeta::default()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // The arena is smaller than bufs × records: old records' bytes are overwritten first,
    // and a reader that falls behind that far is told so, never handed the new bytes.
    let g2 = ShmGuard::new("pkt-arena");
    let mut w2 = PacketWriter::create(g2.name(), &PacketParams::new(64, 1024, 256)).unwrap();
    let mut r2 = PacketReader::attach(g2.name()).unwrap();
    for i in 0..10u8 {
        w2.write(&[i; 200], &RecordMeta::default()).unwrap();
    }
    let mut got = Vec::new();
    let mut lost = 0;
    loop {
        match r2.next_into(&mut p, &mut m).unwrap() {
            Next::Frame(info) => {
                assert_eq!(p, vec![(info.seq - 1) as u8; 200], "never a torn record");
                got.push(info.seq);
            }
            Next::Overrun { lost: n } => lost += n,
            Next::Empty => break,
        }
    }
    assert_eq!(got.len() as u64 + lost, 10);
    assert!(lost > 0 && got.contains(&10), "{got:?} {lost}");
}

#[test]
fn hostile_descriptors_and_headers_never_crash() {
    let g = install_fixture("mempkt_basic.bin");
    let mut r = PacketReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Oldest,
            expect: None,
        },
    )
    .unwrap();
    let raw = RawShare::open(g.name()).unwrap();
    // Descriptor 0 claims a record far past the arena.
    let desc0 = r.layout().descoffset;
    assert_eq!(desc0, 232, "216 + 12 bytes of meta, rounded to 8");
    raw.put_i64(desc0, 1 << 40);
    let (mut p, mut m) = (Vec::new(), Vec::new());
    assert!(matches!(
        r.next_into(&mut p, &mut m).unwrap(),
        Next::Overrun { lost: 1 }
    ));
    assert!(matches!(r.next_into(&mut p, &mut m).unwrap(), Next::Frame(info) if info.seq == 2));
    let good = fixture_bytes("mempkt_basic.bin");
    for &(off, v) in &[
        (168usize, 3i64),
        (176, 1 << 30),
        (200, 8),
        (208, 1 << 40),
        (56, -1),
    ] {
        let mut b = good.clone();
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        let g = install_share("pkt-corrupt", &b);
        assert_eq!(
            PacketReader::attach(g.name()).err().unwrap().kind(),
            ErrorKind::InvalidLayout,
            "offset {off}"
        );
    }
}

#[test]
fn checked_views_and_expected_parameters() {
    let g = ShmGuard::new("pkt-view");
    let mut w = PacketWriter::create(g.name(), &PacketParams::new(4, 1024, 256)).unwrap();
    let mut want = PacketParams::new(8, 1024, 256);
    let e = PacketReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Newest,
            expect: Some(want.clone()),
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::SizeMismatch);
    assert!(e.to_string().contains("bufs: expected 8, found 4"), "{e}");
    want.bufs = 4;
    let mut r = PacketReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Newest,
            expect: Some(want),
        },
    )
    .unwrap();
    w.write(
        b"payload-1",
        &RecordMeta {
            kind: PktKind::Video,
            track: 3,
            pts: 99,
            meta: b"hdr",
        },
    )
    .unwrap();
    {
        let Next::Frame(v) = r.next_view().unwrap() else {
            panic!("no record")
        };
        assert_eq!((v.payload(), v.meta()), (&b"payload-1"[..], &b"hdr"[..]));
        assert_eq!(
            (v.info().kind, v.info().track, v.info().pts),
            (PktKind::Video, 3, 99)
        );
        assert!(v.is_intact());
    }
    // Keep a view while the writer laps the arena: the view says it was overwritten.
    w.write(b"payload-2", &RecordMeta::default()).unwrap();
    let Next::Frame(v) = r.next_view().unwrap() else {
        panic!("no record")
    };
    assert!(v.is_intact());
    for _ in 0..10 {
        w.write(&[7; 200], &RecordMeta::default()).unwrap();
    }
    assert!(!v.is_intact(), "lapped while viewed");
}
