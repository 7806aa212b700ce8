//! The legacy SDK's messaging calls of the client API (docs/legacy-sdk.md): transports and the IM report. The
//! PubNub-style transport itself is `realtime::legacy`.

use super::call::Call;
use super::client::signed_session;
use super::error::ApiError;
use super::AppState;
use crate::domain::legacy::Transport;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use callbox_core::Reason;
use callbox_wire::client::{TransportAnswer, TransportIdentity, TransportInstance, TransportParticipant};
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
