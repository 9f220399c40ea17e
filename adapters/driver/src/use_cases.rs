//! The chat's use cases that wait on the ports, run on tokio for the connections' jobs and
//! the HTTP API.

use rtchat_core::{ChatError, ChatService, RoomEvent, RoomId};

/// Ok when `room` exists: [`ChatError::UnknownRoom`] otherwise.
pub(crate) async fn ensure_room(service: &ChatService, room: &RoomId) -> Result<(), ChatError> {
    if service.knows_room(room) {
        return Ok(());
    }
    match service.ports().rooms.get(room).await {
        Ok(Some(_)) => {
            service.remember_room(room);
            Ok(())
        }
        Ok(None) => Err(ChatError::UnknownRoom),
        Err(_) => Err(ChatError::Unavailable),
    }
}

/// Publishes through the broker. A failure is not the caller's to handle (the event is a
/// notification; the store has the truth).
pub(crate) async fn publish(service: &ChatService, event: RoomEvent) {
    if let Err(error) = service.ports().broker.publish(event).await {
        tracing::debug!(%error, "publishing a room event failed");
    }
}
