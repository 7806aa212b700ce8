//! The admin API (`/admin/v1`, `Authorization: Bearer <admin token>`); see docs/admin-api.md.

use super::call::Call;
use super::AppState;
use crate::error::ApiError;
use crate::service::AppSettingsPatch;
use crate::store::{AppRecord, Capability, SecretRecord, SessionRecord, UserRecord};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use callbox_core::time::format_iso_seconds;
use callbox_core::{Authorization, Identity, IdentityType, Reason};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

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
    if let Some(verdict) = crate::dashboard::authorize(state, call).await {
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

/// An application as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    application_key: String,
    name: String,
    created_at: String,
    platform_user_auth: bool,
    allowed_origins: Vec<String>,
    capabilities: Vec<Capability>,
    default_ticket_ttl: u64,
    max_ticket_ttl: u64,
    session_ttl: u64,
    clock_skew: u64,
    secrets: Vec<SecretView>,
}

/// A secret as the admin API shows it: never its value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    id: String,
    fingerprint: String,
    created_at: String,
    last_used_at: Option<String>,
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

async fn app_view(state: &AppState, app: AppRecord) -> Result<AppView, ApiError> {
    let secrets = state.callbox.store.list_secrets(&app.key, false).await?;
    Ok(AppView {
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
    })
}

fn user_view(user: &UserRecord) -> serde_json::Value {
    json!({
        "userId": user.user_id,
        "identityType": user.identity_type,
        "disabled": user.disabled,
        "createdAt": iso(user.created_at),
    })
}

fn session_view(session: &SessionRecord) -> serde_json::Value {
    json!({
        "id": session.id,
        "userId": session.user_id,
        "capabilities": session.capabilities,
        "createdAt": iso(session.created_at),
        "expiresAt": iso(session.expires_at),
        "revokedAt": session.revoked_at.map(iso),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAppBody {
    name: String,
    #[serde(flatten)]
    settings: AppSettingsPatch,
}

/// `POST /admin/v1/apps`.
pub async fn create_app(State(state): State<AppState>, AdminCall(call): AdminCall) -> Result<Response, ApiError> {
    let body: CreateAppBody = call.json()?;
    let created = state.callbox.create_app(body.name, body.settings).await?;
    let view = app_view(&state, created.app).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "application": view, "applicationSecret": created.secret.as_str(), "secretId": created.secret_id }),
        ),
    )
        .into_response())
}

/// `GET /admin/v1/apps`.
pub async fn list_apps(State(state): State<AppState>, _: AdminCall) -> Result<Response, ApiError> {
    let mut views = Vec::new();
    for app in state.callbox.store.list_apps().await? {
        views.push(app_view(&state, app).await?);
    }
    Ok(Json(json!({ "applications": views })).into_response())
}

/// `GET /admin/v1/apps/{key}`.
pub async fn get_app(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let app = state.callbox.store.get_app(&key).await?;
    Ok(Json(app_view(&state, app).await?).into_response())
}

/// `PATCH /admin/v1/apps/{key}`.
pub async fn update_app(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let patch: AppSettingsPatch = call.json()?;
    let app = state.callbox.update_app(&key, patch).await?;
    Ok(Json(app_view(&state, app).await?).into_response())
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
    let (record, secret) = state.callbox.rotate_secret(&key).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "secretId": record.id, "applicationSecret": secret.as_str(), "createdAt": iso(record.created_at) }),
        ),
    )
        .into_response())
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
    state.callbox.store.get_app(&key).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let users = state.callbox.store.list_users(&key, query.search.as_deref(), limit).await?;
    Ok(Json(json!({ "users": users.iter().map(user_view).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddUserBody {
    user_id: String,
    password: Zeroizing<String>,
    #[serde(default)]
    identity_type: Option<String>,
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
    let user = state.callbox.add_user(&key, Identity { kind, endpoint: body.user_id }, body.password).await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

#[derive(Deserialize)]
struct PasswordBody {
    password: Zeroizing<String>,
}

/// `PUT /admin/v1/apps/{key}/users/{userId}/password`.
pub async fn set_password(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    AdminCall(call): AdminCall,
) -> Result<Response, ApiError> {
    let body: PasswordBody = call.json()?;
    state.callbox.set_password(&key, &user, body.password).await?;
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
    state.callbox.store.get_app(&key).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let sessions = state.callbox.store.list_live_sessions(&key, query.user_id.as_deref(), Utc::now(), limit).await?;
    Ok(Json(json!({ "sessions": sessions.iter().map(session_view).collect::<Vec<_>>() })).into_response())
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    user_id: Option<String>,
    issued_before: Option<String>,
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
    Ok(Json(json!({ "revoked": revoked })).into_response())
}

/// `GET /admin/v1/apps/{key}/events`.
pub async fn list_events(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<ListQuery>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.store.get_app(&key).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500) as usize;
    let events = state.callbox.audit.list(&key, query.user_id.as_deref(), query.reason.as_deref(), limit);
    Ok(Json(json!({ "events": events })).into_response())
}

#[derive(Deserialize)]
struct DiagnoseBody {
    ticket: String,
    /// A secret to check the signature against instead of the application's stored ones (the dashboard's
    /// optional field: "is this the secret my backend uses?"). Never logged nor echoed.
    #[serde(default)]
    secret: Option<Zeroizing<String>>,
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
        .as_deref()
        .map(|text| {
            callbox_core::Secret::from_base64(text).map_err(|error| ApiError::bad_request(format!("secret: {error}")))
        })
        .transpose()?;
    Ok(Json(state.callbox.diagnose(&key, &body.ticket, secret).await?).into_response())
}
