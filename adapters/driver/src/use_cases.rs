//! The chat's use cases that wait on the ports: assembling a node, readiness, the HTTP API's
//! (history, rooms, creating rooms) and posting from outside a connection. Each one is the
//! core's decisions ([`ChatService::room_for`], [`ChatService::public_room`],
//! [`ChatService::check_room_capacity`], ...) around the store, presence and broker calls,
//! run here on tokio so that `core/chat` never waits.

use rtchat_chat::{
    BackendError, ChatConfig, ChatError, ChatMessage, ChatService, CreateRoomError, Hub, Identity,
    LOBBY, LOBBY_NAME, MessageId, Ports, Room, RoomEvent, RoomId,
};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

/// Attempts at a fresh generated room id before giving up (a collision at 48 bits is already
/// vanishingly rare; this only guards a store pre-filled by hand).
const GENERATED_ROOM_ID_ATTEMPTS: usize = 4;

/// The use cases of a [`ChatService`] that wait on its ports. Bring the trait into scope to
/// call them on the service (`use rtchat_driver::ChatUseCases;`).
pub trait ChatUseCases: Sized {
    /// Assembles a service: reads the store's log epoch, and makes sure `lobby` exists. `hub`
    /// is the node's local fan-out, the same one given to the broker adapter as its
    /// [`rtchat_chat::RoomEventSink`].
    fn new(
        ports: Ports,
        hub: Arc<Hub>,
        config: ChatConfig,
    ) -> impl Future<Output = Result<Self, ChatError>> + Send;

    /// Whether the backends answer now (`GET /readyz`): the names of those that do not.
    fn ready(&self) -> impl Future<Output = Result<(), Vec<&'static str>>> + Send;

    /// Validates, stores, then publishes one chat message, waiting for each: for callers
    /// outside a STOMP connection (tests, tools). STOMP SENDs go through the room writers.
    ///
    /// A publish failure after the message is stored still returns `Ok`: the message exists,
    /// and every node's room log repairs the hole from the store.
    fn post_message(
        &self,
        author: &Identity,
        client: IpAddr,
        room: &str,
        text: &str,
    ) -> impl Future<Output = Result<ChatMessage, ChatError>> + Send;

    /// `GET /message` (before = None) and `GET /message/lastMessageId`: newest first, for
    /// `caller` (a private room's history is its two members' only).
    fn history(
        &self,
        caller: &Identity,
        room: &str,
        limit: usize,
        before: Option<MessageId>,
    ) -> impl Future<Output = Result<Vec<ChatMessage>, ChatError>> + Send;

    /// `GET /rooms`: each public room with its live count.
    fn rooms(&self) -> impl Future<Output = Result<Vec<(Room, u64)>, ChatError>> + Send;

    /// `POST /rooms`: a public room; a new id is generated when `room_id` is `None`.
    fn create_room(
        &self,
        name: &str,
        room_id: Option<&str>,
    ) -> impl Future<Output = Result<Room, ChatError>> + Send;

    /// `POST /chatroom/private` by `caller`: the same room for the same pair (name tags), in
    /// either order, made the first time it is asked for (see
    /// [`ChatService::private_room_for`]).
    fn private_room(
        &self,
        caller: &Identity,
        sender: &str,
        receiver: &str,
    ) -> impl Future<Output = Result<Room, ChatError>> + Send;
}

impl ChatUseCases for ChatService {
    async fn new(ports: Ports, hub: Arc<Hub>, config: ChatConfig) -> Result<Self, ChatError> {
        let epoch = ports.messages.epoch().await.map_err(unavailable)?;
        let service = ChatService::assemble(ports, hub, config, epoch);
        let lobby = Room {
            room_id: RoomId::parse(LOBBY).ok_or(ChatError::InvalidRoomId)?,
            name: LOBBY_NAME.to_owned(),
        };
        match service.ports().rooms.create(lobby.clone()).await {
            Ok(_) | Err(CreateRoomError::AlreadyExists) => {
                service.known_rooms().remember(&lobby.room_id, now());
                Ok(service)
            }
            Err(CreateRoomError::Backend(error)) => Err(unavailable(error)),
        }
    }

