//! The admin API (`/admin/v1`, `Authorization: Bearer <admin token>`); see docs/admin-api.md.

use super::call::Call;
use super::error::ApiError;
use super::AppState;
use crate::audit::AuthEvent;
use crate::domain::call_records::{talk_time, DEFAULT_CALL_LIST_LIMIT};
use crate::domain::{AppSettings, AppWithSecrets, CallRecord, SecretRecord, SessionRecord, UserRecord};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use callbox_core::time::{format_iso_seconds, format_js_iso};
use callbox_core::{Authorization, Identity, IdentityType, Reason};
use callbox_wire::admin::{
    AddUserBody, AppList, AppSettingsPatch, AppView, CallList, CallView, CreateAppBody, CreatedApp, DiagnoseBody,
    EventList, EventView, NewSecret, PasswordBody, RevokeBody, Revoked, SecretView, SessionList, SessionView, UserList,
    UserView,
};
use callbox_wire::SecretString;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A request to the admin API that passed the admin check: the Bearer admin token, or the dashboard's session
/// cookie (with its CSRF token on changes). Every admin handler takes one, so none can forget the check.
#[derive(Debug)]
pub struct AdminCall(pub Call);

impl FromRequest<AppState> for AdminCall {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let call = Call::from_request(request, state).await?;
        require_admin(state, &call).await?;
        Ok(AdminCall(call))
    }
}

async fn require_admin(state: &AppState, call: &Call) -> Result<(), ApiError> {
    // The dashboard's session cookie (with its CSRF token on changes) stands in for the Bearer token.
    if let Some(verdict) = super::dashboard::authorize(state, call).await {
        return verdict;
    }
    let denied = || ApiError::new(Reason::InvalidAdminToken);
    let Ok(Authorization::Bearer { jwt: token }) = call.authorization() else { return Err(denied()) };
    if state.callbox.check_admin_token(token).await? {
        Ok(())
    } else {
        Err(denied())
    }
}

fn iso(at: DateTime<Utc>) -> String {
    format_iso_seconds(at)
}

fn secret_view(record: &SecretRecord) -> SecretView {
    SecretView {
        id: record.id.clone(),
        fingerprint: record.fingerprint.clone(),
        created_at: iso(record.created_at),
        last_used_at: record.last_used_at.map(iso),
    }
}

fn app_view(AppWithSecrets { app, secrets }: AppWithSecrets) -> AppView {
    AppView {
        application_key: app.key,
        name: app.name,
        created_at: iso(app.created_at),
        platform_user_auth: app.platform_user_auth,
        allowed_origins: app.allowed_origins,
        capabilities: app.capabilities,
        default_ticket_ttl: app.default_ticket_ttl,
        max_ticket_ttl: app.max_ticket_ttl,
        session_ttl: app.session_ttl,
        clock_skew: app.clock_skew,
        secrets: secrets.iter().map(secret_view).collect(),
    }
}

fn user_view(user: &UserRecord) -> UserView {
    UserView {
        user_id: user.user_id.clone(),
        identity_type: user.identity_type.clone(),
        disabled: user.disabled,
        created_at: iso(user.created_at),
    }
}

fn session_view(session: &SessionRecord) -> SessionView {
    SessionView {
        id: session.id.clone(),
        user_id: session.user_id.clone(),
        capabilities: session.capabilities.clone(),
        created_at: iso(session.created_at),
        expires_at: iso(session.expires_at),
        revoked_at: session.revoked_at.map(iso),
    }
}

fn call_view(call: &CallRecord) -> CallView {
    CallView {
        call_id: call.id.clone(),
        caller_id: call.caller_id.clone(),
        callee_id: call.callee_id.clone(),
        // Milliseconds, as the call frames give them: a call's setup and talk time are often under a second.
        started_at: format_js_iso(call.started_at),
        answered_at: call.answered_at.map(format_js_iso),
        ended_at: call.ended_at.map(format_js_iso),
        end_cause: call.end_cause.clone(),
        ended_by: call.ended_by.clone(),
        duration_ms: talk_time(call).and_then(|talk| u64::try_from(talk.num_milliseconds()).ok()),
        legacy_call_id: call.legacy_call_id.clone(),
    }
}

fn event_view(event: AuthEvent) -> EventView {
    EventView {
        at: event.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        kind: event.kind.wire_name().to_owned(),
        outcome: event.outcome.to_owned(),
        reason: event.reason.map(str::to_owned),
        user_id: event.user_id,
        client_ip: event.client_ip.map(|ip| ip.to_string()),
        detail: event.detail,
        credential: event.credential,
    }
}

/// The wire's settings patch as the domain's settings change.
pub fn settings(patch: AppSettingsPatch) -> AppSettings {
    AppSettings {
        name: patch.name,
        platform_user_auth: patch.platform_user_auth,
        allowed_origins: patch.allowed_origins,
        capabilities: patch.capabilities,
        default_ticket_ttl: patch.default_ticket_ttl,
        max_ticket_ttl: patch.max_ticket_ttl,
        session_ttl: patch.session_ttl,
        clock_skew: patch.clock_skew,
    }
}

