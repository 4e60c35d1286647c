//! memkv: the pymembus fixture, header bytes, bad input, and (with the derive) a real
//! child process updating a typed store.

use std::time::Duration;

use membus::memkv::{KvOptions, MemKv};
use membus::ErrorKind;
use membus_tests::{
    fixture_bytes, fixture_entry, install_fixture, install_share, le_i64, share_bytes, ShmGuard,
};

#[test]
fn fixture_reads_back_as_the_manifest_says() {
    let entry = fixture_entry("memkv_basic.bin");
    let g = install_fixture("memkv_basic.bin");
    let kv = MemKv::attach(g.name()).unwrap();
    let params = &entry["params"];
    assert_eq!(kv.count() as u64, params["count"].as_u64().unwrap());
    assert_eq!(
        kv.max_name_len() as u64,
        params["max_name_len"].as_u64().unwrap()
    );
    assert_eq!(
        kv.max_value_len() as u64,
        params["max_value_len"].as_u64().unwrap()
    );
    assert_eq!(kv.session_id(), entry["session_id"].as_i64().unwrap());
    let expect = &entry["expect"];
    assert_eq!(kv.epoch(), expect["epoch"].as_i64().unwrap());
    let values = expect["values"].as_object().unwrap();
    assert_eq!(values.len(), kv.count());
    for (name, want) in values {
        let got = kv.get_by_name(name).unwrap();
        assert!(!got.stale);
        assert_eq!(got.value, want.as_str().unwrap().as_bytes(), "{name}");
    }
    let snap = kv.snapshot().unwrap();
    assert_eq!(snap.epoch, 2);
    let names = kv.slot_names().unwrap();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(snap.values[i], values[n].as_str().unwrap().as_bytes());
    }
    let last: Vec<i64> = expect["slot_last_epoch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let all = kv.changed_since(-1).unwrap();
    assert_eq!(
        all.changes.iter().map(|c| c.epoch).collect::<Vec<_>>(),
        last
    );
    let ch = kv.changed_since(1).unwrap();
    assert_eq!(ch.epoch, 2);
    let want = expect["changed_since_epoch_1"].as_object().unwrap();
    assert_eq!(ch.changes.len(), want.len());
    for c in &ch.changes {
        assert_eq!(c.value, want[&names[c.index]].as_str().unwrap().as_bytes());
    }
    // A membus write to the pymembus store bumps the epoch and wakes nobody wrongly.
    assert_eq!(kv.set_by_name("count", "43").unwrap(), 3);
    assert_eq!(
        kv.wait_for_change(2, Duration::from_secs(5)).unwrap(),
        Some(3)
    );
    // Exact name lookup (W16): a longer or shorter name does not match.
    assert_eq!(kv.find("mode"), Some(0));
    assert_eq!(kv.find("mod"), None);
    assert_eq!(kv.find("modes"), None);
}

#[test]
fn membus_store_matches_the_fixture_byte_for_byte() {
    let g = ShmGuard::new("kvbytes");
    let kv = MemKv::create_named(g.name(), &["mode", "count", "status"], 14, 64).unwrap();
    kv.set(0, "auto").unwrap();
    kv.set_many_by_name(&[("count", b"42"), ("status", b"ready")])
        .unwrap();
    let ours = share_bytes(g.name());
    let theirs = fixture_bytes("memkv_basic.bin");
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours[..32], theirs[..32], "header count/N/V/epoch");
    assert_ne!(le_i64(&ours, 32), 0, "session id");
    // 40..128: pthread mutex and condition internals (robust vs not, futex words).
    assert_eq!(ours[128..], theirs[128..], "slots");
}

#[test]
fn lengths_are_rounded_for_alignment_and_misaligned_cpp_stores_refused() {
    let g = ShmGuard::new("kvround");
    let kv = MemKv::create(g.name(), 2, 8, 12).unwrap();
    assert_eq!(kv.max_value_len(), 14);
    assert_eq!(share_bytes(g.name()).len(), 128 + 2 * 40);
    drop(kv);

    // What libmembus C++ makes for 8/12: stride 38, 2 slots, 204 bytes.
    let mut bytes = vec![0u8; 128 + 2 * 38];
    bytes[0..8].copy_from_slice(&2i64.to_le_bytes());
    bytes[8..16].copy_from_slice(&8i64.to_le_bytes());
    bytes[16..24].copy_from_slice(&12i64.to_le_bytes());
    let g = install_share("kvmisaligned", &bytes);
    let e = MemKv::attach(g.name()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidLayout);
    assert_eq!(e.share(), Some(g.name()));
    assert!(
        e.to_string()
            .contains("18+8+12 = 38 is not a multiple of 8"),
        "{e}"
    );
    assert!(e.to_string().contains("misaligned"), "{e}");

    // A count that claims more slots than the object holds.
    bytes[0..8].copy_from_slice(&3i64.to_le_bytes());
    bytes[16..24].copy_from_slice(&14i64.to_le_bytes());
    let g = install_share("kvshort", &bytes);
    let e = MemKv::attach(g.name()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidLayout);
    assert_eq!(e.sizes(), Some((128 + 3 * 40, 204)));
}

