//! The operator's view of live connections: `GET` and `DELETE /admin/v1/apps/{key}/users/{user}/connections`
//! (docs/admin-api.md, docs/realtime.md).

use super::SessionEvent;
use crate::http::admin::AdminCall;
use crate::http::ApiError;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `GET /admin/v1/apps/{key}/users/{user}/connections`: the user's live connections on the node that answers.
pub async fn list_connections(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.app(&key).await?;
    let connections = state.callbox.realtime().local_connections(&key, &user);
    Ok(Json(json!({ "connections": connections })).into_response())
}

/// `DELETE /admin/v1/apps/{key}/users/{user}/connections`: closes the user's connections on every node (4503
/// `service_unavailable`; the sessions stay valid, so clients reconnect: revoke the sessions to keep them out).
/// Answers how many were open on the node that answers.
pub async fn drop_connections(
    State(state): State<AppState>,
    Path((key, user)): Path<(String, String)>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    state.callbox.app(&key).await?;
    let here = state.callbox.realtime().local_connections(&key, &user).len();
    state.callbox.realtime().session_event(SessionEvent::Drop { app_key: key, user_id: user });
    Ok(Json(json!({ "dropped": here })).into_response())
}

/// `GET /admin/v1/apps/{key}/realtime`: live connections (this node) and messages of the last hour (the dashboard).
pub async fn activity(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: AdminCall,
) -> Result<Response, ApiError> {
    let activity = state.callbox.realtime_activity(&key).await?;
    Ok(Json(callbox_wire::admin::RealtimeActivity {
        live_connections: u64::try_from(activity.live_connections).unwrap_or(u64::MAX),
        messages_last_hour: activity.messages_last_hour,
        delivered_last_hour: activity.delivered_last_hour,
    })
    .into_response())
}
