//! Self-describing typed shares: the published description, its companion object's
//! lifecycle and hostile contents, and the schema evolution verdicts on attach.

use std::time::Duration;

use membus::typed::schema::{self, Schema, SchemaKind};
use membus::typed::{KvSchema, Message, Receiver, Recv, Sender};
use membus::{ErrorKind, Kv, QueueOptions};
use membus_tests::schema_types::{AllTypes, Command};
use membus_tests::ShmGuard;

fn companion_path(name: &str) -> String {
    format!("/dev/shm{name}{}", schema::SCHEMA_SUFFIX)
}

#[test]
fn a_created_store_carries_its_full_description() {
    let g = ShmGuard::new("schema-desc");
    let kv = Kv::create(g.name(), &AllTypes::first()).unwrap();
    let s = schema::read(g.name()).unwrap().expect("a description");
    assert_eq!(s, AllTypes::schema());
    assert_eq!(s.kind, SchemaKind::Memkv);
    assert_eq!(s.type_name, "AllTypes");
    assert_eq!(s.fields.len(), 21);
    let level = s.fields.iter().find(|f| f.name == "level").unwrap();
    assert_eq!(level.ty, "enum");
    assert_eq!(level.enum_name.as_deref(), Some("Level"));
    assert_eq!(level.variants, ["Low", "High", "off"]);
    let label = s.fields.iter().find(|f| f.name == "a_string").unwrap();
    assert_eq!(
        (label.slot.as_str(), label.ty.as_str(), label.max_len),
        ("label", "string", 24)
    );
    let maybe = s.fields.iter().find(|f| f.name == "maybe_u16").unwrap();
    assert!(maybe.optional && maybe.ty == "u16" && maybe.rust == "Option<u16>");
    let addr = s.fields.iter().find(|f| f.name == "addr").unwrap();
    assert_eq!((addr.ty.as_str(), addr.max_len), ("text", 15));
    // The fingerprint in the description is the one in the store's `__schema` slot.
    let fp = kv.raw().get(21).unwrap().value;
    assert_eq!(
        s.fingerprint.as_deref().map(str::as_bytes),
        Some(fp.as_slice())
    );
    // The JSON round-trips.
    assert_eq!(Schema::from_json(&s.to_json()).unwrap(), s);
    // The pymembus view is unchanged: 21 fields and the fingerprint slot, nothing else.
    assert_eq!(kv.raw().slot_names().unwrap().len(), 22);
    drop(kv);
    assert!(
        !std::path::Path::new(&companion_path(g.name())).exists(),
        "the creator's drop removes the description"
    );
}

#[test]
fn remove_takes_the_description_with_the_share() {
    let g = ShmGuard::new("schema-rm");
    let kv = Kv::create(g.name(), &AllTypes::first()).unwrap();
    assert!(std::path::Path::new(&companion_path(g.name())).exists());
    assert!(membus::remove(g.name()).unwrap());
    assert!(!std::path::Path::new(&companion_path(g.name())).exists());
    drop(kv);
}

#[test]
fn hostile_descriptions_give_clear_errors() {
    let g = ShmGuard::new("schema-hostile");
    let path = companion_path(g.name());
    let mut good = b"MBSCHEM1".to_vec();
    let json = AllTypes::schema_json();
    good.extend_from_slice(&(json.len() as u64).to_le_bytes());
    good.extend_from_slice(json.as_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", b"MBS".to_vec(), "shorter than its 16-byte header"),
        (
            "magic",
            {
                let mut b = good.clone();
                b[0] = b'X';
                b
            },
            "wrong magic",
        ),
        (
            "empty",
            {
                let mut b = good.clone();
                b[8..16].copy_from_slice(&0u64.to_le_bytes());
                b
            },
            "is empty",
        ),
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            "truncated or corrupt",
        ),
        (
            "huge",
            {
                let mut b = good.clone();
                b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            },
            "truncated or corrupt",
        ),
        (
            "json",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] = b'!';
                b
            },
            "corrupt",
        ),
        (
            "fields",
            {
                let bad = json.replace("\"type\": \"u8\"", "\"type\": \"u9\"");
                let mut b = b"MBSCHEM1".to_vec();
                b.extend_from_slice(&(bad.len() as u64).to_le_bytes());
                b.extend_from_slice(bad.as_bytes());
                b
            },
            "unknown type \"u9\"",
        ),
    ];
    for (what, bytes, expect) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let e = schema::read(g.name()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidLayout, "{what}: {e}");
        assert!(e.to_string().contains(expect), "{what}: {e}");
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(schema::read(g.name()).unwrap(), Some(AllTypes::schema()));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(schema::read(g.name()).unwrap(), None);
}

