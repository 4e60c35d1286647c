use membus::MemKv;

#[derive(MemKv)]
struct Bad {
    count: u32,
    label: String,
    note: Option<String>,
    #[memkv(text)]
    addr: std::net::IpAddr,
}

fn main() {}
