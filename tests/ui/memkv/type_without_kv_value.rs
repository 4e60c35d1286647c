use membus::MemKv;

struct Celsius(f64);

#[derive(MemKv)]
struct Bad {
    temp: Celsius,
}

fn main() {}
