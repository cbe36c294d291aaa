//! The TOML configuration (crates/emu-core/src/config.rs, loaded by crates/emu-server/src/
//! config.rs): any text merged over the embedded defaults loads or is refused with a message;
//! a configuration that loads validates, builds the emulator's shared state, its phones and its
//! virtual devices' behaviours, and writes back to TOML that loads to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;

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
    // What the server builds from it at start.
    let _ = emu_pstn::PstnSim::from_config(&config.pstn);
    for d in &config.voip.devices {
        let _ = emu_voip::Behavior::from_json(d.behavior.clone());
    }
    let shared = alicom_emu_fuzz::shared_from(config.clone());
    assert_eq!(shared.tenants.all().len(), config.tenants.len());
    let json = serde_json::to_value(&config).expect("a configuration serialises");
    // Written back as TOML (the admin token is shown redacted, so it is left out) and loaded again.
    let mut plain = config.clone();
    plain.admin.token.clear();
    let Ok(toml) = toml::to_string(&plain) else { return };
    let again =
        emu_server::config::for_tests(&toml).unwrap_or_else(|e| panic!("our own TOML does not load: {e}\n{toml}"));
    let mut a = serde_json::to_value(&again).expect("a configuration serialises");
    let mut b = json;
    for v in [&mut a, &mut b] {
        v["admin"]["token"] = serde_json::Value::Null;
    }
    // (to_value, not text: floats compare exactly.)
    assert_eq!(a, b, "the configuration changed through TOML");
});