#[test]
fn bad_names_and_values_are_refused() {
    let g = ShmGuard::new("kvbad");
    let e = MemKv::create_named(g.name(), &["ok", "a\0b"], 8, 14).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("NUL"), "{e}");
    let e = MemKv::create_named(g.name(), &["ninebytes"], 8, 14).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(e.sizes(), Some((8, 9)));
    let kv = MemKv::create_named(g.name(), &["a", "b"], 8, 14).unwrap();
    let e = kv.set(0, "x".repeat(15)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(e.sizes(), Some((14, 15)));
    assert!(e.to_string().contains(g.name()), "{e}");
    assert_eq!(
        kv.set(1, "nul\0").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kv.set(2, "x").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kv.set_by_name("c", "x").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kv.set_name(0, "way-too-long").unwrap_err().kind(),
        ErrorKind::MessageTooLarge
    );
    assert_eq!(kv.epoch(), 0, "nothing was written");
    kv.set(0, "x".repeat(14)).unwrap();
    assert_eq!(kv.get(0).unwrap().value.len(), 14);
}

#[test]
fn replace_stale_only_replaces_shares_without_a_live_owner() {
    let g = ShmGuard::new("kvreplace");
    let kv = MemKv::create(g.name(), 1, 8, 14).unwrap();
    let opts = KvOptions::new().replace_stale(true);
    let e = MemKv::create_with(g.name(), &["x"], 8, 14, &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CreateFailed);
    assert!(e.to_string().contains("live membus process"), "{e}");
    assert_eq!(
        MemKv::create_named(g.name(), &["x"], 8, 14)
            .unwrap_err()
            .errno(),
        Some(libc::EEXIST)
    );
    drop(kv);
    let g2 = install_share("kvstale", &fixture_bytes("memkv_basic.bin"));
    let kv = MemKv::create_with(g2.name(), &["x"], 8, 14, &opts).unwrap();
    assert_eq!(kv.slot_names().unwrap(), ["x"]);
    assert_eq!(kv.epoch(), 0);
}

#[test]
fn waiting_sees_a_change_from_another_thread() {
    let g = ShmGuard::new("kvwait");
    let kv = MemKv::create_named(g.name(), &["a"], 8, 14).unwrap();
    let peer = MemKv::attach(g.name()).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| peer.wait_for_change(0, Duration::from_secs(30)).unwrap());
        kv.set(0, "go").unwrap();
        assert_eq!(t.join().unwrap(), Some(1));
    });
    assert_eq!(
        peer.wait_for_change(1, Duration::from_millis(1)).unwrap(),
        None
    );
}

#[test]
fn a_read_only_handle_reads_waits_and_watches() {
    use membus::memkv::KvReader;
    let g = ShmGuard::new("kv-ro");
    let kv = MemKv::create_named(g.name(), &["a", "b"], 8, 22).unwrap();
    kv.set(0, "one").unwrap();
    let ro = KvReader::attach(g.name()).unwrap();
    assert_eq!(ro.slot_names().unwrap(), ["a", "b"]);
    assert_eq!(ro.get_by_name("a").unwrap().value, b"one");
    let e = ro.epoch();
    assert_eq!(ro.wait_for_change(e, Duration::ZERO).unwrap(), None);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| ro.wait_for_change(e, Duration::from_secs(20)).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        kv.set_many(&[(0, b"two"), (1, b"three")]).unwrap();
        assert_eq!(waiter.join().unwrap(), Some(e + 1));
    });
    let snap = ro.snapshot().unwrap();
    assert_eq!(snap.epoch, e + 1);
    assert_eq!(snap.values, [b"two".to_vec(), b"three".to_vec()]);
    let mut w = ro.watch_from(e);
    assert!(w.poll());
    assert_eq!(w.changes().unwrap().changes.len(), 2);
    assert!(!w.poll());
}
