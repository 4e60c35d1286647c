//! `membus-bridge bench`: bridged cases over loopback. Two bridges run in this process,
//! each with its own Zenoh session, joined by one TCP connection over 127.0.0.1; the
//! source share, the exporter, the importer and the mirror are all real, so a figure
//! covers share → exporter → Zenoh → importer → mirror share → reader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use membus::layout::media::VideoFormat;
use membus::memmsg::{Reader, Writer};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::{Next, QueueOptions, Received, Start};
use membus_bridge::{Bridge, BridgeConfig, ExportSpec, ImportSpec, NetOptions, State};

/// Options of `membus-bridge bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Messages in the throughput case.
    #[arg(long, default_value_t = 500_000)]
    messages: u64,
    /// Samples in the latency case (sent at about 1 kHz).
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Seconds of frames in the video case.
    #[arg(long, default_value_t = 3)]
    video_secs: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

struct Pair {
    exporter: Bridge,
    importer: Bridge,
    src: String,
    dst: String,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts an exporter of `src` and an importer of it into `dst`, and waits until the
/// mirror is ready.
fn pair(tag: &str) -> Result<Pair, String> {
    let pid = std::process::id();
    let src = format!("/membus-bench-{pid}-{tag}-src");
    let dst = format!("/membus-bench-{pid}-{tag}-dst");
    let ns = format!("membus-bench-{pid}-{tag}");
    let ep = format!("tcp/127.0.0.1:{}", free_port()?);
    let quiet: membus_bridge::Report = Arc::new(|_| {});
    let exporter = Bridge::start(
        &BridgeConfig {
            net: NetOptions {
                listen: vec![ep.clone()],
                namespace: Some(ns.clone()),
                ..NetOptions::default()
            },
            exports: vec![ExportSpec::parse(&src).map_err(|e| e.to_string())?],
            imports: vec![],
        },
        quiet.clone(),
    )
    .map_err(|e| e.to_string())?;
    let importer = Bridge::start(
        &BridgeConfig {
            net: NetOptions {
                connect: vec![ep],
                namespace: Some(ns),
                ..NetOptions::default()
            },
            exports: vec![],
            imports: vec![ImportSpec::parse(&format!("{src}={dst}")).map_err(|e| e.to_string())?],
        },
        quiet,
    )
    .map_err(|e| e.to_string())?;
    Ok(Pair {
        exporter,
        importer,
        src,
        dst,
    })
}

impl Pair {
    fn wait_ready(&self) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(30);
        while self.importer.stats()[0].state() != State::Live {
            if Instant::now() > end {
                return Err(format!(
                    "bridge did not become ready: {:?}",
                    self.importer.status_lines()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn counters(&self) -> (u64, u64) {
        let s = &self.importer.stats()[0];
        (
            membus_bridge::ShareStats::get(&s.lost),
            membus_bridge::ShareStats::get(&s.skipped),
        )
    }

    fn stop(self) {
        self.importer.stop();
        self.exporter.stop();
        let _ = membus::remove(self.src.as_str());
        let _ = membus::remove(self.dst.as_str());
    }
}

fn err(e: membus::Error) -> String {
    e.to_string()
}

/// 64 B messages as fast as the writer goes; rate measured at the mirror's reader.
fn throughput(n: u64) -> Result<(f64, u64), String> {
    let p = pair("tput")?;
    // Big enough that the writer never laps the exporter (n messages of 64 + 16 bytes).
    let cap = ((n as usize) * 80 + (1 << 20)).next_power_of_two();
    let writer = Writer::create(p.src.as_str(), cap).map_err(err)?;
    p.wait_ready()?;
    let mut reader = Reader::attach_with(p.dst.as_str(), &QueueOptions::new().start(Start::Latest))
        .map_err(err)?;
    let t0 = Instant::now();
    let w = std::thread::spawn(move || -> Result<(), String> {
        let msg = [7u8; 64];
        for _ in 0..n {
            writer.write(&msg).map_err(err)?;
        }
        // Keep the share until the reader is done.
        std::thread::sleep(Duration::from_millis(200));
        drop(writer);
        Ok(())
    });
    let mut got = 0u64;
    let mut buf = Vec::with_capacity(64);
    let deadline = t0 + Duration::from_secs(120);
    let mut lost = 0;
    while got + lost < n && Instant::now() < deadline {
        match reader
            .read_into(&mut buf, Duration::from_millis(100))
            .map_err(err)?
        {
            Received::Message { .. } => got += 1,
            Received::Overrun { lost: l } => lost += l,
            Received::Timeout => {
                let (bl, _) = p.counters();
                if got + bl >= n {
                    break;
                }
            }
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    w.join().map_err(|_| "writer panicked".to_string())??;
    p.stop();
    // Everything not read at the mirror (overruns, counted losses, or still in flight at
    // the deadline).
    Ok((got as f64 / dt, n - got))
}

/// One-way latency: the writer stamps each message with its send time; the reader
/// subtracts it on receipt (same clock, same machine).
fn latency(samples: usize) -> Result<(f64, f64, f64), String> {
    let p = pair("lat")?;
    let writer = Writer::create(p.src.as_str(), 1 << 20).map_err(err)?;
    p.wait_ready()?;
    let mut reader = Reader::attach_with(p.dst.as_str(), &QueueOptions::new().start(Start::Latest))
        .map_err(err)?;
    let epoch = Instant::now();
    let w = std::thread::spawn(move || -> Result<(), String> {
        let mut msg = [0u8; 64];
        for _ in 0..samples {
            let t = epoch.elapsed().as_nanos() as u64;
            msg[..8].copy_from_slice(&t.to_le_bytes());
            writer.write(&msg).map_err(err)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(300));
        drop(writer);
        Ok(())
    });
    let mut lat = Vec::with_capacity(samples);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lat.len() < samples && Instant::now() < deadline {
        if let Received::Message { payload, .. } =
            reader.read(Duration::from_millis(100)).map_err(err)?
        {
            let now = epoch.elapsed().as_nanos() as u64;
            let sent = u64::from_le_bytes(payload[..8].try_into().map_err(|_| "short")?);
            lat.push(now.saturating_sub(sent) as f64 / 1e6);
        }
    }
    w.join().map_err(|_| "writer panicked".to_string())??;
    p.stop();
    if lat.is_empty() {
        return Err("no latency samples arrived".into());
    }
    lat.sort_by(f64::total_cmp);
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f).round() as usize];
    Ok((q(0.5), q(0.99), lat.len() as f64))
}

/// 640x480 rgb24 frames published as fast as the writer goes for `secs`; rate of frames
/// arriving in the mirror.
fn video(secs: u64) -> Result<(f64, f64, u64), String> {
    let p = pair("vid")?;
    let params = VideoParams::new(640, 480, VideoFormat::Rgb24, 30, 4);
    let mut writer = VideoWriter::create(p.src.as_str(), &params).map_err(err)?;
    p.wait_ready()?;
    let mut reader = VideoReader::attach(p.dst.as_str()).map_err(err)?;
    let dur = Duration::from_secs(secs);
    let w = std::thread::spawn(move || -> Result<u64, String> {
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < dur {
            {
                let mut f = writer.frame();
                f.fill(n as u8).map_err(err)?;
                f.set_vpts(n as i64);
            }
            writer.publish().map_err(err)?;
            n += 1;
            // Source paced at most at 1 kHz, a fast camera.
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(300));
        drop(writer);
        Ok(n)
    });
    let t0 = Instant::now();
    let mut got = 0u64;
    while t0.elapsed() < dur {
        reader.wait_ready(Duration::from_millis(50));
        loop {
            match reader.next().map_err(err)? {
                Next::Frame(_) => got += 1,
                Next::Overrun { .. } => {}
                Next::Empty => break,
            }
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let published = w.join().map_err(|_| "writer panicked".to_string())??;
    let (_, skipped) = p.counters();
    p.stop();
    Ok((got as f64 / dt, published as f64 / dt, skipped))
}

/// Runs every case and prints the table (or JSON).
pub fn run(a: &BenchArgs) -> Result<(), String> {
    let (rate, lost) = throughput(a.messages)?;
    let (p50, p99, n) = latency(a.samples)?;
    let (fps, src_fps, skipped) = video(a.video_secs)?;
    if a.json {
        println!(
            "{{\"memmsg_64B_msgs_per_s\":{rate:.0},\"memmsg_64B_lost\":{lost},\"latency_ms_p50\":{p50:.4},\"latency_ms_p99\":{p99:.4},\"latency_samples\":{n},\"memvid_640x480_rgb24_fps\":{fps:.1},\"memvid_source_fps\":{src_fps:.1},\"memvid_skipped\":{skipped}}}"
        );
    } else {
        println!("bridged over loopback (two bridges, one Zenoh TCP hop)");
        println!("{:<44} {:>14}", "case", "result");
        println!(
            "{:<44} {:>14}",
            "memmsg 64 B throughput",
            format!("{:.0} msg/s", rate)
        );
        println!("{:<44} {:>14}", "memmsg 64 B lost", lost);
        println!(
            "{:<44} {:>14}",
            format!("memmsg 64 B one-way latency p50 ({n} samples)"),
            format!("{p50:.3} ms")
        );
        println!(
            "{:<44} {:>14}",
            "memmsg 64 B one-way latency p99",
            format!("{p99:.3} ms")
        );
        println!(
            "{:<44} {:>14}",
            "memvid 640x480 rgb24 frames at the mirror",
            format!("{fps:.1} fps")
        );
        println!(
            "{:<44} {:>14}",
            "memvid source rate / skipped at the source",
            format!("{src_fps:.1} fps / {skipped}")
        );
    }
    Ok(())
}
