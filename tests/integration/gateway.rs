//! The MQTT gateway and the SDK session protocol, with testkit devices and raw MQTT clients.

use std::time::Duration;

use emu_core::signalling::RequestKind;
use emu_gateway::GatewayEvent;
use emu_testkit::{Device, Emulator, Inbound};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const FAST: &str = r#"
[gateway]
auth_timeout_ms = 1000
heartbeat_timeout_ms = 60000
disconnect_grace_ms = 400
retransmit_interval_ms = 100
retransmit_attempts = 2
token_refresh_timeout_ms = 2000
sweep_interval_ms = 20
max_packet_bytes = 65536
max_media_signal_bytes = 65536
"#;

async fn emu(extra: &str) -> Emulator {
    // The device lists asserted here are the tests' own devices only (no ready-made virtual parties).
    Emulator::start(&format!("{FAST}\n[voip]\ndevices = []\n{extra}")).await.expect("emulator")
}

/// The next engine event that matches, within 5 s.
async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<GatewayEvent>,
    want: impl Fn(&GatewayEvent) -> bool,
) -> GatewayEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = rx.recv().await.expect("gateway alive");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event within 5 s")
}

fn devices_online(v: &Value) -> Vec<(String, bool)> {
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["rtcId"].as_str().unwrap().to_string(), d["online"].as_bool().unwrap()))
        .collect()
}

#[tokio::test]
async fn register_heartbeat_and_devices_list() {
    let emu = emu("").await;
    let mut alice = emu.device("alice-phone").await.unwrap();
    alice.register().await.unwrap();
    alice.register().await.unwrap(); // the 30 s heartbeat is a cs_register too
    let devices = emu.admin_get("/admin/devices").await.unwrap();
    assert_eq!(devices_online(&devices), vec![(alice.rtc_id.clone(), true)]);
    assert_eq!(devices["devices"][0]["heartbeats"], 1);
    assert_eq!(devices["devices"][0]["connection"]["transport"], "tcp");
    assert!(emu.running.gateway.online(emu_core::TenantId(0), &alice.rtc_id));

    // cs_get_sls_sts is answered with credentials for the local log sink.
    let ack = alice.request("cs_get_sls_sts", json!({}), None).await.unwrap();
    assert_eq!(ack.response_code, 200);
    let endpoint = ack.body["endpoint"].as_str().unwrap();
    assert_eq!(format!("ws://{endpoint}/mqtt"), emu.endpoints.mqtt_ws);
    let sink = format!("http://{endpoint}/logstores/{}/shards/lb", ack.body["logLogStore"].as_str().unwrap());
    let http = reqwest::Client::new();
    let pre = http.request(reqwest::Method::OPTIONS, &sink).send().await.unwrap();
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    assert_eq!(http.post(&sink).body(vec![1u8, 2, 3]).send().await.unwrap().status(), 200);
    let uploads = emu.admin_get("/admin/sls").await.unwrap();
    assert_eq!(uploads["uploads"][0]["bytes"], 3);
}