#[test]
fn a_new_creator_replaces_a_stale_description() {
    let g = ShmGuard::new("schema-stale");
    let path = companion_path(g.name());
    std::fs::write(&path, b"left over by something else").unwrap();
    let _kv = Kv::create(g.name(), &AllTypes::first()).unwrap();
    assert_eq!(schema::read(g.name()).unwrap(), Some(AllTypes::schema()));
}

/// Two versions of one schema (same type names, as two builds of a program would have).
mod v1 {
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        High,
    }
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: u32,
        pub level: Level,
    }
    #[derive(membus::Message, Debug, PartialEq)]
    pub enum Cmd {
        Stop,
        Go { speed: u32 },
    }
}

mod v2 {
    /// A new variant at the end.
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        High,
        Max,
    }
    /// A field appended with a default.
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: u32,
        pub level: Level,
        #[memkv(default = "7")]
        pub gear: u8,
    }
    /// A new variant.
    #[derive(membus::Message, Debug, PartialEq)]
    pub enum Cmd {
        Stop,
        Go { speed: u32 },
        Turn(i16),
    }
}

mod renamed {
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        High,
    }
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub velocity: u32,
        pub level: Level,
    }
    #[derive(membus::Message, Debug, PartialEq)]
    pub enum Cmd {
        Halt,
        Go { speed: u32 },
    }
}

mod retyped {
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        High,
    }
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: i64,
        pub level: Level,
    }
    #[derive(membus::Message, Debug, PartialEq)]
    pub enum Cmd {
        Stop,
        Go { speed: f64 },
    }
}

mod renamed_variant {
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        Top,
    }
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: u32,
        pub level: Level,
    }
}

/// `level` removed.
mod only_speed {
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: u32,
        #[memkv(default = "0")]
        pub gear: u8,
    }
}

mod appended_without_default {
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        High,
    }
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: u32,
        pub level: Level,
        pub gear: u8,
    }
}

#[test]
fn evolution_append_and_new_variant_are_compatible_for_an_older_reader() {
    let g = ShmGuard::new("evo-append");
    let new = Kv::create(
        g.name(),
        &v2::Cfg {
            speed: 10,
            level: v2::Level::High,
            gear: 3,
        },
    )
    .unwrap();
    let old = Kv::<v1::Cfg>::attach(g.name()).expect("an older reader attaches");
    let c = old.compat();
    assert!(c.is_compatible() && !c.is_identical(), "{c:?}");
    assert!(
        c.additions
            .iter()
            .any(|a| a.contains("field `gear`") && a.contains("appended")),
        "{c:?}"
    );
    assert!(
        c.additions
            .iter()
            .any(|a| a.contains("field `level`") && a.contains("\"Max\"")),
        "{c:?}"
    );
    assert_eq!(
        old.snapshot().unwrap(),
        v1::Cfg {
            speed: 10,
            level: v1::Level::High
        }
    );
    old.set(v1::Cfg::SPEED, 11).unwrap();
    assert_eq!(new.get(v2::Cfg::SPEED).unwrap(), 11);
    // A value the older reader does not know is an error naming the field, nothing more.
    new.set(v2::Cfg::LEVEL, v2::Level::Max).unwrap();
    let e = old.get(v1::Cfg::LEVEL).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert!(
        e.to_string().contains("field `level`") && e.to_string().contains("\"Max\""),
        "{e}"
    );
    assert_eq!(old.get(v1::Cfg::SPEED).unwrap(), 11);
    // Changes of the field the older reader does not know are not its events.
    let since = old.epoch();
    new.set(v2::Cfg::GEAR, 4).unwrap();
    assert!(old.changes_since(since).unwrap().changes.is_empty());
}

