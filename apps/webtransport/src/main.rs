//! `rtchat-webtransport`: STOMP over WebTransport (QUIC), for experimenters.
//!
//! Assembles the same node as `rtchat-server` (every `rtchat-server` flag and `RTCHAT_*`
//! variable applies, except `--bind`, which only the WebSocket app uses) and serves it over
//! WebTransport on `--wt-bind` (UDP), path `/stomp`. At start it makes a fresh self-signed
//! ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1`, valid for 14 days, and
//! prints its SHA-256 hash, so a browser can connect with
//! `new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value }] })`.
//! Tokens come from a `rtchat-server`'s `GET /init` run with the same `--jwt-secret` and
//! `--node-name`.

use base64::Engine as _;
use clap::Parser;
use rtchat_driver::Shutdown;
use rtchat_server::{ServerConfig, assemble, init_logging, shutdown_signal};
use rtchat_webtransport::{
    DEFAULT_PATH, WebTransportConfig, WebTransportServer, self_signed_identity,
};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Flags: the WebTransport address plus every `rtchat-server` setting.
#[derive(Debug, Parser)]
#[command(
    name = "rtchat-webtransport",
    version,
    about = "Anonymous real-time chat over STOMP and WebTransport (QUIC)"
)]
struct Args {
    /// UDP address for WebTransport (port 0 picks a free one).
    #[arg(long, env = "RTCHAT_WT_BIND", default_value = "127.0.0.1:4433")]
    wt_bind: SocketAddr,
    /// Extra host names or addresses for the self-signed certificate (besides localhost,
    /// 127.0.0.1 and ::1).
    #[arg(
        long = "wt-cert-name",
        env = "RTCHAT_WT_CERT_NAMES",
        value_delimiter = ','
    )]
    wt_cert_names: Vec<String>,
    #[command(flatten)]
    server: ServerConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    let node = match assemble(&args.server).await {
        Ok(node) => node,
        Err(error) => {
            tracing::error!(%error, "rtchat could not start");
            return ExitCode::FAILURE;
        }
    };
    let identity = match self_signed_identity(&args.wt_cert_names) {
        Ok(identity) => identity,
        Err(error) => {
            tracing::error!(%error, "rtchat could not start");
            return ExitCode::FAILURE;
        }
    };
    let server = match WebTransportServer::bind(WebTransportConfig::new(args.wt_bind, identity)) {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "rtchat could not start");
            return ExitCode::FAILURE;
        }
    };
    // Printed on stdout, one fact per line: people copy them, scripts read them.
    match server.local_addr() {
        Ok(addr) => println!("rtchat WebTransport listening on https://{addr}{DEFAULT_PATH}"),
        Err(error) => tracing::warn!(%error, "cannot read the bound address"),
    }
    if let Some(hash) = server.certificate_hash() {
        let bytes: &[u8; 32] = hash.as_ref();
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        println!(
            "certificate sha-256 (base64): {}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        println!("certificate sha-256 (hex): {hex}");
    }
    tracing::info!(store = ?args.server.store, broker = ?args.server.broker, heart_beat = ?args.server.heart_beat, "serving");

    let shutdown = Shutdown::new();
    let serving = tokio::spawn(server.serve(
        node.service.clone(),
        node.web.driver.clone(),
        shutdown.clone(),
    ));
    shutdown_signal().await;
    shutdown.trigger();
    let result = serving.await;
    node.leave_cluster().await;
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
