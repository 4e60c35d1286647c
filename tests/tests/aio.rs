//! Async reads (feature `tokio`/`async`) across real processes for every share type, on
//! tokio's current-thread and multi-thread runtimes; cancellation loses nothing; idle
//! futures cost no CPU.

use std::future::{poll_fn, Future};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use membus::aio::Stream;
use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::{Next, Received};
use membus_tests::{payload, spawn, ShmGuard};

const PEER: &str = env!("CARGO_BIN_EXE_membus-peer");
const LONG: Duration = Duration::from_secs(30);

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

fn current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Spawns the peer with stdin and stdout piped (the media roles wait for a line on stdin).
fn spawn_piped(args: &[&str]) -> std::process::Child {
    std::process::Command::new(PEER)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn line(child: &mut std::process::Child) -> String {
    let mut s = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut s)
        .unwrap();
    s.trim().to_string()
}

/// A child process writes 2,000 memmsg messages; an async stream gets them all in order.
fn memmsg_across_processes(rt: tokio::runtime::Runtime) {
    let g = ShmGuard::new("aio-msg");
    let w = Writer::create(g.name(), 1 << 20).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    let count = 2_000u64;
    let mut child = spawn(
        Path::new(PEER),
        &["msg-write", g.name(), &count.to_string()],
    );
    rt.block_on(async {
        let mut s = r.stream();
        for want in 1..=count {
            let got = tokio::time::timeout(LONG, next(&mut s))
                .await
                .expect("a message within the timeout")
                .unwrap()
                .unwrap();
            assert_eq!(
                got,
                Received::Message {
                    seq: want,
                    payload: payload(want)
                }
            );
        }
    });
    assert!(child.wait().unwrap().success());
    drop(w);
}

#[test]
fn memmsg_stream_across_processes_current_thread() {
    memmsg_across_processes(current());
}

#[test]
fn memmsg_stream_across_processes_multi_thread() {
    memmsg_across_processes(multi());
}

