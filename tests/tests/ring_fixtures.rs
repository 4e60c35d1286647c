//! memmsg and memcmd shares written by pymembus 2.2.0 read back as manifest.json says, and
//! shares membus writes are byte-identical to them apart from the session id and the
//! mutex's robust bit.

use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{ErrorKind, QueueOptions, Received, Start};
use membus_tests::{fixture_bytes, fixture_entry, install_fixture, le_i64, share_bytes, ShmGuard};

fn oldest() -> QueueOptions {
    QueueOptions::new().start(Start::Oldest)
}

fn drain(read: &mut dyn FnMut() -> Received<Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match read() {
            Received::Message { payload, .. } => out.push(String::from_utf8(payload).unwrap()),
            Received::Timeout => return out,
            Received::Overrun { lost } => panic!("unexpected overrun ({lost} lost)"),
        }
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn memmsg_basic_reads_back() {
    let entry = fixture_entry("memmsg_basic.bin");
    let g = install_fixture("memmsg_basic.bin");
    let mut r = Reader::attach_with(g.name(), &oldest().expect_capacity(1024)).unwrap();
    assert_eq!(
        r.capacity(),
        entry["expect"]["header"]["size"].as_u64().unwrap() as usize
    );
    assert_eq!(r.session_id(), entry["session_id"].as_i64().unwrap());
    assert!(r.poll(), "a fresh oldest-first reader has backlog");
    let got = drain(&mut || r.read(Duration::ZERO).unwrap());
    assert_eq!(got, strings(&entry["expect"]["messages_from_start"]));
    let bytes = share_bytes(g.name());
    assert_eq!(
        le_i64(&bytes, 8),
        entry["expect"]["header"]["write"].as_i64().unwrap()
    );
    assert_eq!(
        le_i64(&bytes, 16),
        entry["expect"]["header"]["seq"].as_i64().unwrap()
    );

    // A reader starting at the latest position sees none of the backlog...
    let mut latest = Reader::attach(g.name()).unwrap();
    assert!(!latest.poll());
    assert_eq!(latest.read(Duration::ZERO).unwrap(), Received::Timeout);
    // ...and a membus writer can append to a share a libmembus process made (its mutex is
    // the non-robust Boost 1.74 kind).
    let w = Writer::attach(g.name()).unwrap();
    assert_eq!(w.write(b"from rust").unwrap(), 3);
    assert_eq!(
        latest.read(Duration::from_secs(1)).unwrap(),
        Received::Message {
            seq: 3,
            payload: b"from rust".to_vec()
        }
    );
}

#[test]
fn memmsg_wrapped_reads_what_pymembus_saw() {
    let entry = fixture_entry("memmsg_wrapped.bin");
    let g = install_fixture("memmsg_wrapped.bin");
    let mut r = Reader::attach_with(g.name(), &oldest()).unwrap();
    let expected: Vec<String> = entry["expect"]["pymembus_reader_from_offset0_saw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            assert_eq!(pair[1], false, "pymembus saw no overrun");
            pair[0].as_str().unwrap().to_string()
        })
        .collect();
    // Messages 1..=5 were overwritten by the wrap: membus reports them (pymembus cannot),
    // then delivers exactly what pymembus's reader saw.
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Overrun { lost: 5 },
        "the overwritten part of the backlog is counted"
    );
    let mut seqs = Vec::new();
    let got = drain(&mut || {
        let x = r.read(Duration::ZERO).unwrap();
        if let Received::Message { seq, .. } = &x {
            seqs.push(*seq);
        }
        x
    });
    assert_eq!(got, expected);
    assert_eq!(seqs, vec![6, 7, 8, 9, 10]);
    assert_eq!(
        le_i64(&share_bytes(g.name()), 16),
        entry["expect"]["header_seq"].as_i64().unwrap()
    );
}

#[test]
fn memcmd_basic_reads_back() {
    let entry = fixture_entry("memcmd_basic.bin");
    let g = install_fixture("memcmd_basic.bin");
    let mut c = MemCmd::attach_with(g.name(), &oldest().register_reader(false)).unwrap();
    assert_eq!(
        c.reader_count(),
        entry["expect"]["reader_count"].as_i64().unwrap()
    );
    assert_eq!(c.session_id(), entry["session_id"].as_i64().unwrap());
    assert_eq!(c.seq(), entry["expect"]["header_seq"].as_u64().unwrap());
    let got: Vec<String> = c
        .try_iter()
        .map(|x| String::from_utf8(x.unwrap().message().unwrap()).unwrap())
        .collect();
    assert_eq!(got, strings(&entry["expect"]["messages_from_start"]));
    // Registering bumps the count in the share; dropping withdraws it.
    {
        let _reg = MemCmd::attach(g.name()).unwrap();
        assert_eq!(c.reader_count(), 2);
    }
    assert_eq!(c.reader_count(), 1);
}

