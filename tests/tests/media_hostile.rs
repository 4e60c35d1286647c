//! Arbitrary header and slot words written into live media shares while readers are
//! attached: every accessor returns a value or an error, never panics, hangs or reads
//! out of bounds.

use membus::layout::media::VideoFormat;
use membus::mempkt::{PacketParams, PacketReader, PacketWriter, RecordMeta};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::pixel::Rgb;
use membus::{ErrorKind, Next};
use membus_tests::{RawShare, ShmGuard};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn hostile_words_in_a_live_memvid(pokes in proptest::collection::vec((0usize..700, any::<i64>()), 1..12)) {
        let g = ShmGuard::new("vid-hostile");
        let mut w = VideoWriter::create(g.name(), &VideoParams::new(8, 4, VideoFormat::Rgb24, 30, 3)).unwrap();
        for _ in 0..2 {
            w.frame().fill(5).unwrap();
            w.publish().unwrap();
        }
        let mut r = VideoReader::attach_with(g.name(), &membus::memvid::ReaderOptions { from: membus::ReadFrom::Oldest, expect: None }).unwrap();
        let raw = RawShare::open(g.name()).unwrap();
        for (word, v) in &pokes {
            // Header words (0..240) and the slot headers (from 4096).
            let off = if *word < 30 { word * 8 } else { 4096 + (word - 30) * 8 };
            if off + 8 <= raw.len() {
                raw.put_i64(off, *v);
            }
        }
        for _ in 0..8 {
            match r.next() {
                Ok(Next::Frame(f)) => {
                    let _ = (f.vpts(), f.apts(), f.user_data(), f.to_vec(), f.is_intact());
                    let _ = f.row::<Rgb>(3);
                }
                Ok(_) => {}
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{}", e),
            }
        }
        for i in 0..3 {
            if let Ok(f) = r.slot(i) {
                let _ = (f.to_vec(), f.user_data());
            }
        }
        // A reader attaching afterwards validates the damaged header.
        if let Err(e) = VideoReader::attach(g.name()) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{}", e);
        }
    }

    #[test]
    fn hostile_words_in_a_live_mempkt(pokes in proptest::collection::vec((0usize..600, any::<i64>()), 1..12)) {
        let g = ShmGuard::new("pkt-hostile");
        let mut w = PacketWriter::create(g.name(), &PacketParams::new(4, 4096, 512)).unwrap();
        for i in 0..3u8 {
            w.write(&[i; 100], &RecordMeta { meta: b"m", ..RecordMeta::default() }).unwrap();
        }
        let mut r = PacketReader::attach_with(g.name(), &membus::mempkt::ReaderOptions { from: membus::ReadFrom::Oldest, expect: None }).unwrap();
        let raw = RawShare::open(g.name()).unwrap();
        for (word, v) in &pokes {
            let off = word * 8;
            if off + 8 <= 4096 {
                raw.put_i64(off, *v);
            }
        }
        let (mut p, mut m) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            match r.next_into(&mut p, &mut m) {
                Ok(Next::Frame(info)) => prop_assert!(info.len + info.meta_len <= 4096),
                Ok(_) => {}
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{}", e),
            }
        }
        if let Err(e) = PacketReader::attach(g.name()) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{}", e);
        }
    }
}
