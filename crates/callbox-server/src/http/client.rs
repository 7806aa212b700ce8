//! The client API of PROTOCOL §6 (`/v1`).

use super::call::Call;
use super::error::ApiError;
use super::AppState;
use crate::domain::{Grant, SessionRecord, SessionRequest};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use callbox_core::{Authorization, Capability, Identity, IdentityType, Reason, TicketFormat};
use callbox_wire::client::{
    InstanceRequest, InstanceView, LogInBody, Profile, ReauthorizeAnswer, SessionGrant, SignUpBody, TicketAnswer,
    TicketUser, Timestamp,
};
use callbox_wire::SecretString;

/// `GET /v1/timestamp`: answered whatever the Authorization (clients call it first).
pub async fn timestamp(State(state): State<AppState>) -> Json<Timestamp> {
    Json(Timestamp { timestamp: callbox_core::time::format_js_iso(state.callbox.now()) })
}

fn application_key(call: &Call) -> Result<&str, ApiError> {
    match call.authorization()? {
        Authorization::Application { key } | Authorization::ApplicationSigned { key, .. } => Ok(key),
        Authorization::Basic { .. } => Err(ApiError::with_message(
            Reason::MalformedAuthorization,
            "sign-up and login take Application <key>, not the application secret",
        )),
        _ => Err(ApiError::with_message(Reason::MalformedAuthorization, "this call takes Application <key>")),
    }
}

fn identity(kind: &str, endpoint: &str) -> Result<Identity, ApiError> {
    let kind = IdentityType::parse(kind)
        .ok_or_else(|| ApiError::bad_request("identity type must be username, email or number"))?;
    if !callbox_core::is_valid_user_id(endpoint) {
        return Err(ApiError::bad_request("the user id must be 1-255 bytes without control characters"));
    }
    Ok(Identity { kind, endpoint: endpoint.to_owned() })
}

fn ticket_answer(status: StatusCode, ticket: String, identity: Identity) -> Response {
    let answer =
        TicketAnswer { authorization: SecretString::new(ticket), user: TicketUser { identities: vec![identity] } };
    (status, Json(answer)).into_response()
}

/// The wire's session request as the domain's: service names mapped to capabilities (PROTOCOL §6).
fn session_request(request: &InstanceRequest) -> SessionRequest {
    let mut capabilities: Vec<Capability> =
        request.service_names().into_iter().filter_map(Capability::from_service_name).collect();
    capabilities.sort();
    capabilities.dedup();
    SessionRequest { capabilities, expires_in: request.expires_in, instance_id: request.instance_id.clone() }
}

/// `POST /v1/users`: platform-managed sign-up.
pub async fn sign_up(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    let key = application_key(&call)?.to_owned();
    let body: SignUpBody = call.json()?;
    let [first] = body.identities.as_slice() else {
        return Err(ApiError::bad_request("identities must hold exactly one identity"));
    };
    let identity = identity(&first.kind, &first.endpoint)?;
    let ticket = state.callbox.sign_up(&key, identity.clone(), body.password.0, &call.meta).await?;
    Ok(ticket_answer(StatusCode::OK, ticket, identity))
}

/// `POST /v1/users/{type}/{endpoint}/authentication`: platform-managed login.
pub async fn log_in(
    State(state): State<AppState>,
    Path((kind, endpoint)): Path<(String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    let key = application_key(&call)?.to_owned();
    let identity = identity(&kind, &endpoint)?;
    let body: LogInBody = call.json()?;
    let ticket = state.callbox.log_in(&key, identity.clone(), body.password.0, body.expires_in, &call.meta).await?;
    Ok(ticket_answer(StatusCode::OK, ticket, identity))
}

fn grant_answer(grant: Grant) -> Response {
    let answer = SessionGrant {
        id: grant.id,
        secret: SecretString(grant.secret),
        expires_in: grant.expires_in,
        capabilities: grant.capabilities,
    };
    (StatusCode::OK, Json(answer)).into_response()
}

/// `POST /v1/instance`: a new session from `User`/`Bearer`, or a renewal from `Instance`.
pub async fn create_instance(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    let request = session_request(&call.json::<InstanceRequest>()?);
    match call.authorization()? {
        Authorization::User { ticket } => {
            Ok(grant_answer(state.callbox.exchange(ticket, TicketFormat::Legacy, &request, &call.meta).await?))
        }
        Authorization::Bearer { jwt } => {
            Ok(grant_answer(state.callbox.exchange(jwt, TicketFormat::Jwt, &request, &call.meta).await?))
        }
        Authorization::Instance { .. } => {
            let session = signed_session(&state, &call).await?;
            Ok(grant_answer(state.callbox.renew(session, &request).await?))
        }
        _ => Err(ApiError::with_message(
            Reason::MalformedAuthorization,
            "POST /v1/instance takes User <ticket>, Bearer <jwt> or Instance <id>:<signature>",
        )),
    }
}

/// `PUT /v1/instances/id/{id}/authorization`: re-authorizes a session with a fresh ticket.
pub async fn reauthorize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let request = session_request(&call.json::<InstanceRequest>()?);
    let (credential, format) = match call.authorization()? {
        Authorization::User { ticket } => (ticket, TicketFormat::Legacy),
        Authorization::Bearer { jwt } => (jwt, TicketFormat::Jwt),
        _ => {
            return Err(ApiError::with_message(
                Reason::MalformedAuthorization,
                "re-authorization takes User <ticket> or Bearer <jwt>",
            ))
        }
    };
    let grant = state.callbox.reauthorize(&id, credential, format, &request, &call.meta).await?;
    let answer = ReauthorizeAnswer { id: grant.id, secret: SecretString(grant.secret), expires_in: grant.expires_in };
    Ok((StatusCode::OK, Json(answer)).into_response())
}

