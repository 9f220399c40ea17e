//! `udp-proxy`: a lossy, slow UDP path on loopback, since these kernels have no netem. It
//! forwards datagrams between clients and one server (a WebTransport endpoint), dropping a
//! fraction of them (a seeded RNG, so runs repeat) and holding each back a fixed delay, in
//! both directions. The head-of-line experiment ([`crate::hol`]) runs one in-process.
//!
//! Bounded: at most [`MAX_CLIENTS`] client addresses (each gets its own upstream socket; one
//! idle for [`CLIENT_IDLE`] is forgotten), at most `max_queue` datagrams held per direction
//! (more are dropped and counted), and it stops by itself after its time limit or when told.

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Client addresses served at once.
pub const MAX_CLIENTS: usize = 64;

/// A client address silent this long (both ways) is forgotten.
const CLIENT_IDLE: Duration = Duration::from_secs(120);

/// Largest datagram taken (UDP's own limit).
const MAX_DATAGRAM: usize = 65_535;

/// How the proxy behaves.
#[derive(Debug, Clone, Copy)]
pub struct ProxyConfig {
    /// Where clients send (loopback).
    pub listen: SocketAddr,
    /// The server (loopback).
    pub upstream: SocketAddr,
    /// Fraction of datagrams dropped, each direction (0.0 to 1.0).
    pub loss: f64,
    /// How long each datagram is held before it is forwarded, each direction.
    pub delay: Duration,
    /// Seed of the loss RNG.
    pub seed: u64,
    /// Datagrams held at most per direction; more are dropped (and counted).
    pub max_queue: usize,
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Datagrams forwarded, client to server.
    pub up: AtomicU64,
    /// Datagrams forwarded, server to client.
    pub down: AtomicU64,
    /// Datagrams dropped on purpose (`loss`).
    pub dropped: AtomicU64,
    /// Datagrams dropped because the delay queue was full.
    pub overflow: AtomicU64,
}

impl ProxyStats {
    /// One line for a report.
    pub fn summary(&self) -> String {
        format!(
            "forwarded {} up / {} down, dropped {} (loss) + {} (queue full)",
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.overflow.load(Ordering::Relaxed),
        )
    }
}

/// splitmix64: a tiny seeded RNG, enough to pick which datagrams to drop.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// An RNG from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One datagram waiting out its delay.
struct Held {
    release: Instant,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    datagram: Bytes,
    up: bool,
}

/// A bound proxy, ready to run.
pub struct Proxy {
    config: ProxyConfig,
    socket: Arc<UdpSocket>,
    stats: Arc<ProxyStats>,
}

