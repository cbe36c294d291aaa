//! Loading the configuration: the embedded defaults, then `--config FILE`, then
//! `ALICOM_EMU_<SECTION>__<KEY>` environment variables.

use std::path::Path;

use anyhow::{Context, bail};
use emu_core::Config;
use figment::Figment;
use figment::providers::{Env, Format, Toml};

/// `fixtures/default.toml`, compiled in: `alicom-emu` with no arguments runs on it.
pub const DEFAULT_TOML: &str = include_str!("../../../fixtures/default.toml");

pub const ENV_PREFIX: &str = "ALICOM_EMU_";

pub fn load(file: Option<&Path>, ephemeral_ports: bool) -> anyhow::Result<Config> {
    load_with_env(file, ephemeral_ports, Env::prefixed(ENV_PREFIX))
}

fn load_with_env(file: Option<&Path>, ephemeral_ports: bool, env: Env) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
    if let Some(path) = file {
        // Toml::file quietly skips a missing file; a typo in --config must not go unnoticed.
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        figment = figment.merge(Toml::string(&text));
    }
    // Only SECTION__KEY variables are settings; ALICOM_EMU_CONFIG and friends are CLI flags.
    figment = figment.merge(env.filter(|k| k.as_str().contains("__")).split("__"));
    let mut config: Config = figment.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    if ephemeral_ports {
        zero_ports(&mut config);
    }
    if let Err(e) = config.validate() {
        bail!("invalid configuration: {e}");
    }
    Ok(config)
}

/// The defaults with `overrides` (TOML) merged over them, every port ephemeral, no environment:
/// what in-process tests run on.
pub fn for_tests(overrides: &str) -> anyhow::Result<Config> {
    let figment = Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(overrides));
    let mut config: Config = figment.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    zero_ports(&mut config);
    config.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(config)
}

fn zero_ports(config: &mut Config) {
    let p = &mut config.ports;
    (p.pop, p.admin, p.mqtt_ws, p.mqtt_tcp, p.mns, p.turn) = (0, 0, 0, 0, 0, 0);
    p.media = 0;
    config.tls.pop_port = 0;
    config.tls.mns_port = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let c = load_with_env(None, false, Env::prefixed("ALICOM_EMU_TEST_NONE_")).unwrap();
        assert_eq!(c.ports.pop, 18080);
        assert_eq!(c.default_access_key().unwrap().id, "testAK");
        assert_eq!(c.pop.signature, emu_core::config::SignatureMode::Enforce);
    }

    #[test]
    fn env_and_file_override() {
        let dir = std::env::temp_dir().join(format!("alicom-emu-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[pop]\nsignature = \"log\"\n[ports]\nadmin = 9999\n").unwrap();
        // SAFETY: the variable's prefix is unique to this test.
        unsafe {
            std::env::set_var("ALICOM_EMU_T1_PORTS__POP", "0");
            std::env::set_var("ALICOM_EMU_T1_BIN", "/ignored");
        }
        let c = load_with_env(Some(&file), false, Env::prefixed("ALICOM_EMU_T1_")).unwrap();
        assert_eq!(c.pop.signature, emu_core::config::SignatureMode::Log);
        assert_eq!(c.ports.admin, 9999);
        assert_eq!(c.ports.pop, 0);
        let e = load_with_env(Some(&dir.join("missing.toml")), false, Env::prefixed("X_")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        std::fs::write(&file, "[pop]\nsignatur = \"log\"\n").unwrap();
        let e = load_with_env(Some(&file), false, Env::prefixed("X_")).unwrap_err();
        assert!(format!("{e:#}").contains("signatur"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn media_workers_default_to_one_and_are_bounded() {
        let c = load_with_env(None, false, Env::prefixed("ALICOM_EMU_TEST_NONE_")).unwrap();
        assert_eq!(c.media.workers, 1, "one media port by default");
        assert_eq!(for_tests("[media]\nworkers = 4\n").unwrap().media.workers, 4);
        for bad in ["0", "65"] {
            let e = for_tests(&format!("[media]\nworkers = {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("media.workers"), "{e}");
        }
    }

    #[test]
    fn admin_lists_come_from_one_variable() {
        // SAFETY: the variables' prefix is unique to this test.
        unsafe {
            std::env::set_var("ALICOM_EMU_T2_ADMIN__ALLOWED_HOSTS", "alicom-emu, emu.internal");
            std::env::set_var("ALICOM_EMU_T2_ADMIN__ALLOWED_ORIGINS", "http://app.test:3000");
            std::env::set_var("ALICOM_EMU_T2_ADMIN__TOKEN", "s3cret");
        }
        let c = load_with_env(None, false, Env::prefixed("ALICOM_EMU_T2_")).unwrap();
        assert_eq!(c.admin.allowed_hosts, ["alicom-emu", "emu.internal"]);
        assert_eq!(c.admin.allowed_origins, ["http://app.test:3000"]);
        assert_eq!(c.admin.token, "s3cret");
        let shown = serde_json::to_string(&c).unwrap();
        assert!(!shown.contains("s3cret") && shown.contains("<redacted>"), "{shown}");
        let d = for_tests("[admin]\nallowed_hosts = [\"a\", \"b\"]\n").unwrap();
        assert_eq!(d.admin.allowed_hosts, ["a", "b"]);
        assert!(d.admin.token.is_empty() && !serde_json::to_string(&d).unwrap().contains("\"token\""));
        let e = for_tests("[admin]\nallowed_origins = [\"app.test\"]\n").unwrap_err();
        assert!(e.to_string().contains("allowed_origins"), "{e}");
        // SAFETY: as above.
        unsafe { std::env::set_var("ALICOM_EMU_T3_ADMIN__TOKEN", "12345") };
        let n = load_with_env(None, false, Env::prefixed("ALICOM_EMU_T3_")).unwrap();
        assert_eq!(n.admin.token, "12345", "a token of digits stays a string");
        let e = for_tests("[admin]\ntoken = \"two words\"\n").unwrap_err();
        assert!(e.to_string().contains("admin.token"), "{e}");
    }

    #[test]
    fn ephemeral_ports_zero_everything() {
        let c = load_with_env(None, true, Env::prefixed("ALICOM_EMU_TEST_NONE_")).unwrap();
        assert_eq!([c.ports.pop, c.ports.admin, c.ports.mqtt_ws, c.ports.mns], [0; 4]);
    }

    #[test]
    fn deeply_nested_toml_is_an_error_not_a_crash() {
        // The TOML parser stops at 80 levels of arrays or inline tables.
        for deep in [
            format!("a = {}1{}", "[".repeat(100_000), "]".repeat(100_000)),
            format!("a = {}1{}", "{b = ".repeat(100_000), "}".repeat(100_000)),
        ] {
            let dir = std::env::temp_dir().join(format!("alicom-emu-deep-{}", std::process::id()));
            std::fs::write(&dir, deep).unwrap();
            let e = load_with_env(Some(&dir), true, Env::prefixed("ALICOM_EMU_TEST_NONE_")).unwrap_err();
            let _ = std::fs::remove_file(&dir);
            assert!(e.to_string().contains("invalid configuration"), "{e}");
        }
    }
}