#[tokio::test]
async fn a_second_login_kicks_the_first() {
    let emu = emu("").await;
    let pop = emu.pop();
    let rtc = pop.add_rtc_account("shared-device").await.unwrap();
    let mut first =
        Device::connect(&emu.endpoints.mqtt_tcp, &rtc, pop.get_rtc_token(&rtc, "shared-device").await.unwrap())
            .await
            .unwrap();
    first.register().await.unwrap();
    let mut second =
        Device::connect(&emu.endpoints.mqtt_tcp, &rtc, pop.get_rtc_token(&rtc, "shared-device").await.unwrap())
            .await
            .unwrap();
    second.register().await.unwrap();
    first.expect("cs_quit").await.unwrap();
    first.expect_closed(Duration::from_secs(5)).await.unwrap();
    // The second one stays registered and served.
    second.register().await.unwrap();
    let devices = emu.admin_get("/admin/devices").await.unwrap();
    assert_eq!(devices_online(&devices), vec![(rtc.clone(), true)]);
    let kicks = emu.admin_get(&format!("/admin/events?rtcId={rtc}&kind=device.kicked")).await.unwrap();
    assert_eq!(kicks["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_for_another_device_kicks_the_old_login() {
    let emu = emu("").await;
    let mut old = emu.device("phone-1").await.unwrap();
    old.register().await.unwrap();
    // The app server fetches a token for the same account on another device.
    emu.pop().get_rtc_token(&old.rtc_id, "phone-2").await.unwrap();
    old.expect("cs_quit").await.unwrap();
    old.expect_closed(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn token_expiry_notice_then_refresh_on_the_same_connection() {
    let emu = emu("[clock]\nmode = \"manual\"\n[tokens]\nlifetime_secs = 60\n").await;
    let mut dev = emu.device("expiring").await.unwrap();
    dev.register().await.unwrap();
    emu.admin_post("/admin/clock/advance", json!({"ms": 61_000})).await.unwrap();
    dev.expect_notice("$SYS/tokenExpireNotice").await.unwrap();
    // The SDK asks the app for a new token and uploads it on the same connection.
    let fresh = emu.pop().get_rtc_token(&dev.rtc_id, "expiring").await.unwrap();
    dev.refresh_token(fresh).await.unwrap();
    dev.register().await.unwrap();
    // An expired token uploaded again is answered with the expiry notice, not accepted.
    let stale = emu.pop().get_rtc_token(&dev.rtc_id, "expiring").await.unwrap();
    emu.admin_post("/admin/clock/advance", json!({"ms": 61_000})).await.unwrap();
    dev.expect_notice("$SYS/tokenExpireNotice").await.unwrap();
    dev.upload_token(stale["tokenData"].as_str().unwrap()).await.unwrap();
    dev.expect_notice("$SYS/tokenExpireNotice").await.unwrap();
}

#[tokio::test]
async fn invalid_token_gets_the_invalid_notice_and_is_closed_in_time() {
    let emu = emu("").await;
    let mut dev = emu.device("liar").await.unwrap();
    dev.upload_token("not-a-token").await.unwrap();
    dev.expect_notice("$SYS/tokenInvalidNotice").await.unwrap();

    // A bare connection that never authenticates is closed after auth_timeout_ms.
    let (mut client, mut events) = raw_client(&emu, "GID_VOIP@@@ClientId_1_1");
    let _ = &mut client;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if events.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "unauthenticated connection closed");
}

#[tokio::test]
async fn retransmitted_requests_are_processed_once() {
    let emu = emu("").await;
    let mut engine = emu.running.gateway.attach_engine();
    let mut dev = emu.device("retry").await.unwrap();
    dev.register().await.unwrap();
    let env = dev.build_request(
        "joinChannel",
        json!({"channelId": "chan-1"}),
        Some(&json!({"api": "joinChannel", "seqId": 3, "data": {"channelId": "chan-1"}})),
    );
    dev.publish(&env).await.unwrap();
    dev.publish(&env).await.unwrap(); // byte-identical, as the SDK retransmits
    let first = next_event(&mut engine, |e| matches!(e, GatewayEvent::Request(..))).await;
    let GatewayEvent::Request(req, held) = first else { unreachable!() };
    // The media server answers a joinChannel at once: its ACK waits to go out with the answer.
    let held = held.expect("a joinChannel's ACK is held for the engine");
    emu.running.gateway.release_ack(held);
    let a1 = dev.expect_ack(&env.request_id).await.unwrap();
    let a2 = dev.expect_ack(&env.request_id).await.unwrap();
    assert_eq!((a1.response_code, a2.response_code), (200, 200));
    assert_eq!(a1.message_id, a2.message_id, "the cached ACK is re-sent");
    assert_eq!(req.channel_id.as_deref(), Some("chan-1"));
    let RequestKind::Join(join) = req.kind else { panic!("not a joinChannel: {:?}", req.kind) };
    assert_eq!(join.signal.seq_id, Some(json!(3)), "the inflated mediaSignal reaches the engine");
    // A later request proves the duplicate was not queued behind the first.
    dev.request("leaveChannel", json!({"channelId": "chan-1"}), None).await.unwrap();
    let next = next_event(&mut engine, |e| matches!(e, GatewayEvent::Request(..))).await;
    let GatewayEvent::Request(req, held) = next else { unreachable!() };
    assert!(matches!(req.kind, RequestKind::LeaveChannel), "{:?}", req.kind);
    assert!(held.is_none(), "a leaveChannel is ACKed at once");
    let events = emu.admin_get("/admin/events?channelId=chan-1&kind=envelope.in").await.unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_held_ack_goes_out_with_the_engines_answer_to_that_device() {
    let emu = emu("").await;
    let mut engine = emu.running.gateway.attach_engine();
    let mut dev = emu.device("held").await.unwrap();
    dev.register().await.unwrap();
    let signal = json!({"api": "sdpCandidate", "data": {"channelId": "chan-h"}});
    let env = dev.build_request("sdpCandidate", json!({"channelId": "chan-h"}), Some(&signal));
    dev.publish(&env).await.unwrap();
    let ev = next_event(&mut engine, |e| matches!(e, GatewayEvent::Request(..))).await;
    let GatewayEvent::Request(_, mut held) = ev else { unreachable!() };
    assert!(held.is_some(), "an sdpCandidate's ACK is held for the engine");
    // A message to another device leaves it held; one to the sender takes it along.
    let ringing = emu_core::signalling::ServerMessage::Ringing { uuid: "u".into(), channel_id: "chan-h".into() };
    assert!(emu.running.gateway.send_message_after(emu_core::TenantId(0), "nobody", &ringing, &mut held).is_err());
    assert!(held.is_some());
    emu.running.gateway.send_message_after(emu_core::TenantId(0), &dev.rtc_id, &ringing, &mut held).unwrap();
    assert!(held.is_none(), "taken by the message to the same connection");
    let ack = dev.expect_ack(&env.request_id).await.unwrap();
    assert_eq!(ack.response_code, 200);
    assert_eq!(dev.expect("ringing").await.unwrap().body["channelId"], "chan-h");
}

#[tokio::test]
async fn server_requests_are_retransmitted_until_acked_then_reported() {
    let emu = emu("").await;
    let mut engine = emu.running.gateway.attach_engine();
    let mut dev = emu.device("deaf").await.unwrap();
    dev.register().await.unwrap();
    dev.set_auto_ack(false);
    let id = emu
        .running
        .gateway
        .send_request(emu_core::TenantId(0), &dev.rtc_id, "ringing", json!({"channelId": "c"}))
        .unwrap();
    for _ in 0..3 {
        let e = dev.expect("ringing").await.unwrap();
        assert_eq!(e.request_id, id, "the same request, re-sent");
    }
    let ev = next_event(&mut engine, |e| matches!(e, GatewayEvent::Undelivered { .. })).await;
    assert!(matches!(ev, GatewayEvent::Undelivered { ref request_id, .. } if *request_id == id));

    // With ACKs on, one send is one delivery, and the ACK of a `called` (the one ACK the engine
    // acts on) reaches the engine; the ACK of anything else ends at the gateway, logged.
    dev.set_auto_ack(true);
    let t = emu_core::TenantId(0);
    let dtmf = emu.running.gateway.send_request(t, &dev.rtc_id, "cs_dtmf", json!({"dtmf": "5"})).unwrap();
    let e = dev.expect("cs_dtmf").await.unwrap();
    assert_eq!(e.body["dtmf"], "5");
    let id = emu.running.gateway.send_request(t, &dev.rtc_id, "called", json!({"channelId": "c2"})).unwrap();
    dev.expect("called").await.unwrap();
    let ack = next_event(&mut engine, |e| matches!(e, GatewayEvent::Ack { .. })).await;
    assert!(matches!(ack, GatewayEvent::Ack { ref request_id, code: 200, .. } if *request_id == id), "{ack:?}");
    let acked = emu.admin_get("/admin/events?kind=envelope.ack").await.unwrap();
    let ids: Vec<&str> =
        acked["events"].as_array().unwrap().iter().filter_map(|e| e["detail"]["requestId"].as_str()).collect();
    assert!(ids.contains(&dtmf.as_str()) && ids.contains(&id.as_str()), "both ACKs are logged: {acked}");
    assert!(emu.running.gateway.send_request(emu_core::TenantId(0), "nobody", "ringing", json!({})).is_err());
}

#[tokio::test]
async fn disconnect_grace_keeps_or_removes_the_registration() {
    let emu = emu("").await;
    let mut engine = emu.running.gateway.attach_engine();
    let mut back = emu.device("comes-back").await.unwrap();
    back.register().await.unwrap();
    let mut gone = emu.device("goes-away").await.unwrap();
    gone.register().await.unwrap();

    back.drop_connection();
    gone.drop_connection();
    back.reconnect().await.unwrap(); // within the 400 ms grace: uploadToken + SUBSCRIBE, no cs_register

    let ev = next_event(&mut engine, |e| matches!(e, GatewayEvent::Offline { .. })).await;
    assert!(matches!(ev, GatewayEvent::Offline { ref rtc_id, .. } if *rtc_id == gone.rtc_id), "{ev:?}");
    let devices = emu.admin_get("/admin/devices").await.unwrap();
    assert_eq!(devices_online(&devices), vec![(back.rtc_id.clone(), true)]);
    // Messages still reach the device that came back.
    emu.running.gateway.send_request(emu_core::TenantId(0), &back.rtc_id, "cs_dtmf", json!({"dtmf": "1"})).unwrap();
    back.expect("cs_dtmf").await.unwrap();
}

fn raw_client(emu: &Emulator, client_id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let addr = emu.endpoints.mqtt_tcp.trim_start_matches("mqtt://");
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut o = MqttOptions::new(client_id, host, port.parse().unwrap());
    o.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(o, 16)
}

/// Polls an event loop until `want` matches (or 3 s pass); returns what matched.
async fn poll_until(ev: &mut rumqttc::EventLoop, want: impl Fn(&Packet) -> bool) -> Option<Packet> {
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(p)) if want(&p) => return Some(p),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn isolation_between_devices() {
    let emu = emu("").await;
    let mut victim = emu.device("victim").await.unwrap();
    victim.register().await.unwrap();
    let victim_client = victim.token["clientId"].as_str().unwrap().to_string();
    let topic = victim.token["conferenceTopic"].as_str().unwrap().to_string();

    // An attacker with a valid token of its own (another account).
    let pop = emu.pop();
    let rtc = pop.add_rtc_account("attacker").await.unwrap();
    let token = pop.get_rtc_token(&rtc, "attacker").await.unwrap();
    let (client, mut ev) = raw_client(&emu, token["clientId"].as_str().unwrap());
    poll_until(&mut ev, |p| matches!(p, Packet::ConnAck(_))).await.unwrap();
    client
        .publish("$SYS/uploadToken", QoS::AtMostOnce, false, json!({"token": token["tokenData"]}).to_string())
        .await
        .unwrap();
    for filter in ["#".to_string(), format!("{topic}/p2p/{victim_client}"), "$SYS/#".to_string()] {
        client.subscribe(filter.clone(), QoS::AtMostOnce).await.unwrap();
        let Some(Packet::SubAck(s)) = poll_until(&mut ev, |p| matches!(p, Packet::SubAck(_))).await else {
            panic!("no SUBACK")
        };
        assert_eq!(s.return_codes, vec![rumqttc::SubscribeReasonCode::Failure], "{filter}");
    }
    client.subscribe(topic.clone(), QoS::AtMostOnce).await.unwrap();
    let Some(Packet::SubAck(s)) = poll_until(&mut ev, |p| matches!(p, Packet::SubAck(_))).await else {
        panic!("no SUBACK")
    };
    assert_eq!(s.return_codes, vec![rumqttc::SubscribeReasonCode::Success(QoS::AtMostOnce)]);

    // Publishing to the victim's topic or anywhere but the server topic reaches no one.
    let fake = victim.build_request("cs_quit", json!({}), None);
    client.publish(format!("{topic}/p2p/{victim_client}"), QoS::AtMostOnce, false, fake.to_bytes()).await.unwrap();
    client.publish(topic.clone(), QoS::AtMostOnce, false, fake.to_bytes()).await.unwrap();
    // Server traffic to the victim reaches only the victim.
    emu.running.gateway.send_request(emu_core::TenantId(0), &victim.rtc_id, "cs_dtmf", json!({"dtmf": "9"})).unwrap();
    let got = victim.expect("cs_dtmf").await.unwrap();
    assert_eq!(got.body["dtmf"], "9");
    victim.register().await.unwrap();
    assert!(
        !victim.drain().iter().any(|i| matches!(i, Inbound::Envelope(e) if e.message_type == "cs_quit")),
        "the forged cs_quit never arrived"
    );
    let leaked = poll_until(&mut ev, |p| matches!(p, Packet::Publish(_))).await;
    assert!(leaked.is_none(), "the attacker received {leaked:?}");

    // No token at all: publishes to the server topic are dropped, nothing comes back.
    let (anon, mut anon_ev) = raw_client(&emu, "anonymous");
    poll_until(&mut anon_ev, |p| matches!(p, Packet::ConnAck(_))).await.unwrap();
    let server_topic = format!("{topic}/p2p/{}", victim.token["serverId"].as_str().unwrap());
    anon.publish(server_topic, QoS::AtMostOnce, false, victim.build_request("cs_register", json!({}), None).to_bytes())
        .await
        .unwrap();
    assert!(poll_until(&mut anon_ev, |p| matches!(p, Packet::Publish(_))).await.is_none());
}

/// Writes raw bytes on a fresh TCP connection after a valid CONNECT and returns whether the
/// server closed it.
async fn raw_connection_closed_by(emu: &Emulator, after_connect: &[u8]) -> bool {
    let addr = emu.endpoints.mqtt_tcp.trim_start_matches("mqtt://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connect =
        [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x04, b'r', b'a', b'w', b'1'];
    s.write_all(&connect).await.unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    s.write_all(after_connect).await.unwrap();
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn malformed_input_closes_only_that_connection() {
    let emu = emu("").await;
    let mut bystander = emu.device("bystander").await.unwrap();
    bystander.register().await.unwrap();

    assert!(raw_connection_closed_by(&emu, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).await, "garbage");
    assert!(raw_connection_closed_by(&emu, &[0x10, 0x02, 0x00, 0x00]).await, "a second CONNECT");
    let mut huge = vec![0x30, 0x80, 0x80, 0x10]; // PUBLISH with a 256 KiB remaining length
    huge.extend(std::iter::repeat_n(0u8, 64));
    assert!(raw_connection_closed_by(&emu, &huge).await, "over max_packet_bytes");

    // Malformed JSON from an authenticated device closes its connection.
    let mut sloppy = emu.device("sloppy").await.unwrap();
    sloppy.register().await.unwrap();
    let server_topic = format!(
        "{}/p2p/{}",
        sloppy.token["conferenceTopic"].as_str().unwrap(),
        sloppy.token["serverId"].as_str().unwrap()
    );
    sloppy.publish_raw(&server_topic, b"{not json".to_vec()).await.unwrap();
    sloppy.expect_closed(Duration::from_secs(5)).await.unwrap();

    // A zip bomb in mediaSignal is refused with an error ACK; the session goes on.
    let mut bomber = emu.device("bomber").await.unwrap();
    bomber.register().await.unwrap();
    let bomb = json!({"pad": "x".repeat(4 << 20)});
    let ack = bomber.request("joinChannel", json!({"channelId": "b"}), Some(&bomb)).await.unwrap();
    assert_eq!(ack.response_code, 400);
    assert!(ack.body["error"].as_str().unwrap().contains("inflates"));
    bomber.register().await.unwrap();

    // Everyone else is still served.
    bystander.register().await.unwrap();
}

/// A CONNECT for `client_id` with the given first byte and CONNECT flags.
fn raw_connect(byte1: u8, connect_flags: u8) -> Vec<u8> {
    vec![
        byte1,
        0x10,
        0x00,
        0x04,
        b'M',
        b'Q',
        b'T',
        b'T',
        0x04,
        connect_flags,
        0x00,
        0x1e,
        0x00,
        0x04,
        b'r',
        b'a',
        b'w',
        b'2',
    ]
}

const BAD_SUBSCRIBE: [u8; 8] = [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00]; // flags 0000, not 0010
const GOOD_SUBSCRIBE: [u8; 8] = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x00];

/// True when the server closes the connection after `bytes` without answering anything.
async fn closed_without_answer(mut s: impl tokio::io::AsyncRead + Unpin) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn reserved_bits_close_a_tcp_connection() {
    let emu = emu("").await;
    let addr = emu.endpoints.mqtt_tcp.trim_start_matches("mqtt://").to_string();
    for (what, bytes) in
        [("CONNECT reserved flag", raw_connect(0x10, 0x03)), ("CONNECT fixed-header flags", raw_connect(0x12, 0x02))]
    {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        assert!(closed_without_answer(s).await, "{what}: no CONNACK, the connection closed");
    }
    assert!(raw_connection_closed_by(&emu, &BAD_SUBSCRIBE).await, "SUBSCRIBE with flags 0000: no SUBACK");
    assert!(raw_connection_closed_by(&emu, &[0xc1, 0x00]).await, "PINGREQ with flags 0001");
    // A correct client is unaffected.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(&raw_connect(0x10, 0x02)).await.unwrap();
    s.write_all(&GOOD_SUBSCRIBE).await.unwrap();
    let mut got = [0u8; 9];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x80], "CONNACK, SUBACK (refused filter)");
}

/// A WebSocket client by hand (the MQTT bytes travel as masked binary frames).
struct RawWs(tokio::net::TcpStream);

impl RawWs {
    async fn connect(emu: &Emulator) -> RawWs {
        let url = emu.endpoints.mqtt_ws.trim_start_matches("ws://");
        let (host, path) = url.split_once('/').unwrap();
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        RawWs(s)
    }

    async fn send(&mut self, payload: &[u8]) {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x82, 0x80 | payload.len() as u8];
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).await.unwrap();
    }

    /// The payload of the next binary frame, or None when the server closes (close frame or EOF).
    async fn next_binary(&mut self) -> Option<Vec<u8>> {
        let mut h = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(3), self.0.read_exact(&mut h)).await.ok()?.ok()?;
        let mut payload = vec![0u8; usize::from(h[1] & 0x7f)];
        self.0.read_exact(&mut payload).await.ok()?;
        (h[0] & 0x0f == 2).then_some(payload)
    }
}

