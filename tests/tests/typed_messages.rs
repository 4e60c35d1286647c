//! `#[derive(Message)]` with typed senders/receivers: the wire form a Python peer reads and
//! writes with its standard library, undecodable input, attributes, and the Pod fast path.

use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::typed::{Message, Pod, Receiver, Recv, Sender};
use membus::{QueueOptions, Received};
use membus_tests::ShmGuard;

#[derive(membus::Message, Debug, Clone, PartialEq)]
enum CameraCmd {
    PanLeft,
    PanStop,
    Zoom(f32),
    Move(i32, i32),
    Expose {
        us: u32,
        auto: bool,
        label: Option<String>,
    },
    #[message(rename = "home!")]
    GoHome,
}

#[derive(membus::Message, Debug, PartialEq)]
#[message(rename_all = "SCREAMING_SNAKE_CASE")]
enum Shouty {
    StartRecording,
    SetName(String),
}

#[derive(membus::Message, Debug, PartialEq)]
struct Stats {
    fps: f64,
    dropped: u64,
    tags: Vec<String>,
}

#[derive(membus::Message, Debug, PartialEq)]
struct Heartbeat;

#[derive(membus::Message, Debug, PartialEq)]
struct Celsius(f32);

fn wire<M: Message>(m: &M) -> String {
    let mut v = Vec::new();
    m.encode(&mut v).unwrap();
    String::from_utf8(v).unwrap()
}

/// A channel pair over one memcmd, plus a raw handle acting as the foreign (Python) peer.
fn channel<M: Message>(tag: &str) -> (ShmGuard, Sender<M>, Receiver<M>, MemCmd) {
    let g = ShmGuard::new(tag);
    let rx: Receiver<M> = MemCmd::create(g.name(), 8192).unwrap().into();
    let tx: Sender<M> = MemCmd::attach(g.name()).unwrap().into();
    let raw = MemCmd::attach_with(g.name(), &QueueOptions::new().register_reader(false)).unwrap();
    (g, tx, rx, raw)
}

fn next<M: Message + std::fmt::Debug>(rx: &mut Receiver<M>) -> Recv<M> {
    rx.recv(Duration::from_secs(1)).unwrap()
}

#[test]
fn wire_forms_are_the_documented_ones() {
    assert_eq!(wire(&CameraCmd::PanLeft), "pan-left");
    assert_eq!(wire(&CameraCmd::Zoom(2.5)), r#"{"zoom":2.5}"#);
    assert_eq!(wire(&CameraCmd::Move(1, -2)), r#"{"move":[1,-2]}"#);
    let e = CameraCmd::Expose {
        us: 500,
        auto: false,
        label: None,
    };
    let v: serde_json::Value = serde_json::from_str(&wire(&e)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"expose": {"us": 500, "auto": false, "label": null}})
    );
    assert_eq!(wire(&CameraCmd::GoHome), "home!");
    assert_eq!(wire(&Shouty::StartRecording), "START_RECORDING");
    assert_eq!(wire(&Shouty::SetName("a".into())), r#"{"SET_NAME":"a"}"#);
    let v: serde_json::Value = serde_json::from_str(&wire(&Stats {
        fps: 29.97,
        dropped: 3,
        tags: vec!["x".into()],
    }))
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({"fps": 29.97, "dropped": 3, "tags": ["x"]})
    );
    assert_eq!(wire(&Heartbeat), "heartbeat");
    assert_eq!(wire(&Celsius(21.5)), "21.5");
}

