//! The node's room-log repair task: waits for the hub's room log deadlines and makes the
//! store reads it asks for (holes the broker left, catch-up after a broker outage).

use rtchat_chat::ChatService;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Ends the repair task when dropped.
#[derive(Debug)]
pub struct RepairTask(JoinHandle<()>);

impl Drop for RepairTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the repair task of `service`'s hub. One per node; it runs until the returned
/// handle is dropped. Must be called within a tokio runtime.
pub fn spawn_room_log_repairs(service: &ChatService) -> RepairTask {
    let wake = Arc::new(Notify::new());
    service.hub().set_log_waker(Box::new({
        let wake = wake.clone();
        move || wake.notify_one()
    }));
    let service = service.clone();
    RepairTask(tokio::spawn(async move {
        loop {
            let deadline = service.hub().poll_log_timeout();
            tokio::select! {
                () = wake.notified() => {}
                () = sleep_until(deadline) => {}
            }
            let repairs = service.hub().handle_log_timeout(now());
            for repair in repairs {
                let read = service
                    .ports()
                    .messages
                    .after_seq(&repair.room, repair.after, repair.limit)
                    .await;
                match &read {
                    Ok(messages) => tracing::debug!(
                        room = %repair.room, after = repair.after, read = messages.len(),
                        "room log repaired from the store"
                    ),
                    Err(error) => tracing::warn!(
                        room = %repair.room, %error,
                        "room log repair failed; retrying"
                    ),
                }
                service.hub().on_repaired(&repair, read.ok(), now());
            }
        }
    }))
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