#[test]
fn a_memmsg_fixture_is_refused_as_memcmd_and_the_other_way_round() {
    let g = install_fixture("memmsg_basic.bin");
    let e = MemCmd::attach(g.name()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidLayout);
    assert!(e.to_string().contains("memmsg"), "{e}");
    let g = install_fixture("memcmd_basic.bin");
    let e = Reader::attach(g.name()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidLayout);
    assert!(e.to_string().contains("memcmd"), "{e}");
}

/// Compares a share membus wrote with a fixture: identical except the session id (8 bytes at
/// 24) and the mutex's internals. The mutex's `__kind` must be pshared (0x80), plus robust
/// (0x10) for membus; its other words are glibc's lock state (e.g. a robust mutex keeps
/// `__count` = 1 after an unlock), which differ with use.
fn assert_same_bytes_but_id_and_lock_state(ours: &[u8], theirs: &[u8], mutex_off: usize) {
    assert_eq!(ours.len(), theirs.len(), "object size");
    let kind_off = mutex_off + 16;
    let kind = |b: &[u8]| i32::from_le_bytes(b[kind_off..kind_off + 4].try_into().unwrap());
    assert_eq!(kind(theirs), 0x80, "fixture mutex: pshared, not robust");
    assert_eq!(kind(ours), 0x90, "membus mutex: pshared and robust");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if (24..32).contains(&i) || (mutex_off..mutex_off + 40).contains(&i) {
            continue;
        }
        assert_eq!(
            a, b,
            "byte {i} differs (header fields, condition image, frames)"
        );
    }
}

#[test]
fn a_fresh_membus_header_has_glibcs_construction_images() {
    let g = ShmGuard::new("hdr-fresh");
    let w = Writer::create(g.name(), 1024).unwrap();
    let b = share_bytes(g.name());
    assert_eq!(le_i64(&b, 0), 1024);
    assert_eq!(le_i64(&b, 8), 0);
    assert_eq!(le_i64(&b, 16), 0);
    assert_eq!(le_i64(&b, 24), w.session_id());
    assert_ne!(w.session_id(), 0);
    // Mutex: all zero but __kind = pshared | robust (spec 2.3, Boost >= 1.78 image).
    let mut mutex = [0u8; 40];
    mutex[16] = 0x90;
    assert_eq!(&b[32..72], &mutex);
    // Condition: all zero but __wrefs = 1 (pshared, CLOCK_REALTIME), as in the fixture.
    assert_eq!(&b[72..120], &fixture_bytes("memmsg_basic.bin")[72..120]);
    assert_eq!(b[76 + 32], 1);
    assert_eq!(b.len(), 1024 + 166);
}

#[test]
fn membus_writes_the_same_bytes_as_pymembus() {
    let g = ShmGuard::new("hdr-msg");
    let w = Writer::create(g.name(), 1024).unwrap();
    w.write(b"hello").unwrap();
    w.write(b"world!").unwrap();
    assert_same_bytes_but_id_and_lock_state(
        &share_bytes(g.name()),
        &fixture_bytes("memmsg_basic.bin"),
        32,
    );

    let g = ShmGuard::new("hdr-wrap");
    let w = Writer::create(g.name(), 128).unwrap();
    for i in 1..=10 {
        w.write(format!("msg-{i:02}").as_bytes()).unwrap();
    }
    assert_same_bytes_but_id_and_lock_state(
        &share_bytes(g.name()),
        &fixture_bytes("memmsg_wrapped.bin"),
        32,
    );

    let g = ShmGuard::new("hdr-cmd");
    let c = MemCmd::create(g.name(), 1024).unwrap();
    for m in ["pan-left", "zoom-in", "pan-stop"] {
        c.write(m.as_bytes()).unwrap();
    }
    assert_same_bytes_but_id_and_lock_state(
        &share_bytes(g.name()),
        &fixture_bytes("memcmd_basic.bin"),
        40,
    );
}