    async fn ready(&self) -> Result<(), Vec<&'static str>> {
        let ports = self.ports();
        let mut down = Vec::new();
        let checks = [
            ("store", ports.rooms.count().await.err()),
            ("broker", ports.broker.ready().await.err()),
            ("presence", ports.presence.total().await.err()),
        ];
        for (name, error) in checks {
            if let Some(error) = error {
                tracing::warn!(%error, backend = name, "readiness check failed");
                down.push(name);
            }
        }
        if down.is_empty() { Ok(()) } else { Err(down) }
    }

    async fn post_message(
        &self,
        author: &Identity,
        client: IpAddr,
        room: &str,
        text: &str,
    ) -> Result<ChatMessage, ChatError> {
        let room = self.room_for(author, room)?;
        ensure_room(self, &room).await?;
        let message = self.new_message(author, client, room.clone(), text)?;
        let stored = self
            .ports()
            .messages
            .append(&room, vec![message])
            .await
            .map_err(unavailable)?
            .into_iter()
            .next()
            .ok_or(ChatError::Unavailable)?
            .into_message();
        publish(self, RoomEvent::Message(stored.clone())).await;
        Ok(stored)
    }

    async fn history(
        &self,
        caller: &Identity,
        room: &str,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        self.check_history_limit(limit)?;
        let room = self.room_for(caller, room)?;
        ensure_room(self, &room).await?;
        let messages = &self.ports().messages;
        match before {
            None => messages.newest(&room, limit).await,
            Some(before) => messages.before(&room, before, limit).await,
        }
        .map_err(unavailable)
    }

    async fn rooms(&self) -> Result<Vec<(Room, u64)>, ChatError> {
        let ports = self.ports();
        let rooms = ports.rooms.list().await.map_err(unavailable)?;
        let mut listed = Vec::with_capacity(rooms.len());
        // A store that lists private rooms by mistake must not leak them.
        for room in rooms.into_iter().filter(|room| !room.is_private()) {
            let count = ports
                .presence
                .room_count(&room.room_id)
                .await
                .map_err(unavailable)?;
            listed.push((room, count));
        }
        Ok(listed)
    }

    async fn create_room(&self, name: &str, room_id: Option<&str>) -> Result<Room, ChatError> {
        for _ in 0..GENERATED_ROOM_ID_ATTEMPTS {
            let room = self.public_room(name, room_id)?;
            ensure_room_capacity(self).await?;
            match self.ports().rooms.create(room).await {
                Ok(room) => {
                    self.known_rooms().remember(&room.room_id, now());
                    return Ok(room);
                }
                // A generated id that is taken: another one.
                Err(CreateRoomError::AlreadyExists) if room_id.is_none() => continue,
                Err(CreateRoomError::AlreadyExists) => return Err(ChatError::RoomExists),
                Err(CreateRoomError::Backend(error)) => return Err(unavailable(error)),
            }
        }
        Err(ChatError::Unavailable)
    }

    async fn private_room(
        &self,
        caller: &Identity,
        sender: &str,
        receiver: &str,
    ) -> Result<Room, ChatError> {
        let room = self.private_room_for(caller, sender, receiver)?;
        let rooms = &self.ports().rooms;
        if let Some(existing) = rooms.get(&room.room_id).await.map_err(unavailable)? {
            self.known_rooms().remember(&existing.room_id, now());
            return Ok(existing);
        }
        ensure_room_capacity(self).await?;
        match rooms.create(room.clone()).await {
            Ok(room) => {
                self.known_rooms().remember(&room.room_id, now());
                Ok(room)
            }
            // Second call for the pair: the room is the one made the first time.
            Err(CreateRoomError::AlreadyExists) => {
                self.known_rooms().remember(&room.room_id, now());
                Ok(room)
            }
            Err(CreateRoomError::Backend(error)) => Err(unavailable(error)),
        }
    }
}

/// Ok when `room` exists: [`ChatError::UnknownRoom`] otherwise.
pub(crate) async fn ensure_room(service: &ChatService, room: &RoomId) -> Result<(), ChatError> {
    if service.known_rooms().knows(room, now()) {
        return Ok(());
    }
    match service.ports().rooms.get(room).await {
        Ok(Some(_)) => {
            service.known_rooms().remember(room, now());
            Ok(())
        }
        Ok(None) => Err(ChatError::UnknownRoom),
        Err(error) => Err(unavailable(error)),
    }
}

/// Now, on tokio's clock (paused in tests).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Refuses a new room once the node holds as many as it may.
async fn ensure_room_capacity(service: &ChatService) -> Result<(), ChatError> {
    let rooms = service.ports().rooms.count().await.map_err(unavailable)?;
    service.check_room_capacity(rooms)
}

/// Publishes through the broker. A failure is not the caller's to handle (the event is a
/// notification; the store has the truth).
pub(crate) async fn publish(service: &ChatService, event: RoomEvent) {
    if let Err(error) = service.ports().broker.publish(event).await {
        // Subscribers on other nodes miss this event (their next replay brings messages).
        tracing::warn!(%error, "publishing a room event failed");
    }
}

/// The client is told the backend is unavailable; the cause goes to the log only.
fn unavailable(error: BackendError) -> ChatError {
    tracing::warn!(%error, "a backend failed; answered UNAVAILABLE");
    ChatError::Unavailable
}
