//! TURN credentials in coturn's shared-secret mode (`use-auth-secret`), the "TURN REST API" scheme that is the
//! contract between Callbox and the relay: `username = "<unix expiry>:<user id>"`,
//! `password = base64(HMAC-SHA1(shared secret, username))`. The relay recomputes the password from the username
//! and refuses it once the expiry has passed, so Callbox never has to tell the relay about a user.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A TURN username and password, valid until `expires_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<unix expiry>:<user id>`.
    pub username: String,
    /// base64 of HMAC-SHA1 of the username with the shared secret.
    pub password: String,
    /// When the relay stops accepting it.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The credential of `user_id` expiring at `expires_at` (whole seconds: the username carries a unix time).
pub fn credential(shared_secret: &[u8], user_id: &str, expires_at: DateTime<Utc>) -> TurnCredential {
    let expiry = expires_at.timestamp();
    let username = format!("{expiry}:{user_id}");
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the library free of panics.
    let password = match Hmac::<Sha1>::new_from_slice(shared_secret) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    let expires_at = DateTime::<Utc>::from_timestamp(expiry, 0).unwrap_or(expires_at);
    TurnCredential { username, password, expires_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_turn_rest_api_scheme() {
        // Vector computed with `printf %s "$user" | openssl dgst -sha1 -hmac "$secret" -binary | base64`
        // (the command coturn's documentation gives), secret "north-relay-secret", user "1764748800:bob".
        let at = DateTime::<Utc>::from_timestamp(1_764_748_800, 0).unwrap();
        let got = credential(b"north-relay-secret", "bob", at);
        assert_eq!(got.username, "1764748800:bob");
        assert_eq!(got.password, "9vnv5+DRQ+Bb5BzDNleNohsCBl4=");
        assert_eq!(got.expires_at, at);
        assert!(!format!("{got:?}").contains(&got.password));
    }

    #[test]
    fn sub_second_expiry_is_truncated_to_the_second_the_username_carries() {
        let at = DateTime::<Utc>::from_timestamp(1_764_748_800, 900_000_000).unwrap();
        let got = credential(b"s", "alice", at);
        assert_eq!(got.username, "1764748800:alice");
        assert_eq!(got.expires_at.timestamp_subsec_nanos(), 0);
    }
}
