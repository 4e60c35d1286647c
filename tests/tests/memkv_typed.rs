//! `#[derive(MemKv)]` end to end: typed keys, batches, snapshots, change events, schema
//! checks, foreign values that do not parse, the pymembus fixture, and a real child
//! process.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use membus::memkv::MemKv;
use membus::typed::TypedChanges;
use membus::{ErrorKind, Kv, MemKv, MemKvEnum};
use membus_tests::{install_fixture, kv_peer_bin, Counters, CountersChange, ShmGuard};

#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
enum Mode {
    Auto,
    Manual,
    #[memkv(rename = "off")]
    Off,
}

#[derive(MemKv, Clone, Debug, PartialEq)]
#[memkv(max_len = 32)]
struct Camera {
    exposure_us: u32,
    gain_db: f64,
    enabled: bool,
    mode: Mode,
    #[memkv(rename = "label")]
    name: String,
    #[memkv(max_len = 8)]
    tag: Option<String>,
    fps: Option<u16>,
    #[memkv(text, max_len = 45)]
    addr: std::net::Ipv4Addr,
    grade: char,
}

fn camera() -> Camera {
    Camera {
        exposure_us: 1000,
        gain_db: 1.5,
        enabled: true,
        mode: Mode::Auto,
        name: "front".into(),
        tag: None,
        fps: Some(30),
        addr: std::net::Ipv4Addr::new(10, 0, 0, 7),
        grade: 'A',
    }
}

