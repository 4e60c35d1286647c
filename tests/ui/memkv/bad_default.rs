use membus::MemKv;

#[derive(MemKv)]
struct NotText {
    a: u32,
    #[memkv(default = 5)]
    b: u32,
    #[memkv(default = "a\0b")]
    c: u32,
}

#[derive(MemKv)]
#[memkv(no_fingerprint, default = "1")]
struct NoFingerprint {
    a: u32,
    #[memkv(default = "1")]
    b: u32,
}

fn main() {}
