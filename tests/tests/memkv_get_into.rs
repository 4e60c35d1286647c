//! `MemKv::get_into`: values of every length around the 8-byte words it reads and the
//! maximum, read back exactly, without reallocating a buffer that is large enough.

use membus::memkv::MemKv;
use membus_tests::ShmGuard;

#[test]
fn values_of_every_length_read_back_exactly() {
    let g = ShmGuard::new("kv-get-into");
    // 18 + 14 + 40 = 72: an aligned stride, value field of 41 bytes (40 usable + NUL).
    let kv = MemKv::create_named(g.name(), &["a", "b"], 14, 40).unwrap();
    let max = kv.max_value_len();
    let mut buf = Vec::with_capacity(64);
    let cap = buf.capacity();
    for len in [0usize, 1, 5, 15, 16, 17, 31, 32, 33, 39, max] {
        let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        kv.set(1, &value).unwrap();
        assert!(!kv.get_into(1, &mut buf).unwrap(), "not stale");
        assert_eq!(buf, value, "length {len}");
        assert_eq!(kv.get(1).unwrap().value, value);
    }
    assert_eq!(buf.capacity(), cap, "no reallocation");
    // A shorter value after a longer one is not padded with the old tail.
    kv.set(0, b"abcdefghijklmnopqrstuvwxyz").unwrap();
    kv.set(0, b"xy").unwrap();
    assert!(!kv.get_into(0, &mut buf).unwrap());
    assert_eq!(buf, b"xy");
    assert!(kv.get_into(2, &mut buf).is_err(), "index out of range");
}