#[test]
fn typed_get_set_batch_snapshot_and_changes() {
    let g = ShmGuard::new("typed");
    let kv = Kv::<Camera>::create(g.name(), &camera()).unwrap();
    assert_eq!(kv.epoch(), 1);
    let peer = Kv::<Camera>::attach(g.name()).unwrap();
    assert_eq!(peer.snapshot().unwrap(), camera());
    assert_eq!(peer.get(Camera::EXPOSURE_US).unwrap(), 1000u32);
    assert_eq!(peer.get(Camera::MODE).unwrap(), Mode::Auto);
    assert_eq!(peer.get(Camera::TAG).unwrap(), None);

    assert_eq!(kv.set(Camera::MODE, Mode::Off).unwrap(), 2);
    let e = kv
        .update(|b| {
            b.set(Camera::EXPOSURE_US, 2000)
                .set(Camera::TAG, Some("night".into()));
        })
        .unwrap();
    assert_eq!(e, 3);
    let (snap, epoch) = peer.snapshot_with_epoch().unwrap();
    assert_eq!(epoch, 3);
    assert_eq!(
        (snap.mode, snap.exposure_us, snap.tag.as_deref()),
        (Mode::Off, 2000, Some("night"))
    );

    // What a pymembus peer sees: plain text in plainly named slots, plus the fingerprint.
    let raw = MemKv::attach(g.name()).unwrap();
    let names = raw.slot_names().unwrap();
    assert_eq!(
        names,
        [
            "exposure_us",
            "gain_db",
            "enabled",
            "mode",
            "label",
            "tag",
            "fps",
            "addr",
            "grade",
            "__schema"
        ]
    );
    assert_eq!(raw.get_by_name("mode").unwrap().value, b"off");
    assert_eq!(raw.get_by_name("gain_db").unwrap().value, b"1.5");
    assert_eq!(raw.get_by_name("enabled").unwrap().value, b"true");
    assert_eq!(raw.get_by_name("addr").unwrap().value, b"10.0.0.7");
    assert_eq!(raw.get_by_name("tag").unwrap().value, b"night");

    // A pymembus peer writes text; the typed side reads it.
    raw.set_by_name("gain_db", "2.25").unwrap();
    let ch: TypedChanges<Camera> = peer.changes_since(3).unwrap();
    assert_eq!(ch.epoch, 4);
    assert!(ch.errors.is_empty());
    assert!(matches!(ch.changes.as_slice(), [CameraChange::GainDb(g)] if *g == 2.25));

    // Too long for the field's max_len: nothing written.
    let e = kv.set(Camera::TAG, Some("123456789".into())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert!(
        e.to_string().contains("field `tag`") && e.to_string().contains("max_len = 8"),
        "the error names the field and its declared max_len: {e}"
    );
    assert!(!e.to_string().contains("slot "), "not a slot number: {e}");
    let e = kv.set(Camera::NAME, "x".repeat(33)).unwrap_err();
    assert!(
        e.to_string().contains("field `name`") && e.to_string().contains("max_len = 32"),
        "{e}"
    );
    assert_eq!(kv.epoch(), 4);
}

#[test]
fn undecodable_foreign_values_name_the_field_and_keep_the_raw_text() {
    let g = ShmGuard::new("typedbad");
    let kv = Kv::<Camera>::create(g.name(), &camera()).unwrap();
    let raw = MemKv::attach(g.name()).unwrap();
    raw.set_many_by_name(&[("exposure_us", b"fast"), ("mode", b"Sport")])
        .unwrap();
    let e = kv.get(Camera::EXPOSURE_US).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert!(
        e.to_string().contains("field `exposure_us` holds \"fast\""),
        "{e}"
    );
    // Other fields still read.
    assert_eq!(kv.get(Camera::GAIN_DB).unwrap(), 1.5);
    let e = kv.snapshot().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    let s = e.to_string();
    assert!(
        s.contains("`exposure_us` holds \"fast\"") && s.contains("`mode` holds \"Sport\""),
        "{s}"
    );
    assert!(s.contains("expected one of Auto, Manual, off"), "{s}");
    let ch = kv.changes_since(1).unwrap();
    assert_eq!(ch.errors.len(), 2);
    assert!(ch.changes.is_empty());
    // Bytes that are not UTF-8 are an undecodable value too, even for a String field.
    raw.set_by_name("label", b"caf\xe9").unwrap();
    let e = kv.get(Camera::NAME).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert!(
        e.to_string().contains("field `name` holds \"caf\u{fffd}\""),
        "{e}"
    );
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    let s = kv.snapshot().unwrap_err().to_string();
    assert!(
        s.contains("`name` holds") && s.contains("`exposure_us` holds"),
        "{s}"
    );
}

#[derive(MemKv, Debug)]
#[memkv(max_len = 32)]
struct CameraV2 {
    exposure_us: u64,
    gain_db: f64,
}

#[derive(MemKv, Debug)]
struct Renamed {
    #[memkv(rename = "exposure")]
    exposure_us: u32,
}

#[test]
fn schema_mismatch_lists_every_difference() {
    let g = ShmGuard::new("typedschema");
    let _kv = Kv::<Camera>::create(g.name(), &camera()).unwrap();
    let e = Kv::<CameraV2>::attach(g.name()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    // The store describes itself, so the differences are named field by field.
    let s = e.to_string();
    assert!(s.contains("8 differences"), "{s}");
    assert!(
        s.contains("field `exposure_us`: type changed from u64 to u32"),
        "{s}"
    );
    assert!(
        s.contains("field `enabled` (slot 2) appended without a default"),
        "{s}"
    );
    assert!(s.contains("(the store was created for Camera)"), "{s}");
    let e = Kv::<Renamed>::attach(g.name()).unwrap_err();
    assert!(
        e.to_string()
            .contains("field `exposure_us`: slot renamed from \"exposure\" to \"exposure_us\""),
        "{e}"
    );
    // Without the description, the exact layout check names the slots.
    std::fs::remove_file(format!("/dev/shm{}.membus-schema", g.name())).unwrap();
    let s = Kv::<CameraV2>::attach(g.name()).unwrap_err().to_string();
    assert!(s.contains("slot count: expected 3, found 10"), "{s}");
    assert!(
        s.contains("slot 2: expected name \"__schema\", found \"enabled\""),
        "{s}"
    );
    assert!(s.contains("slot 9: unexpected slot \"__schema\""), "{s}");
    let e = Kv::<Renamed>::attach(g.name()).unwrap_err();
    assert!(
        e.to_string()
            .contains("slot 0: expected name \"exposure\", found \"exposure_us\""),
        "{e}"
    );

    // Same names, different types: only the fingerprint tells.
    #[derive(MemKv, Debug)]
    #[memkv(max_len = 32)]
    struct SameNames {
        exposure_us: u64,
        gain_db: f64,
    }
    let g2 = ShmGuard::new("typedfp");
    let _v2 = Kv::<CameraV2>::create(
        g2.name(),
        &CameraV2 {
            exposure_us: 1,
            gain_db: 0.0,
        },
    )
    .unwrap();
    assert!(Kv::<SameNames>::attach(g2.name()).is_ok());
    #[derive(MemKv, Debug)]
    #[memkv(max_len = 32)]
    struct OtherTypes {
        exposure_us: i32,
        gain_db: f64,
    }
    let e = Kv::<OtherTypes>::attach(g2.name()).unwrap_err();
    assert!(
        e.to_string()
            .contains("field `exposure_us`: type changed from i32 to u64"),
        "{e}"
    );
    std::fs::remove_file(format!("/dev/shm{}.membus-schema", g2.name())).unwrap();
    let e = Kv::<OtherTypes>::attach(g2.name()).unwrap_err();
    assert!(e.to_string().contains("schema fingerprint"), "{e}");
}

/// The fixture's slots, matched exactly (no fingerprint slot, N = 14 like pymembus made).
#[derive(MemKv, Debug, PartialEq)]
#[memkv(no_fingerprint, max_len = 64, name_len = 14)]
struct FixtureState {
    mode: String,
    count: u32,
    status: String,
}

#[derive(MemKv, Debug, PartialEq)]
#[memkv(no_fingerprint, max_len = 64)]
struct FixtureStatus {
    mode: String,
    count: u32,
    status: Status,
}

#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
#[memkv(rename_all = "lowercase")]
enum Status {
    Ready,
    Busy,
}

#[test]
fn fixture_reads_through_a_derived_struct() {
    let g = install_fixture("memkv_basic.bin");
    let kv = Kv::<FixtureState>::attach(g.name()).unwrap();
    let want = FixtureState {
        mode: "auto".into(),
        count: 42,
        status: "ready".into(),
    };
    assert_eq!(kv.snapshot().unwrap(), want);
    assert_eq!(kv.get(FixtureState::COUNT).unwrap(), 42);
    let ch = kv.changes_since(1).unwrap();
    assert_eq!(ch.epoch, 2);
    assert_eq!(ch.changes.len(), 2);
    assert!(matches!(ch.changes[0], FixtureStateChange::Count(42)));
    let kv = Kv::<FixtureStatus>::attach(g.name()).unwrap();
    assert_eq!(kv.get(FixtureStatus::STATUS).unwrap(), Status::Ready);

    // A membus-made store for the same schema has the fixture's exact layout.
    let g2 = ShmGuard::new("typedfixture");
    let ours = Kv::<FixtureState>::create(g2.name(), &want).unwrap();
    assert_eq!(
        (
            ours.raw().count(),
            ours.raw().max_name_len(),
            ours.raw().max_value_len()
        ),
        (3, 14, 64)
    );
}

#[test]
fn waiting_for_given_fields() {
    let g = ShmGuard::new("typedwait");
    let kv = Kv::<Camera>::create(g.name(), &camera()).unwrap();
    let peer = Kv::<Camera>::attach(g.name()).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            peer.wait_for(&[Camera::MODE.id()], 1, Duration::from_secs(30))
                .unwrap()
                .unwrap()
        });
        kv.set(Camera::GAIN_DB, 3.0).unwrap(); // not watched
        kv.set(Camera::MODE, Mode::Manual).unwrap();
        let got = t.join().unwrap();
        assert!(
            matches!(got.changes.as_slice(), [CameraChange::Mode(Mode::Manual)]),
            "{got:?}"
        );
    });
    assert!(peer
        .wait_for(&[Camera::MODE.id()], kv.epoch(), Duration::from_millis(1))
        .unwrap()
        .is_none());
}

