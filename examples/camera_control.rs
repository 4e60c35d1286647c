//! A camera control loop across two processes.
//!
//! The controller (this process) owns a memcmd command channel and sends typed
//! `CameraCmd`s; the capture process it starts publishes frames on a memvid ring at
//! 30 fps and its state in a typed memkv store. The capture loop waits with one `select`
//! over the command channel and its frame clock; the controller waits with one `select`
//! over the state store's changes and its own schedule. Neither polls.
//!
//! ```text
//! cargo run -p membus-examples --example camera_control
//! ```
//!
//! A pymembus peer can join: `memcmd.open(name).write("pan-left")` is received here as
//! `CameraCmd::PanLeft`, and `{"set-exposure":{"us":500}}` as `SetExposure { us: 500 }`.

use std::process::Command;
use std::time::{Duration, Instant};

use membus::layout::media::VideoFormat;
use membus::memcmd::MemCmd;
use membus::memvid::{VideoParams, VideoWriter};
use membus::select::{select, Ticker};
use membus::typed::{Receiver, Recv, Sender};
use membus::{Kv, MemKv, Message};

/// What the controller can ask for. On the wire: `pan-left`, `pan-right`, `stop`, and
/// `{"set-exposure":{"us":N}}`.
#[derive(Message, Debug, Clone, PartialEq)]
enum CameraCmd {
    PanLeft,
    PanRight,
    SetExposure { us: u32 },
    Stop,
}

/// The capture process's published state.
#[derive(MemKv, Debug, Clone, Default)]
struct CaptureState {
    frames: u64,
    exposure_us: u32,
    pan_deg: i32,
    running: bool,
}

const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;

fn main() -> membus::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("--capture"), Some(base)) => capture(base),
        _ => control(),
    }
}

fn os_err(what: &'static str) -> impl FnOnce(std::io::Error) -> membus::Error {
    move |e| membus::Error::new(membus::ErrorKind::InvalidArgument, what).with_os_error(e)
}

/// The controlling process.
fn control() -> membus::Result<()> {
    let base = format!("/membus-example-control-{}", std::process::id());
    let mut cmds: Sender<CameraCmd> = MemCmd::create(format!("{base}-cmd"), 4096)?.into();
    let exe = std::env::current_exe().map_err(os_err("locating this example's binary"))?;
    let mut child = Command::new(exe)
        .args(["--capture", &base])
        .spawn()
        .map_err(os_err("starting the capture process"))?;

    // The capture process creates its state store; wait for it to appear.
    let state_name = format!("{base}-state");
    let started = Instant::now();
    let kv = loop {
        match Kv::<CaptureState>::attach(state_name.as_str()) {
            Ok(kv) => break kv,
            Err(e) if started.elapsed() > Duration::from_secs(5) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    println!("[control] attached to {state_name}: {:?}", kv.snapshot()?);

    let plan = [
        CameraCmd::PanLeft,
        CameraCmd::SetExposure { us: 4000 },
        CameraCmd::PanRight,
        CameraCmd::PanRight,
        CameraCmd::SetExposure { us: 500 },
        CameraCmd::Stop,
    ];
    let mut next_cmd = plan.iter();
    let mut schedule = Ticker::new(Duration::from_millis(200));
    let mut watch = kv.watch();
    loop {
        match select(&[&watch, &schedule], Duration::from_secs(5)) {
            Some(0) => {
                let changes = watch.changes()?;
                for c in &changes.changes {
                    match c {
                        // Frame counts change 30 times a second; show every 15th.
                        CaptureStateChange::Frames(n) if n % 15 != 0 => {}
                        _ => println!("[control] epoch {}: {c:?}", changes.epoch),
                    }
                }
                if changes
                    .changes
                    .iter()
                    .any(|c| matches!(c, CaptureStateChange::Running(false)))
                {
                    break;
                }
            }
            Some(1) => {
                schedule.tick();
                if let Some(cmd) = next_cmd.next() {
                    let seq = cmds.send(cmd)?;
                    println!("[control] sent #{seq}: {cmd:?}");
                }
            }
            _ => {
                println!("[control] no news for 5 s; stopping");
                break;
            }
        }
    }
    let status = child
        .wait()
        .map_err(os_err("waiting for the capture process"))?;
    let last = kv.snapshot()?;
    println!(
        "[control] capture process finished ({status}) after {} frames, exposure {} µs, pan {}°",
        last.frames, last.exposure_us, last.pan_deg
    );
    Ok(())
}

/// The capture process.
fn capture(base: &str) -> membus::Result<()> {
    let mut cmds: Receiver<CameraCmd> = MemCmd::attach(format!("{base}-cmd"))?.into();
    let mut state = CaptureState {
        exposure_us: 1000,
        running: true,
        ..CaptureState::default()
    };
    let kv = Kv::<CaptureState>::create(format!("{base}-state"), &state)?;
    let mut video = VideoWriter::create(
        format!("{base}-video"),
        &VideoParams::new(WIDTH, HEIGHT, VideoFormat::Gray8, 30, 4),
    )?;
    let mut frame_clock = Ticker::new(Duration::from_millis(1000 / 30));
    let t0 = Instant::now();
    println!("[capture] streaming {WIDTH}x{HEIGHT} gray8 at 30 fps");
    while state.running {
        match select(&[&cmds, &frame_clock], Duration::from_secs(10)) {
            Some(0) => match cmds.recv(Duration::ZERO)? {
                Recv::Message { seq, msg } => {
                    println!("[capture] command #{seq}: {msg:?}");
                    match msg {
                        CameraCmd::PanLeft | CameraCmd::PanRight => {
                            state.pan_deg += if msg == CameraCmd::PanLeft { -10 } else { 10 };
                            kv.set(CaptureState::PAN_DEG, state.pan_deg)?;
                        }
                        CameraCmd::SetExposure { us } => {
                            state.exposure_us = us;
                            kv.set(CaptureState::EXPOSURE_US, us)?;
                        }
                        CameraCmd::Stop => {
                            state.running = false;
                            kv.set(CaptureState::RUNNING, false)?;
                        }
                    }
                }
                Recv::Undecodable { seq, raw, reason } => {
                    println!(
                        "[capture] command #{seq} not understood ({reason}): {:?}",
                        String::from_utf8_lossy(&raw)
                    );
                }
                Recv::Overrun { lost } => println!("[capture] missed {lost} commands"),
                Recv::Timeout => {}
            },
            Some(1) => {
                let missed = frame_clock.tick().saturating_sub(1);
                if missed > 0 {
                    println!("[capture] late: skipped {missed} frame slots");
                }
                {
                    let mut f = video.frame();
                    // Brightness follows the exposure: a stand-in for a real sensor.
                    f.fill((state.exposure_us / 20).min(255) as u8)?;
                    f.set_vpts(t0.elapsed().as_micros() as i64);
                }
                video.publish()?;
                state.frames += 1;
                kv.set(CaptureState::FRAMES, state.frames)?;
            }
            _ => {
                println!("[capture] no commands and no clock for 10 s; stopping");
                state.running = false;
                kv.set(CaptureState::RUNNING, false)?;
            }
        }
    }
    println!("[capture] stopped after {} frames", state.frames);
    Ok(())
}
