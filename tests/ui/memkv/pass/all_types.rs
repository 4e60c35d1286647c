use membus::{KvValue, MemKv, MemKvEnum};

#[derive(MemKvEnum, Clone, Copy, Debug, PartialEq)]
#[memkv(rename_all = "snake_case")]
enum Mode {
    FullAuto,
    #[memkv(rename = "M")]
    Manual,
}

#[derive(MemKv, Debug)]
#[memkv(max_len = 40, rename_all = "camelCase")]
struct AllTypes {
    a_i8: i8,
    a_u8: u8,
    a_i16: i16,
    a_u16: u16,
    a_i32: i32,
    a_u32: u32,
    a_i64: i64,
    a_u64: u64,
    a_i128: i128,
    a_u128: u128,
    a_isize: isize,
    a_usize: usize,
    a_f32: f32,
    a_f64: f64,
    a_bool: bool,
    a_char: char,
    a_string: String,
    #[memkv(max_len = 5)]
    short_string: String,
    a_mode: Mode,
    o_i8: Option<i8>,
    o_u64: Option<u64>,
    o_f64: Option<f64>,
    o_bool: Option<bool>,
    o_char: Option<char>,
    o_string: Option<String>,
    o_mode: Option<Mode>,
    #[memkv(text)]
    addr: std::net::IpAddr,
    #[memkv(text, max_len = 21, rename = "socket")]
    sock: std::net::SocketAddr,
}

fn main() {
    use membus::typed::KvSchema;
    assert_eq!(AllTypes::SLOTS.len(), 28);
    assert_eq!(AllTypes::SLOTS[0].name, "aI8");
    assert_eq!(AllTypes::SLOTS[17].max_len, 5);
    assert_eq!(AllTypes::SLOTS[27].name, "socket");
    assert_eq!(<Mode as KvValue>::MAX_LEN, Some(9));
    let _: membus::typed::Field<AllTypes, Option<Mode>> = AllTypes::O_MODE;
    let _: membus::typed::Field<AllTypes, std::net::SocketAddr> = AllTypes::SOCK;
}
