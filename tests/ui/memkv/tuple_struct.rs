use membus::MemKv;

#[derive(MemKv)]
struct Point(u32, u32);

fn main() {}
