// A derive that fails on one field still emits every key constant, so code that names the
// keys reports only the real error (no "no associated item named RATE_HZ").
use membus::{Kv, MemKv};

#[derive(MemKv)]
struct Settings {
    #[memkv(renam = "rate")]
    rate_hz: u32,
    #[memkv(max_len = 8)]
    label: String,
}

fn main() -> membus::Result<()> {
    let kv: Kv<Settings> = Kv::attach("/settings")?;
    let _rate: u32 = kv.get(Settings::RATE_HZ)?;
    kv.set(Settings::LABEL, String::from("front"))?;
    Ok(())
}