#[test]
fn evolution_a_new_variant_alone_is_reported_and_a_renamed_one_refused() {
    // Variants do not change the fingerprint: the description tells.
    mod newer {
        #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
        pub enum Level {
            Low,
            High,
            Max,
        }
        #[derive(membus::MemKv, Clone, Debug, PartialEq)]
        pub struct Cfg {
            pub speed: u32,
            pub level: Level,
        }
    }
    let g = ShmGuard::new("evo-variant");
    let _new = Kv::create(
        g.name(),
        &newer::Cfg {
            speed: 1,
            level: newer::Level::Max,
        },
    )
    .unwrap();
    let old = Kv::<v1::Cfg>::attach(g.name()).unwrap();
    assert_eq!(
        old.compat().additions,
        ["field `level`: new enum variant \"Max\""]
    );
    let e = old.get(v1::Cfg::LEVEL).unwrap_err();
    assert!(e.to_string().contains("field `level` holds \"Max\""), "{e}");
    drop(_new);
    let _v1 = Kv::create(
        g.name(),
        &v1::Cfg {
            speed: 1,
            level: v1::Level::Low,
        },
    )
    .unwrap();
    let e = mismatch::<renamed_variant_same_len::Cfg>(g.name());
    assert!(
        e.contains(
            "field `level`: enum variant \"Top\" renamed or removed (the store has Low, High)"
        ),
        "{e}"
    );
}

mod renamed_variant_same_len {
    #[derive(membus::MemKvEnum, Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Low,
        Top,
    }
    #[derive(membus::MemKv, Clone, Debug, PartialEq)]
    pub struct Cfg {
        pub speed: u32,
        pub level: Level,
    }
}

#[test]
fn evolution_a_newer_reader_reads_missing_fields_as_their_default() {
    let g = ShmGuard::new("evo-default");
    let _old = Kv::create(
        g.name(),
        &v1::Cfg {
            speed: 5,
            level: v1::Level::Low,
        },
    )
    .unwrap();
    let new = Kv::<v2::Cfg>::attach(g.name()).expect("a newer reader attaches");
    assert!(
        new.compat()
            .defaulted
            .iter()
            .any(|d| d.contains("field `gear`") && d.contains("\"7\"")),
        "{:?}",
        new.compat()
    );
    assert_eq!(new.get(v2::Cfg::GEAR).unwrap(), 7);
    assert_eq!(
        new.snapshot().unwrap(),
        v2::Cfg {
            speed: 5,
            level: v2::Level::Low,
            gear: 7
        }
    );
    let e = new.set(v2::Cfg::GEAR, 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.to_string().contains("field `gear` is not in this store"),
        "{e}"
    );
    let e = new.update(|b| {
        b.set(v2::Cfg::SPEED, 1).set(v2::Cfg::GEAR, 1);
    });
    assert!(e.unwrap_err().to_string().contains("field `gear`"));
    new.store(&v2::Cfg {
        speed: 6,
        level: v2::Level::High,
        gear: 9,
    })
    .unwrap();
    assert_eq!(new.get(v2::Cfg::SPEED).unwrap(), 6);
}

fn mismatch<S: KvSchema + std::fmt::Debug>(name: &str) -> String {
    let e = Kv::<S>::attach(name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch, "{e}");
    e.to_string()
}