#[test]
fn memcmd_and_typed_receivers_across_processes() {
    let g = ShmGuard::new("aio-cmd");
    let mut c = MemCmd::create(g.name(), 1 << 20).unwrap();
    let mut child = spawn(Path::new(PEER), &["cmd-write", g.name(), "7", "500"]);
    multi().block_on(async {
        for i in 0..500 {
            let (_, text) = tokio::time::timeout(LONG, c.read_async())
                .await
                .unwrap()
                .unwrap()
                .into_result()
                .unwrap();
            assert_eq!(text, format!("7:{i}").into_bytes());
        }
    });
    assert!(child.wait().unwrap().success());

    // Typed: a unit-variant enum over a memmsg, written by another process's raw writer.
    #[derive(membus::Message, Debug, PartialEq)]
    enum Cmd {
        PanLeft,
    }
    let g2 = ShmGuard::new("aio-typed");
    let w = Writer::create(g2.name(), 4096).unwrap();
    let mut rx: membus::typed::Receiver<Cmd> = Reader::attach(g2.name()).unwrap().into();
    current().block_on(async {
        let reader = tokio::spawn(async move {
            let got = rx.recv_async().await.unwrap();
            let bad = rx.recv_async().await.unwrap();
            (got, bad)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.write(b"pan-left").unwrap();
        w.write(b"no-such-command").unwrap();
        let (got, bad) = reader.await.unwrap();
        assert!(matches!(
            got,
            membus::typed::Recv::Message {
                msg: Cmd::PanLeft,
                ..
            }
        ));
        assert!(
            matches!(bad, membus::typed::Recv::Undecodable { .. }),
            "{bad:?}"
        );
    });
}

#[test]
fn memkv_changes_across_processes() {
    let g = ShmGuard::new("aio-kv");
    let kv = MemKv::create_named(g.name(), &["a", "b"], 8, 22).unwrap();
    let mut child = spawn(Path::new(PEER), &["churn-write", "kv", g.name(), "3"]);
    assert_eq!(line(&mut child), "ready");
    current().block_on(async {
        let mut watch = kv.watch();
        let mut seen = 0;
        let mut s = watch.stream();
        while seen < 100 {
            let ch = tokio::time::timeout(LONG, next(&mut s))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(!ch.changes.is_empty());
            seen += ch.changes.len();
        }
        let e = kv.epoch();
        assert!(
            tokio::time::timeout(LONG, kv.wait_for_change_async(e - 1))
                .await
                .unwrap()
                .unwrap()
                >= e
        );
    });
    // SAFETY: kill(2) of the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
}

#[test]
fn media_frames_and_records_across_processes() {
    use membus::mempkt::PacketReader;
    use membus::memvid::VideoReader;
    let gv = ShmGuard::new("aio-vid");
    let mut vchild = spawn_piped(&["vid-write", gv.name(), "60"]);
    assert_eq!(line(&mut vchild), "created");
    let mut vr = VideoReader::attach(gv.name()).unwrap();
    vchild.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let gp = ShmGuard::new("aio-pkt");
    let mut pchild = spawn_piped(&["pkt-write", gp.name(), "300"]);
    assert_eq!(line(&mut pchild), "created");
    let mut pr = PacketReader::attach(gp.name()).unwrap();
    pchild.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    multi().block_on(async {
        let (mut frames, mut lost) = (0u64, 0u64);
        while frames + lost < 60 {
            match tokio::time::timeout(LONG, vr.next_async())
                .await
                .unwrap()
                .unwrap()
            {
                Next::Frame(f) => {
                    let mut bytes = vec![0; 640 * 480 * 3];
                    f.copy_to(&mut bytes).unwrap();
                    if f.is_intact() {
                        assert!(membus_tests::video_frame_ok(f.seq(), &bytes));
                    }
                    frames += 1;
                }
                Next::Overrun { lost: n } => lost += n,
                Next::Empty => {}
            }
        }
        assert!(frames > 0);
        let (mut records, mut lost, mut last) = (0u64, 0u64, 0u64);
        let mut s = pr.stream();
        while records + lost < 300 {
            let got = tokio::time::timeout(LONG, next(&mut s)).await;
            let Ok(got) = got else {
                drop(s);
                panic!(
                    "records {records} lost {lost} last {last}; share seq {}",
                    pr.seq()
                );
            };
            match got.unwrap().unwrap() {
                Next::Frame((info, payload, meta)) => {
                    let (want, want_meta) = membus_tests::packet(info.seq);
                    assert_eq!(payload, want);
                    assert_eq!(meta, want_meta.meta);
                    records += 1;
                    last = info.seq;
                }
                Next::Overrun { lost: n } => lost += n,
                Next::Empty => panic!("a stream never yields Empty"),
            }
        }
        assert!(records > 0);
    });
    for mut c in [vchild, pchild] {
        c.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success());
    }
}

/// `aio::seq_above` (pymembus's `waitForFrame` condition, awaited): resolves once a child
/// process publishes, never reads or moves the reader's cursor, and a dropped wait changes
/// nothing.
#[test]
fn seq_above_waits_for_the_publish_counter_without_moving_the_cursor() {
    use membus::memvid::VideoReader;
    let g = ShmGuard::new("aio-seq");
    let mut child = spawn_piped(&["vid-write", g.name(), "3"]);
    assert_eq!(line(&mut child), "created");
    let mut vr = VideoReader::attach(g.name()).unwrap();
    let seq0 = vr.seq();
    current().block_on(async {
        // Nothing is published before "go": this wait can only time out (and is dropped).
        let early =
            tokio::time::timeout(Duration::from_millis(20), membus::aio::seq_above(&vr, seq0));
        assert!(early.await.is_err());
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        tokio::time::timeout(LONG, membus::aio::seq_above(&vr, seq0))
            .await
            .unwrap();
    });
    assert!(vr.seq() > seq0);
    // The cursor did not move: the first frame published is still there to read.
    assert!(matches!(vr.next().unwrap(), Next::Frame(_)));
    drop(vr);
    child.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_dropped_future_loses_nothing() {
    let g = ShmGuard::new("aio-cancel");
    let w = Writer::create(g.name(), 4096).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    current().block_on(async {
        // Pending, then dropped by the timeout.
        assert!(
            tokio::time::timeout(Duration::from_millis(30), r.read_async())
                .await
                .is_err()
        );
        w.write(b"kept").unwrap();
        // tokio::select!: the share against a timer; the timer wins first, then the share.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            _ = std::future::pending::<()>() => unreachable!(),
        }
    });
    // The message is still there for a blocking read.
    assert_eq!(
        r.read(Duration::from_secs(5)).unwrap(),
        Received::Message {
            seq: 1,
            payload: b"kept".to_vec()
        }
    );
    current().block_on(async {
        w.write(b"next").unwrap();
        tokio::select! {
            got = r.read_async() => assert_eq!(got.unwrap().message().unwrap(), b"next"),
            _ = tokio::time::sleep(LONG) => panic!("the share should win"),
        }
    });
}

/// A pending future that is forgotten (safe Rust may do that) keeps its registration, but
/// the reactor never reads through it: after its handle and share are gone, the reactor
/// goes on serving other futures.
#[test]
fn a_forgotten_future_does_not_outlive_its_share_unsafely() {
    use std::task::{Context, Waker};
    {
        let g = ShmGuard::new("aio-forget");
        let w = Writer::create(g.name(), 4096).unwrap();
        let r = Reader::attach(g.name()).unwrap();
        let mut fut = Box::pin(membus::aio::ready(&r));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        std::mem::forget(fut);
        drop(r);
        drop(w);
    }
    let g = ShmGuard::new("aio-after-forget");
    let w = Writer::create(g.name(), 4096).unwrap();
    let mut r = Reader::attach(g.name()).unwrap();
    current().block_on(async {
        let reader = async { r.read_async().await.unwrap().message().unwrap() };
        let writer = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            w.write(b"still served").unwrap();
        };
        let (got, ()) = tokio::join!(reader, writer);
        assert_eq!(got, b"still served");
    });
}
