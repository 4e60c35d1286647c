//! Arbitrary bytes in a ring's header and data area: every read and write returns a value
//! or an error (`InvalidLayout` for what it cannot make sense of), never panics or hangs.

use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{ErrorKind, QueueOptions, Received, Start};
use membus_tests::{RawShare, ShmGuard};
use proptest::prelude::*;

const S: usize = 256;

type WriteFn = Box<dyn Fn(&[u8]) -> membus::Result<u64>>;
type ReadFn = Box<dyn FnMut() -> membus::Result<Received<Vec<u8>>>>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn corrupt_rings_yield_errors_not_panics(
        ring in proptest::collection::vec(any::<u8>(), S + 46),
        write in prop_oneof![any::<i64>(), (0i64..=S as i64), (0i64..=(S as i64 / 8)).prop_map(|w| w * 8)],
        seq in any::<i64>(),
        cmd in any::<bool>(),
        msg_len in 1usize..300,
    ) {
        let g = ShmGuard::new("hostile");
        let opts = QueueOptions::new().start(Start::Oldest).lock_timeout(Duration::from_millis(200));
        let (hdr, writer, mut reader): (usize, WriteFn, ReadFn) = if cmd {
            let c = MemCmd::create_with(g.name(), S, &opts).unwrap();
            let c2 = std::cell::RefCell::new(MemCmd::attach_with(g.name(), &opts).unwrap());
            (128, Box::new(move |m| c.write(m)), Box::new(move || c2.borrow_mut().read(Duration::ZERO)))
        } else {
            let w = Writer::create_with(g.name(), S, &opts).unwrap();
            let mut r = Reader::attach_with(g.name(), &opts).unwrap();
            (120, Box::new(move |m| w.write(m)), Box::new(move || r.read(Duration::ZERO)))
        };
        let raw = RawShare::open(g.name()).unwrap();
        for (i, b) in ring.iter().enumerate() {
            // SAFETY: hdr + i < object size (S + overhead); test-only raw poke.
            unsafe { std::ptr::write_volatile(raw.at(hdr + i), *b) };
        }
        raw.put_i64(8, write);
        raw.put_i64(16, seq);
        for _ in 0..64 {
            match reader() {
                Ok(Received::Message { payload, .. }) => prop_assert!(payload.len() <= S),
                Ok(_) => {}
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{}", e),
            }
            match writer(&vec![0x33; msg_len]) {
                Ok(_) => {}
                Err(e) => prop_assert!(matches!(e.kind(), ErrorKind::MessageTooLarge), "{}", e),
            }
        }
    }
}
