//! Bodies of the admin API (`/admin/v1`, docs/admin-api.md).

use crate::{CapabilitySchema, SecretString};
use callbox_core::Capability;
use serde::{Deserialize, Serialize};

/// Application settings that can be changed, each optional (`PATCH /admin/v1/apps/{key}`, and with a name the
/// body of `POST /admin/v1/apps`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSettingsPatch {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Platform-managed users on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_user_auth: Option<bool>,
    /// CORS origins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    /// Capabilities sessions may get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<CapabilitySchema>>)]
    pub capabilities: Option<Vec<Capability>>,
    /// Lifetime of tickets without `expiresIn`, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ticket_ttl: Option<u64>,
    /// Maximum ticket lifetime, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ticket_ttl: Option<u64>,
    /// Session lifetime, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ttl: Option<u64>,
    /// Allowed clock skew, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<u64>,
}

/// `POST /admin/v1/apps`: a name and any settings.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAppBody {
    /// Display name.
    pub name: String,
    /// Settings other than the name.
    #[serde(flatten)]
    pub settings: AppSettingsPatch,
}

/// A secret as the admin API shows it: never its value.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    /// Secret id.
    pub id: String,
    /// A short hash of the secret, to tell secrets apart.
    pub fingerprint: String,
    /// ISO-8601 UTC.
    pub created_at: String,
    /// When it last verified a ticket (recorded at most once a minute).
    pub last_used_at: Option<String>,
}

/// An application as the admin API shows it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// The public application key.
    pub application_key: String,
    /// Display name.
    pub name: String,
    /// ISO-8601 UTC.
    pub created_at: String,
    /// Whether Callbox stores usernames and passwords for this app.
    pub platform_user_auth: bool,
    /// CORS origins.
    pub allowed_origins: Vec<String>,
    /// Capabilities sessions may get.
    #[schema(value_type = Vec<CapabilitySchema>)]
    pub capabilities: Vec<Capability>,
    /// Seconds.
    pub default_ticket_ttl: u64,
    /// Seconds.
    pub max_ticket_ttl: u64,
    /// Seconds.
    pub session_ttl: u64,
    /// Seconds.
    pub clock_skew: u64,
    /// Active secrets, newest first.
    pub secrets: Vec<SecretView>,
}

/// The answer of `POST /admin/v1/apps`: the secret is shown once.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApp {
    /// The application.
    pub application: AppView,
    /// Its first secret (base64).
    pub application_secret: SecretString,
    /// The secret's id.
    pub secret_id: String,
}

/// `GET /admin/v1/apps`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct AppList {
    /// Every application.
    pub applications: Vec<AppView>,
}

/// The answer of `POST /admin/v1/apps/{key}/secrets`: the new secret, shown once.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSecret {
    /// The secret's id.
    pub secret_id: String,
    /// The secret (base64).
    pub application_secret: SecretString,
    /// ISO-8601 UTC.
    pub created_at: String,
}

/// A platform-managed user.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// User id.
    pub user_id: String,
    /// `username`, `email` or `number`.
    pub identity_type: String,
    /// Disabled users cannot log in and their sessions are revoked.
    pub disabled: bool,
    /// ISO-8601 UTC.
    pub created_at: String,
}

/// `GET /admin/v1/apps/{key}/users`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct UserList {
    /// Matching users.
    pub users: Vec<UserView>,
}

/// `POST /admin/v1/apps/{key}/users`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddUserBody {
    /// User id.
    pub user_id: String,
    /// Password.
    pub password: SecretString,
    /// `username` (default), `email` or `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
}

/// `PUT /admin/v1/apps/{key}/users/{user}/password`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct PasswordBody {
    /// The new password.
    pub password: SecretString,
}

/// A session as the admin API shows it (never its secret).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Capabilities granted.
    #[schema(value_type = Vec<CapabilitySchema>)]
    pub capabilities: Vec<Capability>,
    /// ISO-8601 UTC.
    pub created_at: String,
    /// ISO-8601 UTC.
    pub expires_at: String,
    /// ISO-8601 UTC, when revoked.
    pub revoked_at: Option<String>,
}

