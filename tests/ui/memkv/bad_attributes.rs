use membus::{MemKv, MemKvEnum};

#[derive(MemKv)]
#[memkv(rename_all = "Title Case", colour = "red")]
struct Bad {
    #[memkv(max_len = "ten")]
    a: u32,
    #[memkv(max_len = 0)]
    b: u32,
    #[memkv(renam = "x")]
    c: u32,
    #[memkv]
    d: u32,
    #[memkv(rename = "")]
    e: u32,
}

#[derive(MemKvEnum)]
#[memkv(max_len = 3)]
enum Mode {
    #[memkv(text)]
    Auto,
}

fn main() {}
