//! Bodies of the client API (PROTOCOL §6, `/v1`).

use crate::{CapabilitySchema, SecretString};
use callbox_core::{Capability, Identity};
use serde::{Deserialize, Serialize};

/// One identity of a sign-up, as sent (`type` and `endpoint`; checked by the server).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct IdentityBody {
    /// `username`, `email` or `number`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user id.
    pub endpoint: String,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct SignUpBody {
    /// The new user's password.
    pub password: SecretString,
    /// Exactly one identity.
    pub identities: Vec<IdentityBody>,
    /// Profile data (accepted for compatibility, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub profile: Option<serde_json::Value>,
}

/// `POST /v1/users/{type}/{endpoint}/authentication`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogInBody {
    /// The password.
    pub password: SecretString,
    /// Lifetime wanted for the ticket, seconds (capped by the application's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// The user of a [`TicketAnswer`].
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TicketUser {
    /// The user's one identity.
    #[schema(value_type = Vec<Object>)]
    pub identities: Vec<Identity>,
}

/// The answer of sign-up and login: a user ticket for `POST /v1/instance`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TicketAnswer {
    /// The user ticket (PROTOCOL §2), signed with the application secret.
    pub authorization: SecretString,
    /// Who it is for.
    pub user: TicketUser,
}

/// What a client asks for when it creates or renews a session.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRequest {
    /// Client version information (ignored).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub version: serde_json::Value,
    /// Services wanted: an object of flags (`{"im": true}`), an object of lists of names (what the legacy SDK
    /// sends: `{"calling": ["online", "im"]}`), or a list of names.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub services: serde_json::Value,
    /// Session lifetime wanted, seconds (capped by the application's `sessionTtl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// For re-authorization: the session id (must match the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl InstanceRequest {
    /// The service names asked for: the strings of a `services` list; in an object, the strings of each list
    /// value (`sinch-rtc` 1.4.12 sends every service under one key, `{"calling": ["online", "im"]}`, whatever it
    /// was started with, so such a key names a group, not a service) and the other keys whose value is not
    /// `false` or `null`.
    pub fn service_names(&self) -> Vec<&str> {
        fn strings(items: &[serde_json::Value]) -> impl Iterator<Item = &str> {
            items.iter().filter_map(|v| v.as_str())
        }
        match &self.services {
            serde_json::Value::Object(map) => {
                let mut names = Vec::new();
                for (key, value) in map {
                    match value {
                        serde_json::Value::Array(items) => names.extend(strings(items)),
                        serde_json::Value::Bool(false) | serde_json::Value::Null => {}
                        _ => names.push(key.as_str()),
                    }
                }
                names
            }
            serde_json::Value::Array(items) => strings(items).collect(),
            _ => Vec::new(),
        }
    }
}

/// A session as handed to its client (`POST /v1/instance`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionGrant {
    /// Session id.
    pub id: String,
    /// Session secret (base64): shown only in this answer.
    pub secret: SecretString,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// Capabilities granted.
    #[schema(value_type = Vec<CapabilitySchema>)]
    pub capabilities: Vec<Capability>,
}

/// The answer of `PUT /v1/instances/id/{id}/authorization`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReauthorizeAnswer {
    /// Session id.
    pub id: String,
    /// The session's new secret (base64).
    pub secret: SecretString,
    /// Seconds until expiry.
    pub expires_in: u64,
}

/// `GET /v1/instances/id/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// Session id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Capabilities granted.
    #[schema(value_type = Vec<CapabilitySchema>)]
    pub capabilities: Vec<Capability>,
    /// Expiry, ISO-8601 UTC.
    pub expires_at: String,
}

/// `GET /v1/user/profile`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Profile {
    /// The session's user identity.
    #[schema(value_type = Vec<Object>)]
    pub identities: Vec<Identity>,
}

/// `GET /v1/timestamp`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Timestamp {
    /// Server time, ISO-8601 with milliseconds.
    pub timestamp: String,
}

/// One element of the body of `POST /v1/transport` (the legacy SDK's messaging): a user to exchange messages
/// with.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TransportIdentity {
    /// The user id.
    pub identity: String,
    /// The identity type the SDK may add (`username`, ...); not used.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `POST /v1/transport` and `GET /v1/transport?transportId=`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportAnswer {
    /// The transport's id (the same for the same application and participants, on every node).
    pub transport_id: String,
    /// Its AES-256 key, base64: the MXP frames of its messages are encrypted with it.
    pub key: String,
    /// Participants: the recipients for `POST`, everyone for `GET`.
    pub participants: Vec<TransportParticipant>,
}

