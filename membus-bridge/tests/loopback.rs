//! Exporter and importer as separate processes over 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{endpoint, field, final_line, free_port, unique_namespace, Proc};
use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::Received;
use membus_tests::ShmGuard;

const START: Duration = Duration::from_secs(30);

fn exporter(label: &str, ns: &str, port: u16, names: &[&str]) -> Proc {
    let ep = endpoint(port);
    let mut args = vec!["export", "--listen", &ep, "--namespace", ns];
    args.extend_from_slice(names);
    Proc::spawn(label, &args)
}

fn importer(label: &str, ns: &str, port: u16, spec: &str) -> Proc {
    let ep = endpoint(port);
    Proc::spawn(
        label,
        &["import", spec, "--connect", &ep, "--namespace", ns],
    )
}

#[test]
fn memmsg_20000_messages_arrive_in_order_without_loss() {
    let src = ShmGuard::new("bridge-msg-src");
    let dst = ShmGuard::new("bridge-msg-dst");
    let ns = unique_namespace();
    // Large enough that the local writer never laps the exporter's reader.
    let writer = Writer::create(src.name(), 4 << 20).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memmsg", src.name()], START);
    let spec = format!("{}={}", src.name(), dst.name());
    let mut imp = importer("imp", &ns, port, &spec);
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = Reader::attach(dst.name()).unwrap();
    assert_eq!(
        reader.capacity(),
        4 << 20,
        "mirror has the exporter's capacity"
    );

    const N: u64 = 20_000;
    let mut msg = [0u8; 64];
    for i in 0..N {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        msg[8..16].copy_from_slice(&(!i).to_le_bytes());
        writer.write(&msg).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = 0u64;
    let mut last_seq = 0;
    while got < N {
        assert!(
            Instant::now() < deadline,
            "only {got} of {N} messages within 120 s"
        );
        match reader.read(Duration::from_millis(200)).unwrap() {
            Received::Message { seq, payload } => {
                assert_eq!(payload.len(), 64);
                let i = u64::from_le_bytes(payload[..8].try_into().unwrap());
                let j = u64::from_le_bytes(payload[8..16].try_into().unwrap());
                assert_eq!((i, j), (got, !got), "message {got} out of order or corrupt");
                assert!(seq > last_seq);
                last_seq = seq;
                got += 1;
            }
            Received::Timeout => {}
            Received::Overrun { lost } => panic!("mirror reader lost {lost} after {got}"),
        }
    }
    imp.signal(libc::SIGUSR1);
    let status = imp.wait_line(&["status:", dst.name()], START);
    assert_eq!(field(&status, "received"), N, "{status}");
    let imp_lines = imp.stop();
    let exp_lines = exp.stop();
    let fin = final_line(&imp_lines, dst.name());
    assert_eq!(field(fin, "lost"), 0, "{fin}");
    assert_eq!(field(fin, "malformed"), 0, "{fin}");
    assert_eq!(field(final_line(&exp_lines, src.name()), "sent"), N);
    // The importer removed the mirror it created.
    assert!(
        membus::has_live_owner(dst.name()).is_err(),
        "mirror {} still exists after the importer stopped",
        dst.name()
    );
}

#[test]
fn memcmd_commands_from_two_importers_arrive_exactly_once() {
    let owner_name = ShmGuard::new("bridge-cmd-own");
    let a = ShmGuard::new("bridge-cmd-a");
    let b = ShmGuard::new("bridge-cmd-b");
    let ns = unique_namespace();
    let mut owner = MemCmd::create(owner_name.name(), 1 << 20).unwrap();
    let port = free_port();
    let spec = format!("memcmd:{}", owner_name.name());
    let mut exp = exporter("exp", &ns, port, &[&spec]);
    exp.wait_line(&["export memcmd", owner_name.name()], START);
    let mut ia = importer(
        "imp-a",
        &ns,
        port,
        &format!("{}={}", owner_name.name(), a.name()),
    );
    let mut ib = importer(
        "imp-b",
        &ns,
        port,
        &format!("{}={}", owner_name.name(), b.name()),
    );
    ia.wait_line(&["ready", a.name()], START);
    ib.wait_line(&["ready", b.name()], START);
    let ca = MemCmd::attach(a.name()).unwrap();
    let cb = MemCmd::attach(b.name()).unwrap();
    const N: usize = 500;
    for i in 0..N {
        ca.write(format!("a-{i}").as_bytes()).unwrap();
        cb.write(format!("b-{i}").as_bytes()).unwrap();
    }
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < 2 * N {
        assert!(
            Instant::now() < deadline,
            "only {total} commands within 60 s"
        );
        match owner.read(Duration::from_millis(200)).unwrap() {
            Received::Message { payload, .. } => {
                let s = String::from_utf8(payload).unwrap();
                let (who, i) = s.split_once('-').unwrap();
                let i: usize = i.parse().unwrap();
                let want = next.entry(who.to_owned()).or_insert(0);
                assert_eq!(
                    i, *want,
                    "sender {who}: got {i}, expected {want} (order/duplicate)"
                );
                *want += 1;
                total += 1;
            }
            Received::Timeout => {}
            Received::Overrun { lost } => panic!("owner lost {lost}"),
        }
    }
    // Nothing more arrives: exactly once.
    match owner.read(Duration::from_millis(500)).unwrap() {
        Received::Timeout => {}
        other => panic!("extra command after {total}: {other:?}"),
    }
    assert_eq!(next["a"], N);
    assert_eq!(next["b"], N);
    ia.stop();
    ib.stop();
    let lines = exp.stop();
    let fin = final_line(&lines, owner_name.name());
    assert_eq!(field(fin, "received"), 2 * N as u64, "{fin}");
    assert_eq!(field(fin, "duplicates"), 0, "{fin}");
}

#[test]
fn memkv_late_joiner_gets_snapshot_then_whole_batches() {
    let src = ShmGuard::new("bridge-kv-src");
    let dst = ShmGuard::new("bridge-kv-dst");
    let ns = unique_namespace();
    let kv = MemKv::create_named(src.name(), &["mode", "x", "y"], 14, 32).unwrap();
    kv.set_by_name("mode", "auto").unwrap();
    kv.set_many(&[(1, b"0".as_slice()), (2, b"0")]).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memkv", src.name()], START);
    // Changes before anyone imports: the late joiner must see their result.
    for i in 1..=20 {
        let v = i.to_string();
        kv.set_many(&[(1, v.as_bytes()), (2, v.as_bytes())])
            .unwrap();
    }
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mirror = MemKv::attach(dst.name()).unwrap();
    assert_eq!(mirror.slot_names().unwrap(), ["mode", "x", "y"]);
    assert_eq!(mirror.max_value_len(), kv.max_value_len());
    let snap = mirror.snapshot().unwrap();
    assert_eq!(
        snap.values,
        [b"auto".to_vec(), b"20".to_vec(), b"20".to_vec()]
    );

    // Now batches: x and y always change together; the mirror must never show them apart.
    const LAST: u32 = 300;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 21;
    loop {
        assert!(
            Instant::now() < deadline,
            "mirror did not reach batch {LAST} in 60 s"
        );
        if i <= LAST {
            let v = i.to_string();
            kv.set_many(&[(1, v.as_bytes()), (2, v.as_bytes())])
                .unwrap();
            i += 1;
        }
        let s = mirror.snapshot().unwrap();
        assert_eq!(s.values[1], s.values[2], "batch split on the mirror: {s:?}");
        if s.values[1] == LAST.to_string().as_bytes() {
            break;
        }
        if i > LAST {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    kv.set_by_name("mode", "manual").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mirror.get(0).unwrap().value != b"manual" {
        assert!(Instant::now() < deadline, "single set did not arrive");
        std::thread::sleep(Duration::from_millis(5));
    }
    let lines = imp.stop();
    exp.stop();
    let fin = final_line(&lines, dst.name());
    assert_eq!(field(fin, "lost"), 0, "{fin}");
}
