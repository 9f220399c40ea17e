//! `rtchat-server`: see `rtchat-server --help`.

use clap::Parser;
use rtchat_server::{Server, ServerConfig, init_logging, shutdown_signal};
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = ServerConfig::parse();
    let server = match Server::bind(&config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "rtchat could not start");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        // Printed on stdout, alone on its line: people open it, scripts read it.
        Ok(addr) => println!("rtchat listening on http://{addr}/"),
        Err(error) => tracing::warn!(%error, "cannot read the bound address"),
    }
    if let Some(addr) = server.webtransport_addr() {
        // Clients take the URL and the certificate hashes from GET /webtransport.
        println!("rtchat WebTransport on https://{addr}/stomp (hashes: GET /webtransport)");
    }
    tracing::info!(store = ?config.store, broker = ?config.broker, heart_beat = ?config.heart_beat, "serving");
    // Connections drain their SENDs for up to --drain-seconds, then write their goodbyes.
    let drain = Duration::from_secs(config.drain_seconds.saturating_add(5));
    match server.run(shutdown_signal(), drain).await {
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