/// A participant of a transport.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TransportParticipant {
    /// Who.
    pub destination: TransportIdentity,
    /// The user's transport channel (frames to the user are published there).
    pub channel: String,
    /// The user's instances as the SDK expects them: one, with `online` and `im`.
    pub instances: Vec<TransportInstance>,
}

/// An instance of a participant.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TransportInstance {
    /// Always `["online", "im"]`.
    pub capabilities: Vec<String>,
}

/// `POST /v1/calls/data`: the legacy SDK places an app-to-app call.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCallRequest {
    /// The SDK's id for the call (a UUID it makes).
    pub call_id: String,
    /// Whom to call.
    pub destination: LegacyCallDestination,
    /// The caller's sub-instance number.
    #[serde(default)]
    pub subinstance_id: u64,
    /// The SDP offer, `{type, sdp}`.
    pub sdp: serde_json::Value,
    /// `{"p2p": "yes", "ph": "<the app's custom headers, a JSON string>"}`.
    #[serde(default)]
    pub headers: std::collections::HashMap<String, serde_json::Value>,
    /// `data` for app-to-app calls (the SDK repeats the path's domain).
    #[serde(default)]
    pub domain: Option<String>,
    /// The caller id shown for PSTN calls (empty for app-to-app calls; not used).
    #[serde(default)]
    pub cli: Option<String>,
    /// `["audio"]` (not used: calls are audio).
    #[serde(default)]
    pub media_channels: Option<Vec<String>>,
}

/// The callee of a legacy call.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct LegacyCallDestination {
    /// `username` (app-to-app); `number` and `sip` are not served.
    #[serde(rename = "type")]
    pub kind: String,
    /// The callee's user id.
    pub endpoint: String,
}

/// The answer to `POST /v1/calls/data`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCallAnswer {
    /// Sinch's media relay URL; always `"\n"` (no relay: the SDKs connect peer to peer, or through TURN).
    pub body: String,
    /// The virtual channel the caller publishes to before a device of the callee acknowledged.
    pub signal_channel: String,
    /// The call's AES-256 key, base64: every frame of the call is encrypted with it.
    pub encryption_key: String,
    /// The callee's devices online on the node that answered.
    pub instances: Vec<LegacyCallInstance>,
}

/// A device of the callee.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCallInstance {
    /// Its instance (session) id.
    pub instance_id: String,
    /// `["voip", "p2p", "srtp"]`.
    pub capabilities: Vec<String>,
}

/// `PUT /v1/calls/data/id/{callId}`: a side's report at the end of a call (only `result` is read).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCallReport {
    /// The SDK's end cause number (`CallEndCause`: 1 timeout, 2 denied, 3 no answer, 4 failure, 5 hung up,
    /// 6 canceled, 7 answered on another device).
    #[serde(default)]
    pub result: Option<u64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::InstanceRequest;

    fn names(body: &str) -> Vec<String> {
        let request: InstanceRequest = serde_json::from_str(body).unwrap();
        request.service_names().into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn service_names_of_every_shape_clients_send() {
        // `sinch-rtc` 1.4.12, messaging with an active connection, exactly as it posts it (then with calling).
        let legacy = r#"{"version":{"os":"Chrome/120","platform":"Linux x86_64","sdk":"js/1.4.12"},
            "services":{"calling":["online","im"]},"expiresIn":31536000}"#;
        assert_eq!(names(legacy), ["online", "im"]);
        let calling = r#"{"services":{"calling":["online","im","voip","p2p","srtp"]}}"#;
        assert_eq!(names(calling), ["online", "im", "voip", "p2p", "srtp"]);
        assert_eq!(names(r#"{"services":{"calling":[]}}"#), Vec::<String>::new());
        // Flags, and a list of names.
        assert_eq!(names(r#"{"services":{"im":true,"voip":false,"video":null}}"#), ["im"]);
        assert_eq!(names(r#"{"services":["messaging",1]}"#), ["messaging"]);
        assert_eq!(names(r#"{}"#), Vec::<String>::new());
    }
}
