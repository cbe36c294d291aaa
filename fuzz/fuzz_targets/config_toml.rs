//! The TOML configuration (crates/emu-core/src/config.rs, loaded by crates/emu-server/src/
//! config.rs): any text merged over the embedded defaults loads or is refused with a message.
//! A configuration that loads validates, writes back to TOML that loads to the same
//! configuration, and runs: the shared state, phones and device behaviours build; a token issued
//! now is valid now; the TURN relay takes a user for the configured credential lifetime; a
//! logged-in device's joinChannel with a mediaSignal is ACKed under the configured cap.
#![no_main]

use alicom_emu_fuzz::gateway::connect;
use bytes::BytesMut;
use emu_gateway::Hub;
use emu_gateway::envelope::Envelope;
use emu_gateway::fuzzing::Session;
use emu_gateway::{media_signal, mqtt};
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::Packet;
use serde_json::json;

/// Runs the parts of the emulator that take their numbers from the configuration.
fn run(config: &emu_core::Config) {
    let shared = alicom_emu_fuzz::shared_from(config.clone());
    assert_eq!(shared.tenants.all().len(), config.tenants.len());
    let _ = emu_pstn::PstnSim::from_config(&config.pstn);
    for d in &config.voip.devices {
        let _ = emu_voip::Behavior::from_json(d.behavior.clone());
    }

    // GetRtcToken, then the device's login.
    let tenant = emu_core::TenantId(0);
    let now = shared.clock.now_ms();
    let account = shared.directory.add_account(tenant, "fuzz-device", u64::MAX, now).expect("an account");
    let (rec, _) = shared
        .directory
        .issue_token(tenant, &account.rtc_id, "fuzz-device", false, &shared.token_settings, now)
        .expect("a token");
    assert!(shared.directory.validate_token(&rec.token_data, now).is_ok(), "a token is not valid when issued");

    // joinChannel's TURN credentials.
    let host = config.public_host();
    if let Ok((media, _)) = emu_server::app::media_config(config, &host, 18090) {
        emu_media::fuzzing::turn_auth("user", &media.turn_realm, "password", media.turn_credential_ttl);
    }

    // A device logs in and joins with a small mediaSignal (unless packets are limited below
    // what a login takes: the configuration's choice).
    if config.gateway.max_packet_bytes < 4096 {
        return;
    }
    let hub = Hub::new(shared, "127.0.0.1:18083".into());
    let mut s = Session::new(hub.clone());
    s.feed(&connect(&rec.client_id));
    s.feed(&mqtt::publish("$SYS/uploadToken", format!("{{\"token\":\"{}\"}}", rec.token_data).into_bytes()));
    assert!(s.is_bound(), "a fresh token did not log in");
    let signal = media_signal::encode_compressed(&json!({"api": "joinChannel", "data": {"channelId": "c"}}));
    let join =
        json!({"messageType": "joinChannel", "requestId": "r1", "body": {"channelId": "c", "mediaSignal": signal}});
    let written = s.feed(&mqtt::publish(&hub.server_topic, serde_json::to_vec(&join).expect("JSON")));
    let acked = written.iter().any(|p| match Packet::read(&mut BytesMut::from(&p[..]), usize::MAX) {
        Ok(Packet::Publish(p)) => Envelope::parse(&p.payload).is_ok_and(|e| e.response && e.request_id == "r1"),
        _ => false,
    });
    assert!(acked, "a joinChannel got no ACK");
    drop(s);
    hub.reset();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = match emu_server::config::for_tests(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    config.validate().expect("a loaded configuration is valid");
    let json = serde_json::to_value(&config).expect("a configuration serialises");
    // Written back as TOML (the admin token is shown redacted, so it is left out) and loaded again.
    let mut plain = config.clone();
    plain.admin.token.clear();
    if let Ok(toml) = toml::to_string(&plain) {
        let again =
            emu_server::config::for_tests(&toml).unwrap_or_else(|e| panic!("our own TOML does not load: {e}\n{toml}"));
        let mut a = serde_json::to_value(&again).expect("a configuration serialises");
        let mut b = json;
        for v in [&mut a, &mut b] {
            v["admin"]["token"] = serde_json::Value::Null;
        }
        // (to_value, not text: floats compare exactly.)
        assert_eq!(a, b, "the configuration changed through TOML");
    }
    run(&config);
});
