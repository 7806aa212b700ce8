//! docs/configuration.md is generated from `callbox_server::config_reference` and cannot go stale: every key of
//! `Config` needs an entry, and the checked-in document must equal the generated one.

use callbox_server::config_reference::{coverage_gaps, default_keys, env_name, markdown, ENTRIES, REGENERATE};
use std::path::PathBuf;

fn document() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")
}

#[test]
fn config_reference_covers_every_key_of_the_configuration() {
    let (missing, stale) = coverage_gaps();
    assert!(
        missing.is_empty(),
        "configuration keys without an entry in crates/callbox-server/src/config_reference.rs: {missing:?}; add \
         them to ENTRIES, then run {REGENERATE}"
    );
    assert!(stale.is_empty(), "entries of config_reference.rs that are no longer keys of Config: {stale:?}");
    let mut keys: Vec<&str> = ENTRIES.iter().map(|entry| entry.key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), ENTRIES.len(), "a key is listed twice");
    assert!(default_keys().len() > 20, "the walk over Config::default() found its keys");
}

#[test]
fn config_reference_document_is_up_to_date() {
    let generated = markdown();
    for entry in ENTRIES {
        assert!(generated.contains(&format!("| `{}` | `{}` |", entry.key, env_name(entry.key))), "{}", entry.key);
    }
    let path = document();
    if std::env::var_os("CALLBOX_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/configuration.md differs from what crates/callbox-server/src/config_reference.rs generates; \
         regenerate it with:\n  {REGENERATE}"
    );
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure type is figment's, not ours
fn config_reference_environment_names_are_the_ones_the_server_reads() {
    // Each key set through its documented variable reaches the loaded configuration (a value other than the
    // default, so that the check cannot pass by accident).
    figment::Jail::expect_with(|jail| {
        jail.set_env(env_name("login.max_failures_per_user"), "17");
        jail.set_env(env_name("trust_forwarded_for"), "true");
        jail.set_env(env_name("cache.ttl_milliseconds"), "250");
        jail.set_env(env_name("log_format"), "json");
        let config = callbox_server::config::Config::load(None, serde_json::json!({})).map_err(|e| e.to_string())?;
        assert_eq!(config.login.max_failures_per_user, 17);
        assert!(config.trust_forwarded_for);
        assert_eq!(config.cache.ttl_milliseconds, Some(250));
        assert_eq!(config.log_format, callbox_server::config::LogFormat::Json);
        Ok(())
    });
}
