//! `hol`: the head-of-line experiment. One subscriber follows two rooms: room A carries a
//! heavy stream of largish messages, room B a trickle. Over WebTransport the subscriber
//! reaches the server through an in-process lossy UDP proxy ([`crate::proxy`]); the
//! publishers come over WebSocket straight to the server, so only the subscriber's path
//! loses packets. Reported per room: latency percentiles (from the publisher's write to the
//! subscriber's parse) and how many messages were lost, duplicated or out of order.
//!
//! With the server's `--wt-streams single`, a lost packet of room A's holds up room B's
//! messages behind it on the one stream; with `per-subscription`, room B has a stream of its
//! own. Over WebSocket (TCP) there is no proxy: a UDP proxy cannot make TCP lose packets, so
//! WebSocket runs serve as the loss-free reference.

use crate::latency::{micros, percentile, probe_number};
use crate::link::{self, WebTransportTarget};
use crate::proxy::{Proxy, ProxyConfig};
use crate::{Client, Target, create_room, ensure_loopback, tokens};
use rtchat_chat::{Identity, Tokens};
use rtchat_stomp::Command;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct HolRun {
    /// Room A's messages per second.
    pub a_rate: u32,
    /// Room A's message text length.
    pub a_bytes: usize,
    /// Room B's messages per second.
    pub b_rate: u32,
    /// How long the publishers send, after the warm-up.
    pub duration: Duration,
    /// Sent first and not counted.
    pub warmup: Duration,
    /// Fraction of datagrams the proxy drops, each way.
    pub loss: f64,
    /// How long the proxy holds each datagram, each way.
    pub delay: Duration,
    /// The proxy's RNG seed.
    pub seed: u64,
}

/// The marker before a message's number (what [`probe_number`] looks for).
const PROBE: &str = "probe #";

/// How long the subscriber waits for stragglers after the last message was sent.
const GRACE: Duration = Duration::from_secs(5);

/// The two rooms.
const ROOMS: [&str; 2] = ["hol-a", "hol-b"];

/// One room's messages as the subscriber saw them.
#[derive(Debug, Default)]
struct Seen {
    /// Times each message number arrived.
    arrivals: Vec<u32>,
    /// Latencies of counted (after warm-up) messages, in microseconds.
    latencies: Vec<u32>,
    /// Arrivals with a lower number than one that arrived before.
    out_of_order: u64,
    highest: Option<u64>,
}