#[tokio::test]
async fn reserved_bits_close_a_websocket_connection() {
    let emu = emu("").await;
    for (what, bytes) in
        [("CONNECT reserved flag", raw_connect(0x10, 0x03)), ("CONNECT fixed-header flags", raw_connect(0x18, 0x02))]
    {
        let mut ws = RawWs::connect(&emu).await;
        ws.send(&bytes).await;
        assert_eq!(ws.next_binary().await, None, "{what}: no CONNACK, the connection closed");
    }
    let mut ws = RawWs::connect(&emu).await;
    ws.send(&raw_connect(0x10, 0x02)).await;
    assert_eq!(ws.next_binary().await.unwrap(), [0x20, 0x02, 0x00, 0x00]);
    ws.send(&BAD_SUBSCRIBE).await;
    assert_eq!(ws.next_binary().await, None, "SUBSCRIBE with flags 0000: no SUBACK");
    // A correct client is unaffected.
    let mut ws = RawWs::connect(&emu).await;
    ws.send(&raw_connect(0x10, 0x02)).await;
    assert_eq!(ws.next_binary().await.unwrap(), [0x20, 0x02, 0x00, 0x00]);
    ws.send(&GOOD_SUBSCRIBE).await;
    assert_eq!(ws.next_binary().await.unwrap(), [0x90, 0x03, 0x00, 0x01, 0x80]);
}

