use membus::{MemKv, MemKvEnum};

#[derive(MemKv)]
struct Bad {
    exposure: u32,
    #[memkv(rename = "exposure")]
    exposure_us: u32,
    #[memkv(rename = "__schema")]
    schema: u32,
}

#[derive(MemKv)]
#[memkv(rename_all = "lowercase")]
struct Cased {
    gain_db: u32,
    gaindb: u32,
}

#[derive(MemKvEnum)]
enum Mode {
    Auto,
    #[memkv(rename = "Auto")]
    Automatic,
}

fn main() {}
