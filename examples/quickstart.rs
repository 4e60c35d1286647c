//! Quick start: a memmsg "hello" round trip between two processes.
//!
//! `cargo run --release --example quickstart` starts this program, which creates two
//! memmsg shares (requests and replies), starts a copy of itself as the responder, sends
//! "hello", and prints the reply. Both processes say what they do.

use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received, Start};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--respond") => respond(&args.next().ok_or("--respond needs the share prefix")?),
        _ => ask(),
    }
}

fn ask() -> Result<(), Box<dyn Error>> {
    let prefix = format!("/membus-quickstart-{}", std::process::id());
    let (req_name, rep_name) = (format!("{prefix}-req"), format!("{prefix}-rep"));
    // This process creates both shares; they are removed when the handles drop.
    let requests = Writer::create(&req_name, 4096)?;
    let mut replies = Reader::open_or_create(&rep_name, 4096)?;
    println!(
        "[asker {}] created {req_name} and {rep_name}",
        std::process::id()
    );

    let mut responder = Command::new(std::env::current_exe()?)
        .args(["--respond", &prefix])
        .spawn()?;

    let t0 = Instant::now();
    let seq = requests.write(b"hello")?;
    println!(
        "[asker {}] sent \"hello\" as message #{seq}",
        std::process::id()
    );
    match replies.read(Duration::from_secs(10))? {
        Received::Message { seq, payload } => println!(
            "[asker {}] received reply #{seq}: \"{}\" ({:?} after sending)",
            std::process::id(),
            String::from_utf8_lossy(&payload),
            t0.elapsed()
        ),
        Received::Timeout => return Err("no reply within 10 s".into()),
        Received::Overrun { lost } => {
            return Err(format!("reply share overrun, {lost} lost").into())
        }
    }
    let status = responder.wait()?;
    println!(
        "[asker {}] responder exited with {status}; removing the shares",
        std::process::id()
    );
    Ok(())
}

fn respond(prefix: &str) -> Result<(), Box<dyn Error>> {
    let me = std::process::id();
    // Start at the oldest message, so a request sent before we attached is not missed.
    let mut requests = Reader::attach_with(
        format!("{prefix}-req"),
        &QueueOptions::new().start(Start::Oldest),
    )?;
    let replies = Writer::attach(format!("{prefix}-rep"))?;
    println!("[responder {me}] attached to {prefix}-req and {prefix}-rep");
    let (seq, msg) = requests.read(Duration::from_secs(10))?.into_result()?;
    let text = String::from_utf8_lossy(&msg);
    println!("[responder {me}] received message #{seq}: \"{text}\"");
    let reply = format!("{text}, back from process {me}");
    replies.write(reply.as_bytes())?;
    println!("[responder {me}] replied \"{reply}\"");
    Ok(())
}
