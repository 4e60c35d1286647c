//! Child process for the cross-process memkv test: attaches to the typed store named by
//! `argv[1]`, writes rounds `1..=argv[2]` as fast as it can, then rounds up to
//! `argv[2] + argv[3]` one at a time, each only after the parent acknowledged the previous.
//! Exit code 0 on success, 1 on an error (printed), 2 when the parent stops acknowledging.

use std::process::ExitCode;
use std::time::Duration;

use membus::Kv;
use membus_tests::Counters;

fn write_round(kv: &Kv<Counters>, n: u32) -> membus::Result<i64> {
    kv.update(|b| {
        b.set(Counters::A, u64::from(n))
            .set(Counters::B, u64::from(n))
            .set(Counters::C, i64::from(n))
            .set(Counters::ROUND, n);
    })
}

fn run(args: &[String]) -> membus::Result<ExitCode> {
    let (Some(name), Some(free), Some(acked)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: membus-kv-peer NAME FREE_ROUNDS ACKED_ROUNDS");
        return Ok(ExitCode::from(1));
    };
    let (Ok(free), Ok(acked)) = (free.parse::<u32>(), acked.parse::<u32>()) else {
        eprintln!("round counts must be numbers");
        return Ok(ExitCode::from(1));
    };
    let kv = Kv::<Counters>::attach(name.as_str())?;
    for n in 1..=free {
        write_round(&kv, n)?;
    }
    for n in free + 1..=free + acked {
        let mut since = write_round(&kv, n)?;
        while kv.get(Counters::ACK)? < n {
            match kv.wait_for(&[Counters::ACK.id()], since, Duration::from_secs(30))? {
                Some(ch) => since = ch.epoch,
                None => return Ok(ExitCode::from(2)),
            }
        }
    }
    println!("wrote {} rounds", free + acked);
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("membus-kv-peer: {e}");
            ExitCode::from(1)
        }
    }
}
