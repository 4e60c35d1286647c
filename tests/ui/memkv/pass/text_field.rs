use std::net::{IpAddr, SocketAddr};

use membus::typed::KvSchema;
use membus::MemKv;

#[derive(MemKv, Debug, PartialEq)]
#[memkv(no_fingerprint, max_len = 45)]
struct Net {
    #[memkv(text)]
    ip: IpAddr,
    #[memkv(text, max_len = 21, rename = "sock")]
    socket: SocketAddr,
}

fn main() {
    let v = Net { ip: "10.0.0.1".parse().unwrap(), socket: "10.0.0.1:554".parse().unwrap() };
    assert_eq!(v.encode_slots(), ["10.0.0.1", "10.0.0.1:554"]);
    assert_eq!(Net::SLOTS[1].name, "sock");
    assert_eq!(Net::SLOTS[1].max_len, 21);
    assert!(!Net::FINGERPRINT);
    let refs = ["::1", "[::1]:80"];
    let back = Net::decode_slots(&refs).unwrap();
    assert_eq!(back.ip, "::1".parse::<IpAddr>().unwrap());
    let _: membus::typed::Field<Net, SocketAddr> = Net::SOCKET;
}