impl Proxy {
    /// Binds `config.listen`; both addresses must be loopback.
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, String> {
        if !config.listen.ip().is_loopback() || !config.upstream.ip().is_loopback() {
            return Err("udp-proxy: loopback addresses only".to_owned());
        }
        if !(0.0..=1.0).contains(&config.loss) {
            return Err("udp-proxy: --loss is a fraction from 0 to 1".to_owned());
        }
        let socket = UdpSocket::bind(config.listen)
            .await
            .map_err(|error| format!("udp-proxy: bind {}: {error}", config.listen))?;
        Ok(Proxy {
            config,
            socket: Arc::new(socket),
            stats: Arc::new(ProxyStats::default()),
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.config.listen)
    }

    /// Its counters (live while it runs).
    pub fn stats(&self) -> Arc<ProxyStats> {
        self.stats.clone()
    }

    /// Forwards until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let config = self.config;
        let (up_line, up_held) = mpsc::channel::<Held>(config.max_queue.max(1));
        let (down_line, down_held) = mpsc::channel::<Held>(config.max_queue.max(1));
        let lines = [
            tokio::spawn(delay_line(up_held, self.stats.clone())),
            tokio::spawn(delay_line(down_held, self.stats.clone())),
        ];
        let mut clients: HashMap<SocketAddr, Client> = HashMap::new();
        let mut up_rng = Rng::new(config.seed);
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        let mut sweep = tokio::time::interval(CLIENT_IDLE / 4);
        tokio::pin!(stop);
        loop {
            let (len, from) = tokio::select! {
                () = &mut stop => break,
                _ = sweep.tick() => {
                    let now = Instant::now();
                    clients.retain(|_, client| {
                        let alive = now.duration_since(client.last_seen()) < CLIENT_IDLE;
                        if !alive {
                            client.reader.abort();
                        }
                        alive
                    });
                    continue;
                }
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok(received) => received,
                    // ICMP errors surface here on some systems; the next datagram is fine.
                    Err(_) => continue,
                },
            };
            if !clients.contains_key(&from) {
                if clients.len() >= MAX_CLIENTS {
                    continue;
                }
                let Ok(client) = Client::start(
                    from,
                    &config,
                    self.socket.clone(),
                    down_line.clone(),
                    self.stats.clone(),
                )
                .await
                else {
                    continue;
                };
                clients.insert(from, client);
            }
            let Some(client) = clients.get(&from) else {
                continue;
            };
            client.touch();
            if up_rng.next_f64() < config.loss {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let held = Held {
                release: Instant::now() + config.delay,
                socket: client.upstream.clone(),
                to: config.upstream,
                datagram: Bytes::copy_from_slice(&buffer[..len]),
                up: true,
            };
            if up_line.try_send(held).is_err() {
                self.stats.overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
        for client in clients.values() {
            client.reader.abort();
        }
        for line in lines {
            line.abort();
        }
    }
}

/// One client address: its own socket towards the server, and the task reading it.
struct Client {
    upstream: Arc<UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
    /// Milliseconds since `epoch` of the last datagram either way.
    seen: Arc<AtomicU64>,
    epoch: Instant,
}

impl Client {
    async fn start(
        client: SocketAddr,
        config: &ProxyConfig,
        listener: Arc<UdpSocket>,
        down_line: mpsc::Sender<Held>,
        stats: Arc<ProxyStats>,
    ) -> std::io::Result<Client> {
        let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        upstream.connect(config.upstream).await?;
        let seen = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        // Each client's downstream losses have their own stream of draws.
        let mut rng = Rng::new(config.seed ^ 0x5EED_D0D0 ^ u64::from(client.port()));
        let (loss, delay) = (config.loss, config.delay);
        let reader = tokio::spawn({
            let upstream = upstream.clone();
            let seen = seen.clone();
            async move {
                let mut buffer = vec![0u8; MAX_DATAGRAM];
                while let Ok(len) = upstream.recv(&mut buffer).await {
                    seen.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    if rng.next_f64() < loss {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let held = Held {
                        release: Instant::now() + delay,
                        socket: listener.clone(),
                        to: client,
                        datagram: Bytes::copy_from_slice(&buffer[..len]),
                        up: false,
                    };
                    if down_line.try_send(held).is_err() {
                        stats.overflow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(Client {
            upstream,
            reader,
            seen,
            epoch,
        })
    }

    fn touch(&self) {
        self.seen
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn last_seen(&self) -> Instant {
        self.epoch + Duration::from_millis(self.seen.load(Ordering::Relaxed))
    }
}

/// Sends each held datagram at its release time. The delay is the same for all, so the
/// queue is in release order.
async fn delay_line(mut held: mpsc::Receiver<Held>, stats: Arc<ProxyStats>) {
    while let Some(datagram) = held.recv().await {
        tokio::time::sleep_until(datagram.release).await;
        let sent = if datagram.up {
            datagram.socket.send(&datagram.datagram).await
        } else {
            datagram
                .socket
                .send_to(&datagram.datagram, datagram.to)
                .await
        };
        if sent.is_ok() {
            let counter = if datagram.up { &stats.up } else { &stats.down };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_repeats_with_its_seed_and_drops_about_the_fraction() {
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..100_000).filter(|_| rng.next_f64() < 0.03).count()
        };
        assert_eq!(draws(7), draws(7));
        let dropped = draws(7);
        assert!((2_700..3_300).contains(&dropped), "{dropped}");
    }

    #[tokio::test]
    async fn datagrams_are_delayed_and_some_dropped_both_ways() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let upstream = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buffer = [0u8; 64];
            while let Ok((len, from)) = echo.recv_from(&mut buffer).await {
                let _ = echo.send_to(&buffer[..len], from).await;
            }
        });
        let proxy = Proxy::bind(ProxyConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstream,
            loss: 0.0,
            delay: Duration::from_millis(20),
            seed: 1,
            max_queue: 100,
        })
        .await
        .expect("bound");
        let at = proxy.local_addr();
        let stats = proxy.stats();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(proxy.run(async move {
            let _ = stopped.await;
        }));
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let started = std::time::Instant::now();
        client.send_to(b"ping", at).await.expect("sent");
        let mut buffer = [0u8; 64];
        let (len, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buffer))
            .await
            .expect("echoed within 2 s")
            .expect("received");
        assert_eq!(&buffer[..len], b"ping");
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "20 ms each way"
        );
        assert_eq!(stats.up.load(Ordering::Relaxed), 1);
        assert_eq!(stats.down.load(Ordering::Relaxed), 1);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(2), running)
            .await
            .expect("stops when told")
            .expect("task");
    }
}
