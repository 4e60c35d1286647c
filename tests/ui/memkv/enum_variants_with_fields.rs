use membus::MemKvEnum;

#[derive(MemKvEnum)]
enum Mode {
    Auto,
    Fixed(u32),
    Range { lo: u32, hi: u32 },
}

#[derive(MemKvEnum)]
struct NotAnEnum {
    a: u32,
}

fn main() {}