#[test]
fn what_a_python_peer_writes_is_received_typed_and_the_other_way_round() {
    let (_g, mut tx, mut rx, mut peer) = channel::<CameraCmd>("typed-peer");
    // What `memcmd.write("pan-left")` and `json.dumps({...})` in Python put on the wire.
    for raw in [
        "pan-left",
        r#"{"zoom": 1.5}"#,
        r#"{"expose": {"auto": true, "us": 100}}"#,
        r#"{"pan-stop": null}"#,
        "home!",
    ] {
        peer.write(raw.as_bytes()).unwrap();
    }
    let got: Vec<CameraCmd> = (0..5)
        .map(|_| match next(&mut rx) {
            Recv::Message { msg, .. } => msg,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            CameraCmd::PanLeft,
            CameraCmd::Zoom(1.5),
            CameraCmd::Expose {
                us: 100,
                auto: true,
                label: None
            },
            CameraCmd::PanStop,
            CameraCmd::GoHome,
        ]
    );
    // And what a Rust sender writes is what the Python peer reads back as text.
    tx.send(&CameraCmd::PanLeft).unwrap();
    tx.send(&CameraCmd::Move(3, 4)).unwrap();
    let raw: Vec<Vec<u8>> = peer
        .try_iter()
        .map(|r| r.unwrap().message().unwrap())
        .collect();
    let tail: Vec<&[u8]> = raw.iter().rev().take(2).rev().map(Vec::as_slice).collect();
    assert_eq!(tail, vec![&b"pan-left"[..], &br#"{"move":[3,4]}"#[..]]);
}

#[test]
fn undecodable_messages_are_delivered_raw_and_nothing_is_lost() {
    let (_g, mut tx, mut rx, peer) = channel::<CameraCmd>("typed-bad");
    let bad: [&[u8]; 6] = [
        b"pan-rigth",
        b"{\"zoom\": \"big\"}",
        b"{oops",
        b"{\"move\": [1]}",
        b"{\"zoom\": 1, \"move\": [1, 2]}",
        &[0xff, 0x00],
    ];
    for b in bad {
        peer.write(b).unwrap();
    }
    tx.send(&CameraCmd::PanStop).unwrap();
    let mut reasons = Vec::new();
    for b in bad {
        match next(&mut rx) {
            Recv::Undecodable { raw, reason, .. } => {
                assert_eq!(raw, b);
                reasons.push(reason);
            }
            other => panic!("expected undecodable for {b:?}, got {other:?}"),
        }
    }
    assert!(
        reasons[0].contains("unknown variant \"pan-rigth\"") && reasons[0].contains("pan-left"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("invalid type"), "{}", reasons[1]);
    assert!(reasons[2].contains("not JSON"), "{}", reasons[2]);
    assert!(reasons[3].contains("array of 2"), "{}", reasons[3]);
    assert!(reasons[4].contains("exactly one key"), "{}", reasons[4]);
    assert!(reasons[5].contains("UTF-8"), "{}", reasons[5]);
    assert!(
        matches!(
            next(&mut rx),
            Recv::Message {
                msg: CameraCmd::PanStop,
                ..
            }
        ),
        "the receiver kept going"
    );
    assert_eq!(rx.recv(Duration::ZERO).unwrap(), Recv::Timeout);
}

#[test]
fn missing_fields_are_none_for_options_and_errors_otherwise() {
    assert_eq!(
        CameraCmd::decode(br#"{"expose":{"us":1,"auto":false}}"#).unwrap(),
        CameraCmd::Expose {
            us: 1,
            auto: false,
            label: None
        }
    );
    let e = CameraCmd::decode(br#"{"expose":{"auto":false}}"#).unwrap_err();
    assert_eq!(e.reason(), "missing field `us`");
    assert!(
        Stats::decode(br#"{"fps":1.0,"dropped":2,"tags":[],"extra":true}"#).is_ok(),
        "unknown fields are ignored"
    );
    assert!(Heartbeat::decode(b"heartbeat").is_ok());
    assert!(Heartbeat::decode(b"heartbeats").is_err());
}

#[test]
fn typed_memmsg_round_trip_with_overrun_carried_through() {
    let g = ShmGuard::new("typed-msg");
    let mut tx: Sender<Stats> = Writer::create(g.name(), 256).unwrap().into();
    let mut rx: Receiver<Stats> = Reader::attach(g.name()).unwrap().into();
    let s = Stats {
        fps: 30.0,
        dropped: 0,
        tags: vec![],
    };
    tx.send(&s).unwrap();
    assert!(rx.poll());
    assert_eq!(
        next(&mut rx),
        Recv::Message {
            seq: 1,
            msg: Stats {
                fps: 30.0,
                dropped: 0,
                tags: vec![]
            }
        }
    );
    for i in 0..20 {
        tx.send(&Stats {
            fps: 30.0,
            dropped: i,
            tags: vec![],
        })
        .unwrap();
    }
    assert_eq!(next(&mut rx), Recv::Overrun { lost: 20 });
    let e = tx
        .send(&Stats {
            fps: 1.0,
            dropped: 1,
            tags: vec!["x".repeat(300)],
        })
        .unwrap_err();
    assert_eq!(e.kind(), membus::ErrorKind::MessageTooLarge);
}

#[test]
fn pod_messages_travel_as_their_bytes() {
    let g = ShmGuard::new("typed-pod");
    let mut tx: Sender<Pod<[f32; 4]>> = Writer::create(g.name(), 4096).unwrap().into();
    let mut raw = Reader::attach(g.name()).unwrap();
    let mut rx: Receiver<Pod<[f32; 4]>> = Reader::attach(g.name()).unwrap().into();
    tx.send(&Pod([1.0, 2.0, 3.0, 4.0])).unwrap();
    let bytes = raw.read(Duration::ZERO).unwrap().message().unwrap();
    assert_eq!(bytes, bytemuck_bytes(&[1.0f32, 2.0, 3.0, 4.0]));
    assert_eq!(
        next(&mut rx),
        Recv::Message {
            seq: 1,
            msg: Pod([1.0, 2.0, 3.0, 4.0])
        }
    );
    // A message of the wrong size is undecodable, not misread.
    let w = Writer::attach(g.name()).unwrap();
    w.write(&[0u8; 12]).unwrap();
    assert!(matches!(next(&mut rx), Recv::Undecodable { ref raw, .. } if raw.len() == 12));
    let got = raw.read(Duration::ZERO).unwrap();
    assert!(matches!(got, Received::Message { .. }));
}

fn bytemuck_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_ne_bytes()).collect()
}
