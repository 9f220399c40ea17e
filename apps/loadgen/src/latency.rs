//! `latency`: S subscribers in one room, one publisher sending at a fixed rate for a fixed
//! time; reports the delivery latency percentiles (from the moment a message was due to be
//! sent to the moment a subscriber parsed it), the server's CPU per delivery, and this
//! process's own CPU, since the two share the machine.
//!
//! The publisher is open-loop: message `n` is due at `start + n / rate`, whatever happened to
//! the ones before. Latency is counted from the moment the publisher wrote the message (the
//! timer wakes it up to a millisecond after the due time, which is the load generator's delay,
//! not the server's); the time from the due moment is reported too, so a publisher or server
//! that stalls shows up instead of hiding (coordinated omission).
//! Messages carry their number in the text (`probe #n`); the subscribers find it in the
//! MESSAGE body, whatever JSON the server wraps it in.

use crate::{Client, Target, cpu_time, ensure_loopback, tokens};
use rtchat_stomp::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct LatencyRun {
    /// Subscribers in the room.
    pub subscribers: usize,
    /// Messages per second from the publisher.
    pub rate: u32,
    /// How long the publisher sends, after the warm-up.
    pub duration: Duration,
    /// Sent first and not counted (connections and caches settle).
    pub warmup: Duration,
}

/// The marker before a message's number.
const PROBE: &str = "probe #";

/// Runs the measurement and prints the figures.
pub async fn latency(target: &Target, run: LatencyRun) -> Result<(), String> {
    ensure_loopback(&target.url)?;
    let tokens = tokens(target);
    let destination = target.subscribe_destination();
    let warmup_messages = (run.warmup.as_secs_f64() * f64::from(run.rate)).ceil() as u64;
    let counted_messages = (run.duration.as_secs_f64() * f64::from(run.rate)).ceil() as u64;
    let total = warmup_messages + counted_messages;
    let mut subscribers = Vec::with_capacity(run.subscribers);
    for n in 0..run.subscribers {
        let mut client = Client::connect(target, &tokens, n).await?;
        client.subscribe(&destination, "0").await?;
        subscribers.push(client);
    }
    let mut publisher = Client::connect(target, &tokens, run.subscribers).await?;
    // Every subscriber reads the due instants from here (set before the first send).
    let start = Instant::now() + Duration::from_millis(200);
    let interval = Duration::from_secs_f64(1.0 / f64::from(run.rate.max(1)));
    let due = Arc::new(move |n: u64| start + interval.mul_f64(n as f64));
    // When the publisher wrote message n, in nanoseconds after `start` (set before the write).
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let mut readers = Vec::with_capacity(subscribers.len());
    for mut client in subscribers {
        let due = due.clone();
        let sent_at = sent_at.clone();
        readers.push(tokio::spawn(async move {
            let mut from_sent = Vec::with_capacity(counted_messages as usize);
            let mut from_due = Vec::with_capacity(counted_messages as usize);
            let mut seen = 0u64;
            while seen < total {
                let frame = client.next_frame().await?;
                let received = Instant::now();
                match frame.command {
                    Command::Message => {}
                    Command::Error => {
                        return Err(format!(
                            "a subscriber got an ERROR: {:?}",
                            frame.get("message")
                        ));
                    }
                    _ => continue,
                }
                seen += 1;
                let Some(n) = probe_number(&frame.body) else {
                    return Err("a MESSAGE without its probe number".to_owned());
                };
                if n >= warmup_messages {
                    let sent = sent_at
                        .get(n as usize)
                        .map_or(0, |nanos| nanos.load(Ordering::Acquire));
                    let sent = start + Duration::from_nanos(sent);
                    from_sent.push(micros(received.saturating_duration_since(sent)));
                    from_due.push(micros(received.saturating_duration_since(due(n))));
                }
            }
            Ok::<_, String>((from_sent, from_due))
        }));
    }

    // The publisher asks for no receipts and reads nothing: an ERROR ends its connection,
    // and the next send fails.
    let send_destination = target.send_destination().to_owned();
    let room = target.room.clone();
    let mut cpu_before = None;
    let mut own_cpu_before = None;
    let mut counted_from = start;
    for n in 0..total {
        if n == warmup_messages {
            cpu_before = target.server_pid.and_then(cpu_time);
            own_cpu_before = cpu_time(std::process::id());
            counted_from = Instant::now();
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(due(n))).await;
        if let Some(slot) = sent_at.get(n as usize) {
            let nanos = Instant::now().saturating_duration_since(start).as_nanos();
            slot.store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
        }
        let body = serde_json::json!({"roomId": room, "message": format!("{PROBE}{n} latency probe of a typical chat length")}).to_string();
        publisher
            .send(format!(
                "SEND\ndestination:{send_destination}\ncontent-type:application/json\n\n{body}\0"
            ))
            .await
            .map_err(|error| format!("publishing: {error}"))?;
    }
    let mut latencies = Vec::new();
    let mut late = Vec::new();
    for reader in readers {
        let (from_sent, from_due) = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .map_err(|_| "a subscriber missed messages for 30 s".to_owned())?
            .map_err(|error| error.to_string())??;
        latencies.extend(from_sent);
        late.extend(from_due);
    }
    let elapsed = counted_from.elapsed();
    let cpu_after = target.server_pid.and_then(cpu_time);
    let own_cpu_after = cpu_time(std::process::id());
    latencies.sort_unstable();
    late.sort_unstable();
    let deliveries = latencies.len();
    println!(
        "latency: {} subscribers, {} msg/s for {:.1} s: {deliveries} deliveries; p50 {} p99 {} p99.9 {} max {} ms",
        run.subscribers,
        run.rate,
        elapsed.as_secs_f64(),
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.99)),
        millis(percentile(&latencies, 0.999)),
        millis(latencies.last().copied()),
    );
    println!(
        "latency: from the due time (the publisher's timer included): p50 {} p99 {} ms",
        millis(percentile(&late, 0.50)),
        millis(percentile(&late, 0.99)),
    );
    let per_delivery = |before: Option<Duration>, after: Option<Duration>| {
        before.zip(after).map(|(before, after)| {
            after.saturating_sub(before).as_secs_f64() * 1e6 / deliveries.max(1) as f64
        })
    };
    match per_delivery(cpu_before, cpu_after) {
        Some(us) => println!("latency: server CPU {us:.2} us per delivery"),
        None => println!("latency: pass --server-pid to read the server's CPU time"),
    }
    if let Some(us) = per_delivery(own_cpu_before, own_cpu_after) {
        println!("latency: load generator CPU {us:.2} us per delivery");
    }
    Ok(())
}

/// The number after [`PROBE`] in `body`.
pub(crate) fn probe_number(body: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(body, PROBE.as_bytes())? + PROBE.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The value below which `fraction` of `sorted` lies (nearest rank).
pub(crate) fn percentile(sorted: &[u32], fraction: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

pub(crate) fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

fn millis(micros: Option<u32>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |us| format!("{:.2}", f64::from(us) / 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_number_is_found_inside_the_servers_json() {
        let body = br#"{"messageId":"12","message":"probe #4711 latency probe","seq":3}"#;
        assert_eq!(probe_number(body), Some(4711));
        assert_eq!(probe_number(b"no number here"), None);
        assert_eq!(probe_number(b"probe #"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), Some(50));
        assert_eq!(percentile(&sorted, 0.99), Some(99));
        assert_eq!(percentile(&sorted, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.999), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
