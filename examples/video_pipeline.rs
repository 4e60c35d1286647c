//! A video pipeline across two processes: a generator publishes 640×480 rgb24 frames with
//! timestamps into a memvid ring; a second process computes per-frame statistics (mean
//! brightness per channel) and reports lost frames. Both print what they did.
//!
//! `cargo run --release --example video_pipeline`

use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use membus::layout::media::VideoFormat;
use membus::memvid::{ReaderOptions, VideoParams, VideoReader, VideoWriter};
use membus::pixel::Rgb;
use membus::{Next, ReadFrom};

const FRAMES: u64 = 120;
const W: u32 = 640;
const H: u32 = 480;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--stats") => stats(&args.next().ok_or("--stats needs the share name")?),
        _ => generate(),
    }
}

fn generate() -> Result<(), Box<dyn Error>> {
    let name = format!("/membus-example-video-{}", std::process::id());
    let mut writer =
        VideoWriter::create(&name, &VideoParams::new(W, H, VideoFormat::Rgb24, 60, 8))?;
    println!("[generator] created {name}: {W}x{H} rgb24, 8 slots");
    let mut stats = Command::new(std::env::current_exe()?)
        .args(["--stats", &name])
        .spawn()?;
    std::thread::sleep(Duration::from_millis(200)); // let the reader attach
    let start = Instant::now();
    for n in 1..=FRAMES {
        {
            let mut frame = writer.frame();
            // A moving gradient: red follows x, green follows the frame number, blue y.
            for y in 0..H as usize {
                let row = frame.row_mut::<Rgb>(y)?;
                for (x, px) in row.iter_mut().enumerate() {
                    *px = Rgb {
                        r: (x * 255 / (W as usize - 1)) as u8,
                        g: (n * 2) as u8,
                        b: (y * 255 / (H as usize - 1)) as u8,
                    };
                }
            }
            frame.set_vpts(start.elapsed().as_micros() as i64);
        }
        writer.publish()?;
        std::thread::sleep(Duration::from_millis(1000 / 60));
    }
    println!(
        "[generator] published {FRAMES} frames in {:?}",
        start.elapsed()
    );
    let status = stats.wait()?;
    println!("[generator] statistics process exited with {status}; removing {name}");
    Ok(())
}

fn stats(name: &str) -> Result<(), Box<dyn Error>> {
    let mut reader = VideoReader::attach_with(
        name,
        &ReaderOptions {
            from: ReadFrom::Oldest,
            expect: None,
        },
    )?;
    let l = reader.layout().clone();
    println!(
        "[stats] attached read-only to {name}: {}x{} {:?}",
        l.video.width, l.video.height, l.video.format
    );
    let (mut seen, mut lost, mut torn) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen + lost + torn < FRAMES && Instant::now() < deadline {
        match reader.next()? {
            Next::Frame(f) => {
                let (seq, vpts) = (f.seq(), f.vpts());
                let mut sum = [0u64; 3];
                for y in 0..l.video.height {
                    for px in f.row::<Rgb>(y)? {
                        sum[0] += u64::from(px.r);
                        sum[1] += u64::from(px.g);
                        sum[2] += u64::from(px.b);
                    }
                }
                if !f.is_intact() {
                    torn += 1;
                    println!("[stats] frame {seq} was overwritten while read; discarded");
                    continue;
                }
                seen += 1;
                let n = (l.video.width * l.video.height) as u64;
                if seq % 20 == 0 || seq == 1 {
                    println!(
                        "[stats] frame {seq:>3} at {:>7} µs: mean R {:.1} G {:.1} B {:.1}",
                        vpts,
                        sum[0] as f64 / n as f64,
                        sum[1] as f64 / n as f64,
                        sum[2] as f64 / n as f64
                    );
                }
            }
            Next::Overrun { lost: n } => {
                lost += n;
                println!("[stats] fell behind: {n} frames lost");
            }
            Next::Empty => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    println!("[stats] done: {seen} frames measured, {torn} discarded as torn, {lost} lost");
    Ok(())
}
