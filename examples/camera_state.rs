//! Typed camera state shared between two processes.
//!
//! The parent creates a `Kv<CameraState>` store, starts a copy of itself as a watcher,
//! then adjusts the camera a few times; each adjustment is one atomic batch. The watcher
//! prints the state it found, then every change event, until streaming stops.
//!
//! ```text
//! cargo run -p membus-examples --example camera_state
//! ```
//!
//! While it runs, a pymembus peer sees the same store as plain text slots:
//! `memkv.open(name)`, `getValue("exposure_us")` → `"1000"`.

use std::process::Command;
use std::time::Duration;

use membus::{Kv, MemKv, MemKvEnum};

/// Exposure programme, stored by variant name ("Auto", "Manual", "Night").
#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
enum Mode {
    Auto,
    Manual,
    Night,
}

/// The shared state: one slot per field, plus the schema fingerprint slot.
#[derive(MemKv, Debug, Clone)]
#[memkv(max_len = 32)]
struct CameraState {
    exposure_us: u32,
    gain_db: f64,
    mode: Mode,
    label: String,
    streaming: bool,
}

fn main() -> membus::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("--watch"), Some(name)) => watch(name),
        _ => update(),
    }
}

/// The updating process.
fn update() -> membus::Result<()> {
    let name = format!("/membus-example-camera-{}", std::process::id());
    let kv = Kv::<CameraState>::create(
        name.as_str(),
        &CameraState {
            exposure_us: 1000,
            gain_db: 0.0,
            mode: Mode::Auto,
            label: "front door".into(),
            streaming: true,
        },
    )?;
    println!("[updater] created {name} at epoch {}", kv.epoch());
    let exe = std::env::current_exe().map_err(|e| {
        membus::Error::new(
            membus::ErrorKind::InvalidArgument,
            "locating this example's binary",
        )
        .with_os_error(e)
    })?;
    let mut watcher = Command::new(exe)
        .args(["--watch", &name])
        .spawn()
        .map_err(|e| {
            membus::Error::new(membus::ErrorKind::InvalidArgument, "starting the watcher")
                .with_os_error(e)
        })?;
    // Give the watcher a moment to attach, then adjust the camera like an auto-exposure
    // loop would, ten times a second.
    std::thread::sleep(Duration::from_millis(300));
    for (exposure, gain) in [(2000, 1.5), (4000, 3.0), (8000, 6.0)] {
        let epoch = kv.update(|b| {
            b.set(CameraState::EXPOSURE_US, exposure)
                .set(CameraState::GAIN_DB, gain);
        })?;
        println!("[updater] epoch {epoch}: exposure {exposure} µs, gain {gain} dB");
        std::thread::sleep(Duration::from_millis(100));
    }
    let epoch = kv.set(CameraState::MODE, Mode::Night)?;
    println!("[updater] epoch {epoch}: mode Night");
    std::thread::sleep(Duration::from_millis(100));
    let epoch = kv.set(CameraState::STREAMING, false)?;
    println!("[updater] epoch {epoch}: streaming off");
    let status = watcher.wait().map_err(|e| {
        membus::Error::new(
            membus::ErrorKind::InvalidArgument,
            "waiting for the watcher",
        )
        .with_os_error(e)
    })?;
    println!("[updater] watcher finished ({status}); removing {name}");
    Ok(())
}

/// The watching process.
fn watch(name: &str) -> membus::Result<()> {
    let kv = Kv::<CameraState>::attach(name)?;
    let (state, mut epoch) = kv.snapshot_with_epoch()?;
    println!("[watcher] attached at epoch {epoch}: {state:?}");
    if !state.streaming {
        return Ok(());
    }
    let all = [
        CameraState::EXPOSURE_US.id(),
        CameraState::GAIN_DB.id(),
        CameraState::MODE.id(),
        CameraState::LABEL.id(),
        CameraState::STREAMING.id(),
    ];
    loop {
        let Some(changes) = kv.wait_for(&all, epoch, Duration::from_secs(10))? else {
            println!("[watcher] nothing for 10 s; giving up");
            return Ok(());
        };
        epoch = changes.epoch;
        for change in &changes.changes {
            println!("[watcher] epoch {epoch}: {change:?}");
        }
        for e in &changes.errors {
            println!("[watcher] a peer wrote something unreadable: {e}");
        }
        if changes
            .changes
            .iter()
            .any(|c| matches!(c, CameraStateChange::Streaming(false)))
        {
            println!("[watcher] streaming stopped; exiting");
            return Ok(());
        }
    }
}