#[test]
fn child_process_batches_are_seen_consistently_and_completely() {
    const FREE: u32 = 2000;
    const ACKED: u32 = 200;
    let g = ShmGuard::new("typedxproc");
    let zero = Counters {
        a: 0,
        b: 0,
        c: 0,
        round: 0,
        ack: 0,
    };
    let kv = Kv::<Counters>::create(g.name(), &zero).unwrap();
    let mut since = kv.epoch();
    let child = Command::new(kv_peer_bin!())
        .args([g.name(), &FREE.to_string(), &ACKED.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let consistent = |s: &Counters| {
        assert_eq!(
            (s.a, s.b, s.c),
            (u64::from(s.round), u64::from(s.round), i64::from(s.round)),
            "torn snapshot {s:?}"
        );
    };
    // Phase 1: the child writes as fast as it can; every snapshot must be one whole batch,
    // and rounds never go backwards.
    let mut last = 0;
    let mut snapshots = 0u64;
    loop {
        let s = kv.snapshot().unwrap();
        consistent(&s);
        assert!(
            s.round >= last,
            "round went back from {last} to {}",
            s.round
        );
        last = s.round;
        snapshots += 1;
        if s.round >= FREE {
            break;
        }
    }
    // Phase 2: the child waits for our acknowledgement of each round: every change of
    // `round` must be seen.
    let mut seen = BTreeSet::new();
    while !seen.contains(&(FREE + ACKED)) {
        let ch = kv
            .wait_for(&[Counters::ROUND.id()], since, Duration::from_secs(30))
            .unwrap()
            .expect("the child stopped writing");
        since = ch.epoch;
        assert!(ch.errors.is_empty(), "{:?}", ch.errors);
        for c in ch.changes {
            if let CountersChange::Round(r) = c {
                if r > FREE {
                    seen.insert(r);
                }
                consistent(&kv.snapshot().unwrap());
                kv.set(Counters::ACK, r).unwrap();
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("wrote {} rounds", FREE + ACKED)
    );
    assert_eq!(seen, (FREE + 1..=FREE + ACKED).collect::<BTreeSet<_>>());
    assert!(snapshots >= 1);
    let fin = kv.snapshot().unwrap();
    consistent(&fin);
    assert_eq!(fin.round, FREE + ACKED);
}

mod roundtrip {
    use super::*;
    use proptest::prelude::*;

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Auto), Just(Mode::Manual), Just(Mode::Off)]
    }

    fn cam() -> impl Strategy<Value = Camera> {
        (
            (
                any::<u32>(),
                any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()),
                any::<bool>(),
                mode(),
            ),
            (
                "[^\0]{0,8}",
                proptest::option::of("[^\0]{1,2}"),
                any::<Option<u16>>(),
                any::<[u8; 4]>(),
            ),
            any::<char>().prop_filter("NUL", |c| *c != '\0'),
        )
            .prop_map(
                |((exposure_us, gain_db, enabled, mode), (name, tag, fps, ip), grade)| Camera {
                    exposure_us,
                    gain_db,
                    enabled,
                    mode,
                    name,
                    tag,
                    fps,
                    addr: std::net::Ipv4Addr::from(ip),
                    grade,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Every field type survives the trip through its text form in shared memory.
        #[test]
        fn typed_values_round_trip_through_the_store(v in cam()) {
            let g = ShmGuard::new("typedprop");
            let kv = Kv::<Camera>::create(g.name(), &v).unwrap();
            prop_assert_eq!(kv.snapshot().unwrap(), v.clone());
            kv.store(&v).unwrap();
            prop_assert_eq!(kv.snapshot().unwrap(), v.clone());
            prop_assert_eq!(kv.get(Camera::GAIN_DB).unwrap(), v.gain_db);
            prop_assert_eq!(kv.get(Camera::GRADE).unwrap(), v.grade);
        }
    }
}
