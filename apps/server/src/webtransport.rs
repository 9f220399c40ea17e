//! STOMP over WebTransport beside the WebSocket on the same node (`--webtransport`): the
//! same chat service and driver settings, its own UDP endpoint and connection count, and
//! the offer `GET /webtransport` tells.

use crate::{Node, ServerConfig, StartError};
use rtchat_driver::Shutdown;
use rtchat_web::{WebTransportOffer, WebTransportOffers};
use rtchat_webtransport::{
    CertificateOffer, CertificateSource, RotationPolicy, WebTransportConfig, WebTransportServer,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A bound WebTransport endpoint, not yet serving.
pub(crate) struct Bound {
    server: WebTransportServer,
    address: SocketAddr,
}

/// A serving endpoint: trigger its shutdown, then await its task.
pub(crate) struct Serving {
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

/// Binds the endpoint `--webtransport` names, if any.
pub(crate) fn bind(config: &ServerConfig, node: &Node) -> Result<Option<Bound>, StartError> {
    let Some(address) = config.webtransport else {
        return Ok(None);
    };
    let mut wt = WebTransportConfig::new(address);
    wt.certificate = match (&config.wt_cert, &config.wt_key) {
        (Some(certificate), Some(key)) => CertificateSource::Files {
            certificate: certificate.clone(),
            key: key.clone(),
        },
        _ => CertificateSource::SelfSigned {
            extra_names: config.wt_cert_names.clone(),
            rotation: RotationPolicy::default(),
        },
    };
    // The same bound as WebSockets, counted apart (each transport has its own count).
    wt.max_sessions = node.web.max_connections;
    wt.streams = config.wt_streams.into();
    wt.drain = Duration::from_secs(config.drain_seconds.saturating_add(5));
    let server = WebTransportServer::bind(wt).map_err(StartError::WebTransport)?;
    let address = server.local_addr().map_err(StartError::Bind)?;
    Ok(Some(Bound { server, address }))
}

impl Bound {
    /// The UDP address actually bound.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// What `GET /webtransport` answers, read afresh per request (certificates rotate).
    pub(crate) fn offers(&self) -> WebTransportOffers {
        let offer: watch::Receiver<CertificateOffer> = self.server.offer();
        let ip = Some(self.address.ip()).filter(|ip| !ip.is_unspecified());
        let (port, path) = (self.address.port(), self.server.path().to_owned());
        let streams = self.server.streams().as_str();
        Arc::new(move || {
            let current = offer.borrow();
            WebTransportOffer {
                ip,
                port,
                path: path.clone(),
                certificate_hashes: current.hashes.iter().map(|hash| hash.0).collect(),
                valid_until: current.valid_until,
                streams,
            }
        })
    }

    /// Starts serving `node`'s chat.
    pub(crate) fn serve(self, node: &Node) -> Serving {
        let shutdown = Shutdown::new();
        let task = tokio::spawn(self.server.serve(
            node.service.clone(),
            node.web.driver.clone(),
            shutdown.clone(),
        ));
        Serving { shutdown, task }
    }
}

impl Serving {
    /// Stops accepting and tells every session the server is going away.
    pub(crate) fn trigger(&self) {
        self.shutdown.trigger();
    }

    /// Waits until the endpoint drained and closed.
    pub(crate) async fn finished(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the WebTransport server failed");
        }
    }
}
