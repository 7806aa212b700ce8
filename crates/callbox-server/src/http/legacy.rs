//! The legacy SDK's calls of the client API (docs/legacy-sdk.md): transports and the IM report for messaging,
//! placing and reporting app-to-app calls. The PubNub-style transport itself is `realtime::legacy`.

use super::call::Call;
use super::client::signed_session;
use super::error::ApiError;
use super::AppState;
use crate::domain::legacy::Transport;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use callbox_core::Reason;
use callbox_wire::client::{
    LegacyCallAnswer, LegacyCallInstance, LegacyCallReport, LegacyCallRequest, TransportAnswer, TransportIdentity,
    TransportInstance, TransportParticipant,
};
use std::collections::HashMap;

fn render(transport: &Transport, leave_out: Option<&str>) -> Response {
    let participants = transport
        .participants
        .iter()
        .filter(|(user, _)| Some(user.as_str()) != leave_out)
        .map(|(identity, channel)| TransportParticipant {
            destination: TransportIdentity { identity: identity.clone(), kind: None },
            channel: channel.clone(),
            instances: vec![TransportInstance { capabilities: vec!["online".into(), "im".into()] }],
        })
        .collect();
    Json(TransportAnswer { transport_id: transport.id.clone(), key: transport.key.clone(), participants })
        .into_response()
}

/// `POST /v1/transport`, body `[{"identity":"bob"}, ...]`: the transport to these users, answered with the
/// recipients only (an unknown user of an app with platform-managed users is left out, which the SDK reports
/// as a user that does not exist).
pub async fn open_transport(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    let identities: Vec<TransportIdentity> = call.json_array()?;
    let transport = state
        .callbox
        .open_transport(&session, identities.into_iter().map(|identity| identity.identity).collect())
        .await?;
    Ok(render(&transport, Some(&session.user_id)))
}

/// `GET /v1/transport?transportId=`: a transport the caller takes part in, with every participant.
pub async fn get_transport(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    call: Call,
) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    let id = query
        .get("transportId")
        .ok_or_else(|| ApiError::with_message(Reason::MalformedRequest, "name the transport: ?transportId=<id>"))?;
    let transport = state.callbox.transport(&session, id).await?;
    Ok(render(&transport, None))
}

/// `POST /v1/report/im`: the SDK's message counters, every 30 s. Signed like every call; the counters are not
/// kept (the server counts messages itself: `callbox_realtime_messages_total`).
pub async fn report(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    signed_session(&state, &call).await?;
    Ok(Json(serde_json::json!({})).into_response())
}

/// `POST /v1/calls/{domain}`: the legacy SDK places a call (only `data`, app-to-app, is served). The server
/// sends the INVITE to the callee's devices and answers with the call's key and virtual channel.
pub async fn place_call(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    call: Call,
) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    let request: LegacyCallRequest = call.json()?;
    if request.domain.as_deref().is_some_and(|named| named != domain) {
        return Err(ApiError::with_message(Reason::MalformedRequest, "the body's domain is not the path's"));
    }
    let offer = match &request.sdp {
        serde_json::Value::Object(offer) if offer.get("sdp").is_some_and(serde_json::Value::is_string) => {
            request.sdp.to_string()
        }
        _ => return Err(ApiError::with_message(Reason::MalformedRequest, "sdp must be an object {type, sdp}")),
    };
    let custom_headers = match request.headers.get("ph") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(ApiError::with_message(Reason::MalformedRequest, "headers.ph must be a string")),
    };
    let placed = state
        .callbox
        .place_legacy_call(
            &session,
            crate::domain::legacy_calls::LegacyCallRequest {
                call_id: request.call_id,
                domain,
                destination_type: request.destination.kind,
                callee_id: request.destination.endpoint,
                subinstance_id: request.subinstance_id,
                offer,
                custom_headers,
            },
        )
        .await?;
    let capabilities: Vec<String> =
        crate::domain::legacy_calls::CALLING_SERVICES.iter().map(|service| (*service).to_owned()).collect();
    Ok(Json(LegacyCallAnswer {
        body: "\n".to_owned(),
        signal_channel: placed.signal_channel,
        encryption_key: placed.encryption_key,
        instances: placed
            .instances
            .into_iter()
            .map(|instance_id| LegacyCallInstance { instance_id, capabilities: capabilities.clone() })
            .collect(),
    })
    .into_response())
}

/// `PUT /v1/calls/{domain}/id/{callId}`: a side's report at the end of a call, answered `{}`.
pub async fn report_call(
    State(state): State<AppState>,
    Path((_domain, call_id)): Path<(String, String)>,
    call: Call,
) -> Result<Response, ApiError> {
    let session = signed_session(&state, &call).await?;
    let report: LegacyCallReport = call.json()?;
    state.callbox.legacy_call_report(&session, &call_id, report.result).await?;
    Ok(Json(serde_json::json!({})).into_response())
}