/// `GET /admin/v1/apps/{key}/sessions`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Live sessions.
    pub sessions: Vec<SessionView>,
}

/// `POST /admin/v1/apps/{key}/sessions/revoke`: exactly one of the two.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeBody {
    /// Revoke this user's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Revoke every session created before this ISO-8601 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<String>,
}

/// The answer of a bulk revocation.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// How many sessions were revoked.
    pub revoked: u64,
}

/// One authentication event (`GET /admin/v1/apps/{key}/events`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// `exchange`, `reauthorize`, `signup`, `login` or `signed_call`.
    pub kind: String,
    /// `accepted` or `refused`.
    pub outcome: String,
    /// The §7 reason when refused.
    pub reason: Option<String>,
    /// The user, when known.
    pub user_id: Option<String>,
    /// Client address.
    pub client_ip: Option<String>,
    /// The refusal's explanation, or what was granted (never a credential).
    pub detail: Option<String>,
    /// Fingerprint of the credential presented.
    pub credential: Option<String>,
}

/// `GET /admin/v1/apps/{key}/events`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<EventView>,
}

/// `POST /admin/v1/apps/{key}/diagnose`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct DiagnoseBody {
    /// The ticket or JWT to check.
    pub ticket: SecretString,
    /// A secret (base64) to check the signature against instead of the application's stored ones ("is this the
    /// secret my backend uses?"). Never logged nor echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretString>,
}

/// One check of a diagnosis.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// `format`, `application`, `signature` or `time_window`.
    pub name: String,
    /// Whether it passed; `null` when it could not be run.
    pub passed: Option<bool>,
    /// What was checked, in plain words.
    pub detail: String,
}

/// The ticket debugger's answer.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct DiagnosisView {
    /// `legacy` or `jwt`, when it could be told.
    pub format: Option<String>,
    /// Decoded claims (unverified).
    #[schema(value_type = Option<Object>)]
    pub claims: Option<serde_json::Value>,
    /// Each check in order.
    pub checks: Vec<CheckView>,
    /// Whether the server would accept it.
    pub valid: bool,
    /// The §7 reason when it would not.
    pub reason: Option<String>,
    /// The explanation that goes with the reason.
    pub message: Option<String>,
}

/// `GET /admin/v1/apps/{key}/realtime`: an application's realtime activity.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeActivity {
    /// Live connections on the node that answered.
    pub live_connections: u64,
    /// Message copies (one per recipient) stored in the last hour, on every node.
    pub messages_last_hour: u64,
    /// Of those, the ones their recipient confirmed.
    pub delivered_last_hour: u64,
}

/// One call record (`GET /admin/v1/apps/{key}/calls`, docs/calls.md section 5). Times are ISO-8601 UTC with
/// milliseconds, as in the call frames.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    /// The call's id (UUIDv7), as in the `call.*` frames.
    pub call_id: String,
    /// Who called.
    pub caller_id: String,
    /// Who was called.
    pub callee_id: String,
    /// When the call was placed.
    pub started_at: String,
    /// When a callee device answered; null if none did.
    pub answered_at: Option<String>,
    /// When the call ended; null while it goes on (or when the node that held it died).
    pub ended_at: Option<String>,
    /// The end cause (`hung_up`, `no_answer`, `canceled`, ...); null while it goes on.
    pub end_cause: Option<String>,
    /// Which side ended it: `caller`, `callee` or `server`; null while it goes on.
    pub ended_by: Option<String>,
    /// Milliseconds from the answer to the end; null unless the call was both answered and ended.
    pub duration_ms: Option<u64>,
    /// For a call placed by the legacy SDK: the SDK's own id of it (`call.callId`), which its frames and call
    /// reports carry; absent for calls of Callbox's own SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_call_id: Option<String>,
}

/// `GET /admin/v1/apps/{key}/calls`: the newest calls first.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CallList {
    /// The calls, newest first.
    pub calls: Vec<CallView>,
}
