//! The server's HTTP API as the client needs it: `GET` a path, get the envelope. hyper's own
//! HTTP/1.1 client over one TCP connection per request.

use crate::error::CliError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;

/// An rtchat server's HTTP side.
#[derive(Debug, Clone)]
pub struct Api {
    /// `host:port`.
    authority: String,
    /// How long one request may take.
    timeout: Duration,
}

/// An answer: the HTTP status and the envelope.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON envelope.
    pub body: Value,
}

impl Answer {
    /// The envelope's `type`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    /// The envelope's error message, or the status when it has none.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

impl Api {
    /// The API of `server` (`http://host:port`).
    pub fn new(server: &str, timeout: Duration) -> Result<Self, CliError> {
        let url = url::Url::parse(server).map_err(|_| CliError::Server(server.to_owned()))?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(CliError::Server(server.to_owned()));
        };
        if url.scheme() != "http" || !matches!(url.path(), "" | "/") {
            return Err(CliError::Server(server.to_owned()));
        }
        Ok(Api {
            authority: format!("{host}:{port}"),
            timeout,
        })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The STOMP-over-WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.authority)
    }

    /// `GET path_and_query`, with the token when given.
    pub async fn get(&self, path_and_query: &str, token: Option<&str>) -> Result<Answer, CliError> {
        let url = format!("http://{}{path_and_query}", self.authority);
        tokio::time::timeout(self.timeout, self.fetch(path_and_query, token, &url))
            .await
            .map_err(|_| CliError::Timeout(self.timeout, "HTTP answer"))?
    }

    async fn fetch(
        &self,
        path_and_query: &str,
        token: Option<&str>,
        url: &str,
    ) -> Result<Answer, CliError> {
        let unreachable = |error: &dyn std::fmt::Display| CliError::Unreachable {
            url: url.to_owned(),
            error: error.to_string(),
        };
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|error| unreachable(&error))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(&error))?;
        // The connection is driven beside the request; it ends with the request.
        let driving = tokio::spawn(connection);
        let mut request = Request::get(path_and_query).header(HOST, &self.authority);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|error| unreachable(&error))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(&error))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| unreachable(&error))?
            .to_bytes();
        driving.abort();
        let body = serde_json::from_slice(&body).map_err(|_| CliError::BadAnswer {
            url: url.to_owned(),
            what: format!("HTTP {status} without a JSON envelope"),
        })?;
        Ok(Answer { status, body })
    }
}