/// Authenticates an `Instance`-signed call.
pub async fn signed_session(state: &AppState, call: &Call) -> Result<SessionRecord, ApiError> {
    match call.authorization()? {
        Authorization::Instance { instance_id, signature } => {
            Ok(state.callbox.authenticate_call(instance_id, signature, &call.signed_parts(), call.meta.ip).await?)
        }
        _ => Err(ApiError::with_message(Reason::MalformedAuthorization, "this call takes Instance <id>:<signature>")),
    }
}

/// A signed call naming a session in its path must be made by that session.
fn same_session(session: &SessionRecord, id: &str) -> Result<(), ApiError> {
    if session.id == id {
        Ok(())
    } else {
        Err(ApiError::with_message(Reason::NotFound, "no such instance"))
    }
}

/// `GET /v1/instances/id/{id}`.
pub async fn get_instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    same_session(&session, &id)?;
    Ok(Json(InstanceView {
        expires_at: callbox_core::time::format_iso_seconds(session.expires_at),
        id: session.id,
        user_id: session.user_id,
        capabilities: session.capabilities,
    })
    .into_response())
}

/// `DELETE /v1/instances/id/{id}`: ends the session.
pub async fn delete_instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    same_session(&session, &id)?;
    state.callbox.end_session(&session).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/user/profile`.
pub async fn profile(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    let identity = Identity { kind: session.identity_type, endpoint: session.user_id };
    Ok(Json(Profile { identities: vec![identity] }).into_response())
}

/// `GET /v1/configuration/user`: the legacy realtime configuration.
pub async fn configuration(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    // The legacy SDK opens its realtime connection to this host over HTTPS (`legacy.realtime_host`; by default the
    // host the client reached this call on).
    let host = state.callbox.config().legacy.realtime_host.as_deref().unwrap_or_else(|| call.header("host"));
    let profile = state.callbox.legacy_profile(&session);
    let network = serde_json::json!({
        "publishKey": profile.publish_key,
        "subscribeKey": profile.subscribe_key,
        "host": host,
    });
    let mut answer = serde_json::json!({
        "rtcConfiguration": { "broadcastNetwork": network.clone(), "signalNetwork": network },
        "rtcProfile": {
            "broadcastChannel": profile.channels.broadcast,
            "transportChannel": profile.channels.transport,
            "signalChannel": profile.channels.signal,
            "key": profile.key,
        }
    });
    // Sessions with `calling` get the RTCPeerConnection `iceServers` (docs/calls.md section 4).
    if let Some(ice) = state.callbox.ice_servers(&session) {
        let mut servers = Vec::new();
        if !ice.stun_urls.is_empty() {
            servers.push(serde_json::json!({ "urls": ice.stun_urls }));
        }
        if let Some((urls, credential)) = &ice.turn {
            servers.push(serde_json::json!({
                "urls": urls,
                "username": credential.username,
                "credential": credential.password,
            }));
        }
        answer["iceServers"] = serde_json::json!(servers);
        answer["iceServersExpireAt"] = serde_json::json!(callbox_core::time::format_js_iso(ice.expires_at));
    }
    Ok(Json(answer).into_response())
}
