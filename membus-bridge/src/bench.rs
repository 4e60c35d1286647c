//! `membus-bridge bench` (filled in below).
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {}

pub fn run(_: &BenchArgs) -> Result<(), String> {
    Err("not yet".into())
}