/// `POST /admin/v1/apps`.
pub async fn create_app(State(state): State<AppState>, AdminCall(call): AdminCall) -> Result<Response, ApiError> {
    let body: CreateAppBody = call.json()?;
    let created = state.callbox.create_app(body.name, settings(body.settings)).await?;
    let application = app_view(state.callbox.app_with_secrets(&created.app.key).await?);
    let answer =
        CreatedApp { application, application_secret: SecretString(created.secret), secret_id: created.secret_id };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /admin/v1/apps`.
pub async fn list_apps(State(state): State<AppState>, _: AdminCall) -> Result<Response, ApiError> {
    let applications = state.callbox.list_apps().await?.into_iter().map(app_view).collect();
    Ok(Json(AppList { applications }).into_response())
}

/// `GET /admin/v1/apps/{key}`.
pub async fn get_app(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    Ok(Json(app_view(state.callbox.app_with_secrets(&key).await?)).into_response())
}

/// `PATCH /admin/v1/apps/{key}`.
pub async fn update_app(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let patch: AppSettingsPatch = call.json()?;
    state.callbox.update_app(&key, settings(patch)).await?;
    Ok(Json(app_view(state.callbox.app_with_secrets(&key).await?)).into_response())
}

/// `DELETE /admin/v1/apps/{key}`.
pub async fn delete_app(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.delete_app(&key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/v1/apps/{key}/secrets`.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let added = state.callbox.rotate_secret(&key).await?;
    let answer = NewSecret {
        secret_id: added.record.id,
        application_secret: SecretString(added.secret),
        created_at: iso(added.record.created_at),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `DELETE /admin/v1/apps/{key}/secrets/{id}`.
pub async fn retire_secret(
    State(state): State<AppState>,
    Path((key, id)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.retire_secret(&key, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query parameters of the list calls.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    reason: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/v1/apps/{key}/users`.
pub async fn list_users(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<ListQuery>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let users = state.callbox.list_users(&key, query.search.as_deref(), limit).await?;
    Ok(Json(UserList { users: users.iter().map(user_view).collect() }).into_response())
}

/// `POST /admin/v1/apps/{key}/users`.
pub async fn add_user(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let body: AddUserBody = call.json()?;
    let kind = match body.identity_type.as_deref() {
        None => IdentityType::Username,
        Some(word) => IdentityType::parse(word)
            .ok_or_else(|| ApiError::bad_request("identityType must be username, email or number"))?,
    };
    if !callbox_core::is_valid_user_id(&body.user_id) {
        return Err(ApiError::bad_request("userId must be 1-255 bytes without control characters"));
    }
    let user = state.callbox.add_user(&key, Identity { kind, endpoint: body.user_id }, body.password.0).await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

/// `PUT /admin/v1/apps/{key}/users/{userId}/password`.
pub async fn set_password(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let body: PasswordBody = call.json()?;
    state.callbox.set_password(&key, &user, body.password.0).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/v1/apps/{key}/users/{userId}/disable`.
pub async fn disable_user(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let user = state.callbox.set_user_disabled(&key, &user, true).await?;
    Ok(Json(user_view(&user)).into_response())
}

/// `POST /admin/v1/apps/{key}/users/{userId}/enable`.
pub async fn enable_user(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let user = state.callbox.set_user_disabled(&key, &user, false).await?;
    Ok(Json(user_view(&user)).into_response())
}

/// `DELETE /admin/v1/apps/{key}/users/{userId}`.
pub async fn remove_user(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.remove_user(&key, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/v1/apps/{key}/sessions`.
pub async fn list_sessions(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<ListQuery>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let sessions = state.callbox.list_live_sessions(&key, query.user_id.as_deref(), limit).await?;
    Ok(Json(SessionList { sessions: sessions.iter().map(session_view).collect() }).into_response())
}

/// `DELETE /admin/v1/apps/{key}/sessions/{id}`.
pub async fn revoke_session(
    State(state): State<AppState>,
    Path((key, id)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.revoke_session(&key, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/v1/apps/{key}/sessions/revoke`.
pub async fn revoke_sessions(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let body: RevokeBody = call.json()?;
    let revoked = match (body.user_id, body.issued_before) {
        (Some(user), None) => state.callbox.revoke_user_sessions(&key, &user).await?,
        (None, Some(before)) => {
            let before = callbox_core::time::parse_timestamp(&before)
                .ok_or_else(|| ApiError::bad_request("issuedBefore must be an ISO-8601 time"))?;
            state.callbox.revoke_sessions_before(&key, before).await?
        }
        _ => return Err(ApiError::bad_request("give exactly one of userId and issuedBefore")),
    };
    Ok(Json(Revoked { revoked }).into_response())
}

/// `GET /admin/v1/apps/{key}/events`.
pub async fn list_events(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<ListQuery>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500) as usize;
    let events = state.callbox.list_events(&key, query.user_id.as_deref(), query.reason.as_deref(), limit).await?;
    Ok(Json(EventList { events: events.into_iter().map(event_view).collect() }).into_response())
}

/// Query parameters of `GET /admin/v1/apps/{key}/calls` (docs/calls.md section 5). Unknown ones are refused
/// rather than ignored: `userId=` (the other listings' spelling) silently listing everyone's calls would mislead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsQuery {
    /// Only the calls this user placed or received.
    user: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
}

/// `GET /admin/v1/apps/{key}/calls`.
pub async fn list_calls(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: Result<Query<CallsQuery>, QueryRejection>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    // Taken as a `Result` so that the admin check (the last extractor) answers first: a caller without the token
    // learns nothing about the parameters.
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!("{} (the parameters are user and limit)", rejection.body_text()))
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_CALL_LIST_LIMIT);
    let calls = state.callbox.list_calls(&key, query.user.as_deref(), limit).await?;
    Ok(Json(CallList { calls: calls.iter().map(call_view).collect() }).into_response())
}

/// `POST /admin/v1/apps/{key}/diagnose`.
pub async fn diagnose(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let body: DiagnoseBody = call.json()?;
    // SecretError's sentences never quote the input.
    let secret = body
        .secret
        .as_ref()
        .map(|text| {
            callbox_core::Secret::from_base64(text.expose())
                .map_err(|error| ApiError::bad_request(format!("secret: {error}")))
        })
        .transpose()?;
    Ok(Json(state.callbox.diagnose(&key, body.ticket.expose(), secret).await?).into_response())
}
