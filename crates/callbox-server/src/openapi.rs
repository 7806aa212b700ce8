//! The OpenAPI description of the client and admin APIs, served at `/openapi.json` and checked in as
//! `docs/openapi.json` (a test fails when the two differ).
//!
//! The functions below carry only the path annotations; the handlers live in [`crate::http`].
#![allow(dead_code)]

use axum::Json;
use callbox_wire::admin::{AppSettingsPatch, CallList};
use callbox_wire::client::{
    InstanceRequest, LegacyCallAnswer, LegacyCallReport, LegacyCallRequest, SessionGrant, TransportAnswer,
    TransportIdentity,
};
use callbox_wire::{CapabilitySchema, ErrorBody};
use utoipa::OpenApi;

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Callbox",
        description = "Client API (PROTOCOL §6, compatible with the legacy Sinch JS SDK) and admin API."
    ),
    paths(
        timestamp,
        sign_up,
        log_in,
        create_instance,
        reauthorize,
        get_instance,
        delete_instance,
        profile,
        configuration,
        open_transport,
        get_transport,
        report_im,
        legacy_place_call,
        legacy_report_call,
        legacy_time,
        legacy_subscribe,
        legacy_publish,
        legacy_leave,
        admin_create_app,
        admin_list_apps,
        admin_get_app,
        admin_update_app,
        admin_delete_app,
        admin_rotate_secret,
        admin_retire_secret,
        admin_list_users,
        admin_add_user,
        admin_set_password,
        admin_disable_user,
        admin_enable_user,
        admin_remove_user,
        admin_list_sessions,
        admin_revoke_session,
        admin_revoke_sessions,
        admin_events,
        admin_list_calls,
        admin_diagnose,
        admin_realtime,
        admin_list_connections,
        admin_drop_connections,
        realtime,
        healthz,
        readyz,
        metrics
    ),
    components(schemas(
        ErrorBody,
        InstanceRequest,
        SessionGrant,
        AppSettingsPatch,
        CapabilitySchema,
        TransportIdentity,
        TransportAnswer,
        LegacyCallRequest,
        LegacyCallAnswer,
        LegacyCallReport
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

macro_rules! doc_path {
    ($name:ident, $method:ident, $path:literal, $summary:literal, $tag:literal) => {
        #[utoipa::path($method, path = $path, summary = $summary, tag = $tag,
            responses((status = 200, description = "Success"), (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
        fn $name() {}
    };
}

#[utoipa::path(get, path = "/v1/timestamp", tag = "client", summary = "Server time; answered whatever the Authorization",
    responses((status = 200, description = "`{\"timestamp\": ISO-8601}`")))]
fn timestamp() {}

doc_path!(sign_up, post, "/v1/users", "Platform-managed sign-up (Authorization: Application <key>)", "client");
doc_path!(
    log_in,
    post,
    "/v1/users/{type}/{endpoint}/authentication",
    "Platform-managed login (Application <key>)",
    "client"
);

#[utoipa::path(post, path = "/v1/instance", tag = "client",
    summary = "Exchange a ticket (User) or JWT (Bearer) for a session; renew with Instance",
    request_body = InstanceRequest,
    responses((status = 200, description = "The session", body = SessionGrant), (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
fn create_instance() {}

doc_path!(
    reauthorize,
    put,
    "/v1/instances/id/{id}/authorization",
    "Re-authorize a session with a fresh ticket; unknown id → 404 40400",
    "client"
);
doc_path!(get_instance, get, "/v1/instances/id/{id}", "The calling session (Instance-signed)", "client");
doc_path!(delete_instance, delete, "/v1/instances/id/{id}", "End the calling session (Instance-signed)", "client");
doc_path!(profile, get, "/v1/user/profile", "The session's user identities (Instance-signed)", "client");
doc_path!(configuration, get, "/v1/configuration/user", "Legacy realtime configuration (Instance-signed)", "client");
#[utoipa::path(post, path = "/v1/transport", tag = "legacy",
    summary = "The legacy SDK's transport to these users (Instance-signed); answers the recipients (docs/legacy-sdk.md)",
    request_body = Vec<TransportIdentity>,
    responses((status = 200, description = "The transport", body = TransportAnswer), (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
fn open_transport() {}

#[utoipa::path(get, path = "/v1/transport", tag = "legacy",
    summary = "A transport the caller takes part in, every participant (Instance-signed over the path without the query)",
    params(("transportId" = String, Query, description = "The transport's id")),
    responses((status = 200, description = "The transport", body = TransportAnswer), (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
fn get_transport() {}

#[utoipa::path(post, path = "/v1/calls/{domain}", tag = "legacy",
    summary = "The legacy SDK places an app-to-app call (Instance-signed, needs calling; only domain data): the server sends the INVITE (docs/legacy-sdk.md section 6)",
    params(("domain" = String, Path, description = "`data` (app-to-app); pstn, sip and conference are refused")),
    request_body = LegacyCallRequest,
    responses((status = 200, description = "The call's key and virtual channel", body = LegacyCallAnswer), (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
fn legacy_place_call() {}

#[utoipa::path(put, path = "/v1/calls/{domain}/id/{callId}", tag = "legacy",
    summary = "A side's report at the end of a legacy call (Instance-signed); ends the record if no frame did; answered {}",
    params(("domain" = String, Path, description = "`data`"), ("callId" = String, Path, description = "The SDK's id of the call")),
    request_body = LegacyCallReport,
    responses((status = 200, description = "{}"), (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
fn legacy_report_call() {}

doc_path!(
    report_im,
    post,
    "/v1/report/im",
    "The legacy SDK's message counters (Instance-signed); answered {}",
    "legacy"
);
doc_path!(legacy_time, get, "/time/0", "PubNub time token: [\"<17 digits>\"]", "legacy");
doc_path!(
    legacy_subscribe,
    get,
    "/subscribe/{subscribe_key}/{channels}/{callback}/{timetoken}",
    "The legacy long-poll: [[frames...], \"<next timetoken>\", \"<channel of each>\"] (docs/legacy-sdk.md)",
    "legacy"
);
doc_path!(
    legacy_publish,
    get,
    "/publish/{publish_key}/{subscribe_key}/{signature}/{channel}/{callback}/{message}",
    "One MXP frame as a URL-encoded JSON string: [1, \"Sent\", \"<time token>\"]",
    "legacy"
);
doc_path!(
    legacy_leave,
    get,
    "/v2/presence/sub_key/{subscribe_key}/channel/{channels}/leave",
    "Presence leave (also POST, the SDK's unload beacon)",
    "legacy"
);
doc_path!(admin_create_app, post, "/admin/v1/apps", "Create an application; its secret is shown once", "admin");
doc_path!(admin_list_apps, get, "/admin/v1/apps", "List applications", "admin");
doc_path!(admin_get_app, get, "/admin/v1/apps/{key}", "One application", "admin");
doc_path!(
    admin_update_app,
    patch,
    "/admin/v1/apps/{key}",
    "Change settings (takes effect on the next request)",
    "admin"
);
doc_path!(admin_delete_app, delete, "/admin/v1/apps/{key}", "Delete an application and everything in it", "admin");
doc_path!(admin_rotate_secret, post, "/admin/v1/apps/{key}/secrets", "Add a secret (rotation)", "admin");
doc_path!(admin_retire_secret, delete, "/admin/v1/apps/{key}/secrets/{id}", "Retire a secret", "admin");
doc_path!(admin_list_users, get, "/admin/v1/apps/{key}/users", "Search platform-managed users", "admin");
doc_path!(admin_add_user, post, "/admin/v1/apps/{key}/users", "Add a platform-managed user", "admin");
doc_path!(admin_set_password, put, "/admin/v1/apps/{key}/users/{user}/password", "Set a user's password", "admin");
doc_path!(
    admin_disable_user,
    post,
    "/admin/v1/apps/{key}/users/{user}/disable",
    "Disable a user and revoke their sessions",
    "admin"
);
doc_path!(admin_enable_user, post, "/admin/v1/apps/{key}/users/{user}/enable", "Enable a user", "admin");
doc_path!(
    admin_remove_user,
    delete,
    "/admin/v1/apps/{key}/users/{user}",
    "Remove a user and revoke their sessions",
    "admin"
);
doc_path!(
    admin_list_sessions,
    get,
    "/admin/v1/apps/{key}/sessions",
    "Live sessions of an application or user",
    "admin"
);
doc_path!(admin_revoke_session, delete, "/admin/v1/apps/{key}/sessions/{id}", "Revoke one session", "admin");
doc_path!(
    admin_revoke_sessions,
    post,
    "/admin/v1/apps/{key}/sessions/revoke",
    "Revoke a user's sessions, or all issued before a time",
    "admin"
);
doc_path!(admin_events, get, "/admin/v1/apps/{key}/events", "Latest accepted and refused authentications", "admin");
#[utoipa::path(get, path = "/admin/v1/apps/{key}/calls", tag = "admin",
    summary = "Recent calls of an application, newest first (docs/calls.md section 5)",
    params(
        ("key" = String, Path, description = "Application key"),
        ("user" = Option<String>, Query, description = "Only the calls this user placed or received"),
        ("limit" = Option<u32>, Query, description = "At most this many calls (default 50, at most 500)"),
    ),
    responses((status = 200, description = "The calls", body = CallList),
        (status = "4XX", description = "PROTOCOL §7 error", body = ErrorBody)))]
fn admin_list_calls() {}

doc_path!(
    admin_realtime,
    get,
    "/admin/v1/apps/{key}/realtime",
    "Live connections (this node) and messages of the last hour",
    "admin"
);
doc_path!(
    admin_list_connections,
    get,
    "/admin/v1/apps/{key}/users/{user}/connections",
    "A user's live realtime connections on this node",
    "admin"
);
doc_path!(
    admin_drop_connections,
    delete,
    "/admin/v1/apps/{key}/users/{user}/connections",
    "Close a user's realtime connections on every node",
    "admin"
);
doc_path!(realtime, get, "/v1/realtime", "The realtime WebSocket (signed first frame; docs/realtime.md)", "client");
doc_path!(admin_diagnose, post, "/admin/v1/apps/{key}/diagnose", "Ticket debugger against the app's secrets", "admin");
doc_path!(healthz, get, "/healthz", "Liveness", "operations");
doc_path!(readyz, get, "/readyz", "Readiness (database reachable)", "operations");
doc_path!(metrics, get, "/metrics", "Prometheus metrics", "operations");
