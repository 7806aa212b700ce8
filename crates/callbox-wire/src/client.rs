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
    /// Services wanted: an object of flags (`{"im": true}`) or a list of names.
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
    /// The service names asked for: the keys of `services` whose value is not `false` or `null`, or the strings
    /// of a `services` list.
    pub fn service_names(&self) -> Vec<&str> {
        match &self.services {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(_, v)| !matches!(v, serde_json::Value::Bool(false) | serde_json::Value::Null))
                .map(|(k, _)| k.as_str())
                .collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
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