/// MQTT 3.1.1 §3.1.2.10: a client silent for 1.5 × its keepalive is cut off, and one that
/// pings in time is not (the connection's single timer re-arms from the last packet).
#[tokio::test]
async fn keepalive_closes_a_silent_client_and_spares_a_pinging_one() {
    let emu = Emulator::start(&format!(
        "{}\n[voip]\ndevices = []\n",
        FAST.replace("auth_timeout_ms = 1000", "auth_timeout_ms = 30000")
    ))
    .await
    .expect("emulator");
    let addr = emu.endpoints.mqtt_tcp.trim_start_matches("mqtt://").to_string();
    // CONNECT, MQTT 3.1.1, clean session, keepalive 1 s, clientId "k".
    let connect = [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 1, 0, 1, b'k'];
    let open = || async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&connect).await.unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).await.unwrap();
        assert_eq!(connack[0], 0x20, "CONNACK");
        s
    };

    let mut silent = open().await;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "closed within 5 s: {closed:?}");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(1400), "not before 1.5 × keepalive: {after:?}");

    // PINGREQ every 500 ms for 3 s: each gets its PINGRESP and the connection stays open.
    let mut pinging = open().await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pinging.write_all(&[0xC0, 0]).await.unwrap();
        let mut resp = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(2), pinging.read_exact(&mut resp)).await.unwrap().unwrap();
        assert_eq!(resp, [0xD0, 0], "PINGRESP");
    }
}
