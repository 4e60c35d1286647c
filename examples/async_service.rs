//! An async camera service on tokio: one task awaits typed commands and state changes,
//! another serves frames, and `tokio::select!` mixes a share with a timer. No thread per
//! share, no polling: every `.await` on a share sleeps in membus's reactor.
//!
//! ```text
//! cargo run -p membus-examples --example async_service
//! ```
//!
//! A client thread plays the other process: it sends commands with the blocking API (a
//! pymembus `memcmd.write("zoom-in")` would arrive the same way) and reads frames.

use std::time::Duration;

use membus::layout::media::VideoFormat;
use membus::memcmd::MemCmd;
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::typed::{Receiver, Recv, Sender};
use membus::{Kv, MemKv, Message, Next};

#[derive(Message, Debug, Clone, PartialEq)]
enum Command {
    ZoomIn,
    ZoomOut,
    Shutdown,
}

#[derive(MemKv, Debug, Clone, Default)]
struct State {
    zoom: u32,
    frames: u64,
}

fn main() -> membus::Result<()> {
    let base = format!("/membus-example-async-{}", std::process::id());
    let (cmd_name, state_name, video_name) = (
        format!("{base}-cmd"),
        format!("{base}-state"),
        format!("{base}-video"),
    );
    let mut commands: Receiver<Command> = MemCmd::create(cmd_name.as_str(), 4096)?.into();
    let state = Kv::create(state_name.as_str(), &State { zoom: 1, frames: 0 })?;
    let mut video = VideoWriter::create(
        video_name.as_str(),
        &VideoParams::new(64, 48, VideoFormat::Gray8, 50, 4),
    )?;

    // The other side: sends three commands, watches a few frames, then asks to stop.
    let client = {
        let (cmd_name, video_name) = (cmd_name.clone(), video_name.clone());
        std::thread::spawn(move || -> membus::Result<u64> {
            let mut tx: Sender<Command> = MemCmd::attach(cmd_name.as_str())?.into();
            let mut frames = VideoReader::attach(video_name.as_str())?;
            let mut seen = 0;
            for cmd in [Command::ZoomIn, Command::ZoomIn, Command::ZoomOut] {
                tx.send(&cmd)?;
                for _ in 0..5 {
                    if frames.wait_ready(Duration::from_secs(2)) {
                        if let Next::Frame(_) = frames.next()? {
                            seen += 1;
                        }
                    }
                }
            }
            tx.send(&Command::Shutdown)?;
            Ok(seen)
        })
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| {
            membus::Error::new(membus::ErrorKind::InvalidArgument, "tokio").with_os_error(e)
        })?;
    rt.block_on(async {
        // Task 2: serves frames at 50 fps until told to stop (through the state store).
        let frames = async {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                if state.get(State::ZOOM)? == 0 {
                    return Ok::<u64, membus::Error>(n);
                }
                video.frame().fill((n % 256) as u8)?;
                video.publish()?;
                n += 1;
                state.set(State::FRAMES, n)?;
            }
        };
        // Task 1: commands and state changes, with a timer for a status line.
        let control = async {
            let mut watch = state.watch();
            let mut status = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    got = commands.recv_async() => match got? {
                        Recv::Message { msg, .. } => {
                            println!("[service] command {msg:?}");
                            let zoom: u32 = state.get(State::ZOOM)?;
                            let next = match msg {
                                Command::ZoomIn => zoom + 1,
                                Command::ZoomOut => zoom.saturating_sub(1).max(1),
                                Command::Shutdown => 0,
                            };
                            state.set(State::ZOOM, next)?;
                            if next == 0 {
                                return Ok::<(), membus::Error>(());
                            }
                        }
                        Recv::Undecodable { raw, reason, .. } => {
                            println!("[service] ignored {raw:?}: {reason}");
                        }
                        Recv::Overrun { lost } => println!("[service] {lost} commands lost"),
                        Recv::Timeout => {}
                    },
                    changes = watch.changes_async() => {
                        for change in changes?.changes {
                            if let StateChange::Zoom(z) = change {
                                println!("[service] zoom is now {z}");
                            }
                        }
                    }
                    _ = status.tick() => {
                        println!("[service] {} frames served", state.get(State::FRAMES)?);
                    }
                }
            }
        };
        let (served, done) = tokio::join!(frames, control);
        done?;
        println!("[service] stopped after {} frames", served?);
        Ok::<(), membus::Error>(())
    })?;
    let seen = client.join().expect("client thread")?;
    println!("[client] saw {seen} frames");
    Ok(())
}