#[test]
fn evolution_rename_removal_and_type_change_are_incompatible() {
    let g = ShmGuard::new("evo-incompat");
    let _v1 = Kv::create(
        g.name(),
        &v1::Cfg {
            speed: 5,
            level: v1::Level::Low,
        },
    )
    .unwrap();
    let e = mismatch::<renamed::Cfg>(g.name());
    assert!(
        e.contains("field `velocity` renamed or removed (the store has `speed`)"),
        "{e}"
    );
    let e = mismatch::<retyped::Cfg>(g.name());
    assert!(
        e.contains("field `speed`: type changed from i64 to u32"),
        "{e}"
    );
    drop(_v1);
    let _v2 = Kv::create(
        g.name(),
        &v2::Cfg {
            speed: 5,
            level: v2::Level::Low,
            gear: 1,
        },
    )
    .unwrap();
    let e = mismatch::<renamed_variant::Cfg>(g.name());
    assert!(
        e.contains(
            "field `level`: enum variant \"Top\" renamed or removed (the store has Low, High, Max)"
        ),
        "{e}"
    );
    let e = mismatch::<only_speed::Cfg>(g.name());
    assert!(
        e.contains("slot 1: expected field `gear`, found `level` (fields reordered or removed)"),
        "{e}"
    );
    drop(_v2);
    let _short = Kv::create(g.name(), &only_speed::Cfg { speed: 1, gear: 2 }).unwrap();
    let e = mismatch::<v1::Cfg>(g.name());
    assert!(
        e.contains("slot 1: field `level` renamed or removed (the store has `gear`)"),
        "{e}"
    );
    let e = mismatch::<renamed::Cfg>(g.name());
    assert!(e.contains("field `velocity`"), "{e}");
}

#[test]
fn evolution_an_appended_field_needs_a_default() {
    let g = ShmGuard::new("evo-nodefault");
    let _new = Kv::create(
        g.name(),
        &appended_without_default::Cfg {
            speed: 1,
            level: appended_without_default::Level::Low,
            gear: 2,
        },
    )
    .unwrap();
    let e = mismatch::<v1::Cfg>(g.name());
    assert!(
        e.contains("field `gear` (slot 2) appended without a default"),
        "{e}"
    );
}

#[test]
fn a_store_without_description_keeps_the_exact_check() {
    let g = ShmGuard::new("evo-nodesc");
    let _new = Kv::create(
        g.name(),
        &v2::Cfg {
            speed: 1,
            level: v2::Level::Low,
            gear: 2,
        },
    )
    .unwrap();
    std::fs::remove_file(companion_path(g.name())).unwrap();
    let e = mismatch::<v1::Cfg>(g.name());
    assert!(e.contains("slot count: expected 3, found 4"), "{e}");
}

#[test]
fn message_channels_publish_and_check_their_schema() {
    let g = ShmGuard::new("evo-msg");
    let mut tx = Sender::<v2::Cmd>::create_memmsg(g.name(), 4096, &QueueOptions::new()).unwrap();
    let s = schema::read(g.name()).unwrap().expect("a description");
    assert_eq!(Some(s.clone()), v2::Cmd::schema());
    assert_eq!(s.kind, SchemaKind::Message);
    let mut rx = Receiver::<v1::Cmd>::attach_memmsg(
        g.name(),
        &QueueOptions::new().start(membus::Start::Oldest),
    )
    .expect("an older receiver attaches");
    assert_eq!(rx.compat().additions, ["new variant \"turn\""]);
    tx.send(&v2::Cmd::Go { speed: 3 }).unwrap();
    tx.send(&v2::Cmd::Turn(-4)).unwrap();
    match rx.recv(Duration::from_secs(5)).unwrap() {
        Recv::Message { msg, .. } => assert_eq!(msg, v1::Cmd::Go { speed: 3 }),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rx.recv(Duration::from_secs(5)).unwrap(),
        Recv::Undecodable { .. }
    ));
    let Err(e) = Receiver::<renamed::Cmd>::attach_memmsg(g.name(), &QueueOptions::new()) else {
        panic!("a renamed variant attached");
    };
    assert_eq!(e.kind(), ErrorKind::SchemaMismatch);
    assert!(
        e.to_string()
            .contains("variant \"halt\" renamed or removed"),
        "{e}"
    );
    let Err(e) = Receiver::<retyped::Cmd>::attach_memmsg(g.name(), &QueueOptions::new()) else {
        panic!("a changed payload attached");
    };
    assert!(
        e.to_string().contains(
            "variant \"go\": payload changed from struct (speed: f64) to struct (speed: u32)"
        ),
        "{e}"
    );
    drop(tx);
    assert_eq!(
        schema::read(g.name()).unwrap(),
        None,
        "the sender's drop removes the description"
    );
}

