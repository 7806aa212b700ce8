//! Calls: what a session with `calling` is given to reach the other side's media, the STUN/TURN servers with a
//! short-lived TURN credential (docs/calls.md section 4). The call signaling itself is realtime state
//! (`realtime::calls`): it lives in memory on the call's home node, not in this layer.

use super::{seconds, Callbox};
use crate::store::SessionRecord;
use callbox_core::turn::TurnCredential;
use callbox_core::Capability;
use chrono::{DateTime, Utc};

/// The ICE servers of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServers {
    /// STUN URLs (no credential).
    pub stun_urls: Vec<String>,
    /// TURN URLs and the credential that goes with them (none without a shared secret or TURN URLs).
    pub turn: Option<(Vec<String>, TurnCredential)>,
    /// When the TURN credential stops working: `turn.credential_ttl_seconds` from now, never after the session.
    pub expires_at: DateTime<Utc>,
}

impl Callbox {
    /// The STUN/TURN servers for `session`; `None` when it lacks `calling` (no TURN credential for it).
    pub fn ice_servers(&self, session: &SessionRecord) -> Option<IceServers> {
        if !session.capabilities.contains(&Capability::Calling) {
            return None;
        }
        let turn = &self.config.turn;
        let expires_at = (self.now() + seconds(turn.credential_ttl_seconds)).min(session.expires_at);
        let credential = match &turn.shared_secret {
            Some(secret) if !turn.urls.is_empty() => {
                let credential = callbox_core::turn::credential(secret.0.as_bytes(), &session.user_id, expires_at);
                Some((turn.urls.clone(), credential))
            }
            _ => None,
        };
        let expires_at = credential.as_ref().map_or(expires_at, |(_, c)| c.expires_at);
        Some(IceServers { stun_urls: turn.stun_urls.clone(), turn: credential, expires_at })
    }
}
