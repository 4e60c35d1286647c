//! Media rings between real processes: a child writer streams, this process reads and
//! accounts for every sequence number as delivered intact or reported lost.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use membus::mempkt::{PacketReader, ReaderOptions as PktOptions};
use membus::memvid::{ReaderOptions, VideoReader};
use membus::{Next, ReadFrom};
use membus_tests::{first_line, packet, peer_bin, video_frame_ok, ShmGuard};

fn start(role: &str, name: &str, count: u64) -> Child {
    let mut child = Command::new(peer_bin!())
        .args([role, name, &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn membus-peer");
    assert_eq!(first_line(&mut child), "created");
    child
}

fn go(child: &mut Child) {
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
}

fn finish(mut child: Child) {
    go(&mut child);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn two_thousand_frames_of_640x480_rgb24_are_delivered_intact_or_reported_lost() {
    const COUNT: u64 = 2000;
    let g = ShmGuard::new("xvid");
    let mut child = start("vid-write", g.name(), COUNT);
    let mut r = VideoReader::attach_with(
        g.name(),
        &ReaderOptions {
            from: ReadFrom::Oldest,
            expect: None,
        },
    )
    .unwrap();
    go(&mut child);
    let (mut next, mut delivered, mut lost, mut torn) = (1u64, 0u64, 0u64, 0u64);
    let mut buf = vec![0u8; 640 * 480 * 3];
    let deadline = Instant::now() + Duration::from_secs(120);
    while next <= COUNT {
        assert!(Instant::now() < deadline, "stalled at frame {next}");
        match r.next().unwrap() {
            Next::Frame(f) => {
                assert_eq!(f.seq(), next, "frames arrive in order");
                // Everything is read first; the intact check afterwards covers all of it.
                let vpts = f.vpts();
                f.copy_to(&mut buf).unwrap();
                if f.is_intact() {
                    assert!(
                        video_frame_ok(f.seq(), &buf),
                        "frame {} passed the intact check but is corrupt",
                        f.seq()
                    );
                    assert_eq!(vpts, f.seq() as i64);
                    delivered += 1;
                } else {
                    torn += 1; // overwritten while copied: detected, counted as lost
                }
                next += 1;
            }
            Next::Overrun { lost: n } => {
                assert!(n > 0);
                lost += n;
                next += n;
            }
            Next::Empty => std::thread::sleep(Duration::from_micros(50)),
        }
    }
    assert_eq!(next, COUNT + 1, "every sequence number accounted for");
    assert_eq!(delivered + torn + lost, COUNT);
    assert!(delivered > 0);
    eprintln!(
        "memvid: {delivered} delivered intact, {torn} detected torn, {lost} lost to overruns"
    );
    finish(child);
}

#[test]
fn ten_thousand_records_of_random_sizes_are_delivered_intact_or_reported_lost() {
    const COUNT: u64 = 10_000;
    let g = ShmGuard::new("xpkt");
    let mut child = start("pkt-write", g.name(), COUNT);
    let mut r = PacketReader::attach_with(
        g.name(),
        &PktOptions {
            from: ReadFrom::Oldest,
            expect: None,
        },
    )
    .unwrap();
    go(&mut child);
    let (mut next, mut delivered, mut lost) = (1u64, 0u64, 0u64);
    let (mut payload, mut meta) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    while next <= COUNT {
        assert!(Instant::now() < deadline, "stalled at record {next}");
        match r.next_into(&mut payload, &mut meta).unwrap() {
            Next::Frame(info) => {
                assert_eq!(info.seq, next, "records arrive in order");
                let (want, want_meta) = packet(info.seq);
                assert!(payload == want, "record {} corrupt", info.seq);
                assert_eq!(meta, want_meta.meta);
                assert_eq!(
                    (info.track, info.pts),
                    (want_meta.track, want_meta.track * 10)
                );
                delivered += 1;
                next += 1;
            }
            Next::Overrun { lost: n } => {
                assert!(n > 0);
                lost += n;
                next += n;
            }
            Next::Empty => std::thread::sleep(Duration::from_micros(20)),
        }
    }
    assert_eq!(next, COUNT + 1);
    assert_eq!(delivered + lost, COUNT);
    assert!(delivered > 0);
    eprintln!("mempkt: {delivered} delivered intact, {lost} lost");
    finish(child);
}
