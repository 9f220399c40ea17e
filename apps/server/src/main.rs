//! `rtchat-server`: see `rtchat-server --help`.

use clap::Parser;
use rtchat_server::{Server, ServerConfig};
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
    tracing::info!(store = ?config.store, broker = ?config.broker, heart_beat = ?config.heart_beat, "serving");
    match server.run(shutdown_signal(), Duration::from_secs(5)).await {
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

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