#[test]
fn a_command_channel_validates_with_its_description() {
    let g = ShmGuard::new("schema-cmd");
    let _rx = Receiver::<Command>::create_memcmd(g.name(), 4096, &QueueOptions::new()).unwrap();
    let s = schema::read(g.name()).unwrap().unwrap();
    let m = s.message.unwrap();
    for c in Command::all() {
        let mut wire = Vec::new();
        c.encode(&mut wire).unwrap();
        m.check(&wire).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    }
    let e = m.check(br#"{"zoom":"fast"}"#).unwrap_err();
    assert!(e.contains("variant \"zoom\" field 0: expected f32"), "{e}");
    let e = m
        .check(br#"{"expose":{"us":-1,"auto":true,"gains":[]}}"#)
        .unwrap_err();
    assert!(
        e.contains("field `us`") && e.contains("0 to 4294967295"),
        "{e}"
    );
    let e = m.check(br#"{"expose":{"us":1,"gains":[]}}"#).unwrap_err();
    assert!(e.contains("field `auto`: missing"), "{e}");
    let e = m.check(b"pan-right").unwrap_err();
    assert!(
        e.contains("unknown variant \"pan-right\"; expected one of: pan-left, zoom, move, expose"),
        "{e}"
    );
    let e = m.check(b"zoom").unwrap_err();
    assert!(e.contains("carries a payload"), "{e}");
}

#[test]
fn a_killed_creator_leaves_a_stale_pair_that_a_new_creator_replaces() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let g = ShmGuard::new("schema-kill");
    let mut child = Command::new(env!("CARGO_BIN_EXE_membus-schema-peer"))
        .args(["kv-serve", g.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    // SAFETY: kill has no memory preconditions; the pid is our live child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    assert!(!membus::has_live_owner(g.name()).unwrap());
    assert_eq!(
        schema::read(g.name()).unwrap(),
        Some(AllTypes::schema()),
        "left behind"
    );
    // A new creator of another type replaces the stale share and its description.
    let kv = Kv::create_with(
        g.name(),
        &v1::Cfg {
            speed: 1,
            level: v1::Level::Low,
        },
        &membus::memkv::KvOptions::new().replace_stale(true),
    )
    .unwrap();
    assert_eq!(schema::read(g.name()).unwrap(), Some(v1::Cfg::schema()));
    drop(kv);
    assert_eq!(schema::read(g.name()).unwrap(), None);
}

#[test]
fn an_unreadable_description_is_named_when_the_layout_differs() {
    let g = ShmGuard::new("schema-unreadable");
    let _new = Kv::create(
        g.name(),
        &v2::Cfg {
            speed: 1,
            level: v2::Level::Low,
            gear: 2,
        },
    )
    .unwrap();
    let path = companion_path(g.name());
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"MBSCHEM1\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    let e = mismatch::<v1::Cfg>(g.name());
    assert!(
        e.contains("its schema description cannot be read: schema object claims"),
        "{e}"
    );
    // A store whose layout matches is not held up by it.
    drop(_new);
    std::fs::remove_file(&path).unwrap();
    let _v1 = Kv::create(
        g.name(),
        &v1::Cfg {
            speed: 1,
            level: v1::Level::Low,
        },
    )
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"junk").unwrap();
    assert!(Kv::<v1::Cfg>::attach(g.name()).is_ok());
    std::fs::remove_file(&path).unwrap();
}