/// Runs the experiment and prints the figures.
pub async fn hol(target: &Target, run: HolRun) -> Result<(), String> {
    ensure_loopback(&target.url)?;
    let tokens = tokens(target);
    let creator = Identity {
        rand_id: "LoadRooms".to_owned(),
        name_tag: "#10AD00".to_owned(),
    };
    let token = tokens.issue(&creator, "127.0.0.1");
    for room in ROOMS {
        create_room(&target.url, &token, room).await?;
    }

    // The subscriber's path: through the proxy over WebTransport, straight over WebSocket.
    let (subscriber_wt, proxy) = match (target.transport, &target.webtransport) {
        (link::Transport::Wt, Some(wt)) => {
            let upstream = authority(&wt.url)?;
            let listen = SocketAddr::new(upstream.ip(), 0);
            let proxy = Proxy::bind(ProxyConfig {
                listen,
                upstream,
                loss: run.loss,
                delay: run.delay,
                seed: run.seed,
                max_queue: 100_000,
            })
            .await?;
            let path = wt
                .url
                .splitn(4, '/')
                .nth(3)
                .map_or_else(String::new, |path| format!("/{path}"));
            let proxied = WebTransportTarget {
                url: format!("https://{}{path}", proxy.local_addr()),
                pins: wt.pins.clone(),
                streams: wt.streams.clone(),
            };
            (Some(proxied), Some(proxy))
        }
        (link::Transport::Ws, _) => {
            if run.loss > 0.0 || !run.delay.is_zero() {
                return Err("hol: --loss and --delay need --transport wt: a UDP proxy cannot make TCP lose packets".to_owned());
            }
            (None, None)
        }
        _ => return Err("hol: --transport ws or wt".to_owned()),
    };
    let path = match &subscriber_wt {
        Some(wt) => format!(
            "wt (server streams: {}) through a UDP proxy dropping {:.1}% and delaying {} ms, each way (seed {})",
            wt.streams,
            run.loss * 100.0,
            run.delay.as_millis(),
            run.seed
        ),
        None => "ws (TCP, no proxy)".to_owned(),
    };
    let stats = proxy.as_ref().map(Proxy::stats);
    let (stop_proxy, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy_task = proxy.map(|proxy| {
        tokio::spawn(proxy.run(async move {
            let _ = proxy_stopped.await;
        }))
    });

    let mut subscriber = Client::connect_over(
        &target.url,
        target.transport,
        subscriber_wt.as_ref(),
        target,
        &tokens,
        0,
    )
    .await?;
    for (room, id) in ROOMS.iter().zip(["a", "b"]) {
        subscriber
            .subscribe(&format!("/sub/channel/{room}"), id)
            .await?;
    }
    let mut publishers = Vec::new();
    for n in 1..=2 {
        publishers.push(
            Client::connect_over(&target.url, link::Transport::Ws, None, target, &tokens, n)
                .await?,
        );
    }

    let rates = [run.a_rate.max(1), run.b_rate.max(1)];
    let warmup_messages =
        rates.map(|rate| (run.warmup.as_secs_f64() * f64::from(rate)).ceil() as u64);
    let totals = [0, 1].map(|room| {
        warmup_messages[room] + (run.duration.as_secs_f64() * f64::from(rates[room])).ceil() as u64
    });
    let start = Instant::now() + Duration::from_millis(200);
    // When publisher r wrote its message n, in nanoseconds after `start`.
    let sent_at: Arc<[Vec<AtomicU64>; 2]> =
        Arc::new(totals.map(|total| (0..total).map(|_| AtomicU64::new(0)).collect()));
    let publishing_ends = Arc::new(AtomicU64::new(u64::MAX));

    let reader = tokio::spawn({
        let sent_at = sent_at.clone();
        let publishing_ends = publishing_ends.clone();
        async move {
            let mut seen = [Seen::default(), Seen::default()];
            for (room, total) in totals.iter().enumerate() {
                seen[room].arrivals = vec![0; *total as usize];
            }
            let mut unique = 0u64;
            let all = totals[0] + totals[1];
            while unique < all {
                // Wait for stragglers at most GRACE after the publishers are done.
                let ends = publishing_ends.load(Ordering::Acquire);
                let deadline = if ends == u64::MAX {
                    Duration::from_secs(60)
                } else {
                    (start + Duration::from_nanos(ends) + GRACE)
                        .saturating_duration_since(Instant::now())
                };
                let Ok(frame) = tokio::time::timeout(deadline, subscriber.next_frame()).await
                else {
                    if ends == u64::MAX {
                        return Err("the subscriber heard nothing for 60 s".to_owned());
                    }
                    break;
                };
                let frame = frame?;
                let received = Instant::now();
                match frame.command {
                    Command::Message => {}
                    Command::Error => {
                        return Err(format!(
                            "the subscriber got an ERROR: {:?}",
                            frame.get("message")
                        ));
                    }
                    _ => continue,
                }
                let room = match frame.get("subscription") {
                    Some("a") => 0,
                    Some("b") => 1,
                    _ => continue,
                };
                let Some(n) = probe_number(&frame.body) else {
                    continue;
                };
                let seen = &mut seen[room];
                let Some(count) = seen.arrivals.get_mut(n as usize) else {
                    continue;
                };
                *count += 1;
                if *count > 1 {
                    continue;
                }
                unique += 1;
                if seen.highest.is_some_and(|highest| n < highest) {
                    seen.out_of_order += 1;
                }
                seen.highest = seen.highest.max(Some(n));
                if n >= warmup_messages[room] {
                    let sent = sent_at[room]
                        .get(n as usize)
                        .map_or(0, |nanos| nanos.load(Ordering::Acquire));
                    let sent = start + Duration::from_nanos(sent);
                    seen.latencies
                        .push(micros(received.saturating_duration_since(sent)));
                }
            }
            Ok::<_, String>(seen)
        }
    });

    let padding = "x".repeat(run.a_bytes.saturating_sub(40));
    let mut sending = Vec::new();
    for (room, mut publisher) in publishers.into_iter().enumerate() {
        let sent_at = sent_at.clone();
        let interval = Duration::from_secs_f64(1.0 / f64::from(rates[room]));
        let total = totals[room];
        let name = ROOMS[room];
        let text_padding = if room == 0 {
            padding.clone()
        } else {
            String::new()
        };
        sending.push(tokio::spawn(async move {
            for n in 0..total {
                let due = start + interval.mul_f64(n as f64);
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                if let Some(slot) = sent_at[room].get(n as usize) {
                    let nanos = Instant::now().saturating_duration_since(start).as_nanos();
                    slot.store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
                }
                let body = serde_json::json!({"roomId": name, "message": format!("{PROBE}{n} {text_padding}")}).to_string();
                publisher
                    .send(format!(
                        "SEND\ndestination:/pub/chat\ncontent-type:application/json\n\n{body}\0"
                    ))
                    .await
                    .map_err(|error| format!("publishing to {name}: {error}"))?;
            }
            Ok::<_, String>(publisher)
        }));
    }
    let mut done_publishers = Vec::new();
    for task in sending {
        done_publishers.push(task.await.map_err(|error| error.to_string())??);
    }
    let ends = Instant::now().saturating_duration_since(start).as_nanos();
    publishing_ends.store(
        u64::try_from(ends).unwrap_or(u64::MAX - 1),
        Ordering::Release,
    );
    let seen = reader.await.map_err(|error| error.to_string())??;
    drop(done_publishers);
    let _ = stop_proxy.send(());
    if let Some(task) = proxy_task {
        let _ = task.await;
    }

    println!("hol: subscriber over {path}");
    for (room, mut seen) in seen.into_iter().enumerate() {
        let total = totals[room];
        let received = seen.arrivals.iter().filter(|&&count| count > 0).count() as u64;
        let duplicated: u64 = seen
            .arrivals
            .iter()
            .map(|&count| u64::from(count.saturating_sub(1)))
            .sum();
        seen.latencies.sort_unstable();
        let size = if room == 0 {
            format!(" x {} B", run.a_bytes)
        } else {
            String::new()
        };
        println!(
            "hol: room {} ({} msg/s{size}): sent {total}, received {received}, lost {}, duplicated {duplicated}, out of order {}; latency p50 {} p99 {} p99.9 {} max {} ms",
            ["A", "B"][room],
            rates[room],
            total - received,
            seen.out_of_order,
            millis(percentile(&seen.latencies, 0.50)),
            millis(percentile(&seen.latencies, 0.99)),
            millis(percentile(&seen.latencies, 0.999)),
            millis(seen.latencies.last().copied()),
        );
    }
    if let Some(stats) = stats {
        println!("hol: proxy {}", stats.summary());
    }
    Ok(())
}

/// The `host:port` of `https://host:port/path` as an address.
fn authority(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("not a WebTransport URL: {url}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .parse()
        .map_err(|_| format!("hol: the WebTransport endpoint {authority} is not an address"))
}

fn millis(micros: Option<u32>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |us| format!("{:.1}", f64::from(us) / 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_address_comes_from_the_url() {
        assert_eq!(
            authority("https://127.0.0.1:4433/stomp"),
            Ok("127.0.0.1:4433".parse().expect("addr"))
        );
        assert_eq!(
            authority("https://[::1]:4433/stomp"),
            Ok("[::1]:4433".parse().expect("addr"))
        );
        assert!(authority("https://localhost:4433/stomp").is_err());
    }
}
