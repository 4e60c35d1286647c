use membus::typed::KvSchema;
use membus::{MemKv, MemKvEnum};

#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
enum Mode {
    Auto,
    Manual,
}

// Fields appended with a default, and the description the derive exports.
#[derive(MemKv)]
struct Settings {
    rate_hz: u32,
    #[memkv(default = "Auto")]
    mode: Mode,
    #[memkv(default = "", max_len = 8)]
    label: Option<String>,
}

fn main() {
    let s = Settings::schema();
    assert_eq!(s.fields[1].default.as_deref(), Some("Auto"));
    assert_eq!(s.fields[1].variants, ["Auto", "Manual"]);
    assert!(Settings::schema_json().contains("\"default\": \"\""));
    let _ = Settings::RATE_HZ;
}
