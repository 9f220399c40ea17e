//! Runs a [`Transcript`] against one [`Combination`]: checks every expectation and records the
//! normalised conversation.

use crate::combination::{Client, Combination, Node};
use crate::normalize::{NormalFrame, Normalizer, escape_text};
use crate::stream::{Received, StreamReader};
use crate::tokens::{SECRET, TokenMint};
use crate::transcript::{
    Action, Expected, ExpectedFrame, Part, Placeholder, Setting, Step, Template, Transcript,
};
use rtchat_server::ServerConfig;
use rtchat_stomp::HeartBeat;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait for one expected frame, or for an expected close.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `NAME silent` listens.
pub const SILENCE: Duration = Duration::from_millis(200);
/// After the last step, how long every open connection must stay quiet.
pub const FINAL_QUIET: Duration = Duration::from_millis(100);

/// A transcript that did not run as written.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The transcript's name.
    pub transcript: String,
    /// The combination it ran on.
    pub combination: &'static str,
    /// The line of the step (or expected frame) that failed; 0 for setup and teardown.
    pub line: usize,
    /// What went wrong, with expected and received text.
    pub message: String,
    /// The normalised conversation up to the failure.
    pub recorded: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance/transcripts/{}.stomp:{} on {}:\n{}",
            self.transcript, self.line, self.combination, self.message
        )?;
        writeln!(f, "\n---- conversation up to the failure ----")?;
        write!(f, "{}", self.recorded)
    }
}

impl std::error::Error for Failure {}

/// The server configuration of a transcript: the embedded defaults, the conformance secret,
/// heart-beats off, then the transcript's `config:` lines.
pub fn server_config(transcript: &Transcript) -> ServerConfig {
    let mut config = ServerConfig::in_memory();
    config.jwt_secret = Some(SECRET.to_owned());
    config.heart_beat = HeartBeat::OFF;
    for setting in &transcript.settings {
        match setting {
            Setting::HeartBeat(value) => {
                // Validated when the transcript was parsed.
                config.heart_beat = HeartBeat::parse(value).unwrap_or(HeartBeat::OFF);
            }
            Setting::MaxMessageChars(n) => config.max_message_chars = *n,
            Setting::MaxSendsPerSecond(n) => config.max_sends_per_second = *n,
            Setting::MaxFrameBytes(n) => config.max_frame_bytes = *n,
        }
    }
    config
}

/// Runs `transcript` on a fresh node of `combination`; the recorded conversation on success.
pub async fn run(
    combination: &dyn Combination,
    transcript: &Transcript,
) -> Result<String, Failure> {
    let config = server_config(transcript);
    let mut run = Run {
        transcript,
        combination: combination.name(),
        mint: TokenMint::new(&config.node_name),
        normalizer: Normalizer::default(),
        clients: Vec::new(),
        log: String::new(),
    };
    for setting in &transcript.settings {
        run.record(&format!("config: {setting}"));
    }
    let mut node = combination
        .start(&config)
        .await
        .map_err(|message| run.failure(0, message))?;
    let outcome = run.steps(node.as_mut()).await;
    node.stop().await;
    outcome.map(|()| run.log)
}

/// What the next read from a client gave.
enum Next {
    Item(Received),
    Closed,
    TimedOut,
}

struct ClientState {
    name: String,
    /// `None` before the first send and after the connection ended.
    connection: Option<Box<dyn Client>>,
    reader: StreamReader,
    /// The server closed the connection (seen, not yet necessarily expected).
    server_closed: bool,
}

struct Run<'a> {
    transcript: &'a Transcript,
    combination: &'static str,
    mint: TokenMint,
    normalizer: Normalizer,
    clients: Vec<ClientState>,
    log: String,
}

impl Run<'_> {
    async fn steps(&mut self, node: &mut dyn Node) -> Result<(), Failure> {
        for step in &self.transcript.steps {
            self.step(step, node).await?;
        }
        self.expect_quiet_end().await
    }

    async fn step(&mut self, step: &Step, node: &mut dyn Node) -> Result<(), Failure> {
        let line = step.line;
        match &step.action {
            Action::Send { client, chunk } => self.send(line, client, chunk, node).await,
            Action::Expect { client, items } => self.expect(line, client, items).await,
            Action::Closed { client } => self.expect_closed(line, client).await,
            Action::Close { client } => {
                let state = self.client(line, client)?;
                if let Some(mut connection) = state.connection.take() {
                    connection.close().await;
                }
                state.reader = StreamReader::default();
                self.record(&format!("{client} close"));
                Ok(())
            }
            Action::Silent { client } => self.expect_silence(line, client).await,
            Action::Wait(duration) => {
                tokio::time::sleep(*duration).await;
                self.record(&format!("wait {}ms", duration.as_millis()));
                Ok(())
            }
        }
    }

    // ---- sending ----

    async fn send(
        &mut self,
        line: usize,
        client: &str,
        chunk: &Template,
        node: &mut dyn Node,
    ) -> Result<(), Failure> {
        let bytes = self.resolve(line, chunk)?;
        let index = match self.clients.iter().position(|c| c.name == client) {
            Some(index) => index,
            None => {
                self.clients.push(ClientState {
                    name: client.to_owned(),
                    connection: None,
                    reader: StreamReader::default(),
                    server_closed: false,
                });
                self.clients.len() - 1
            }
        };
        let state = &mut self.clients[index];
        if state.server_closed {
            // The close was expected (`NAME closed`), or a step before would have failed:
            // this send opens a new connection for the same user.
            state.server_closed = false;
            state.connection = None;
            state.reader = StreamReader::default();
        }
        if state.connection.is_none() {
            let connection = node.connect().await.map_err(|message| {
                self.failure(line, format!("{client} cannot connect: {message}"))
            })?;
            self.clients[index].connection = Some(connection);
        }
        let sent = match self.clients[index].connection.as_mut() {
            Some(connection) => connection.send(bytes).await,
            None => Err("no connection".to_owned()),
        };
        self.record(&format!("{client} >>>\n{}", display_chunk(chunk)));
        sent.map_err(|message| self.failure(line, format!("{client} cannot send: {message}")))
    }

    /// The bytes of `chunk` with its placeholders filled in.
    fn resolve(&self, line: usize, chunk: &Template) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        for part in &chunk.parts {
            match part {
                Part::Bytes(literal) => bytes.extend_from_slice(literal),
                Part::Placeholder(placeholder) => {
                    let value = match placeholder {
                        Placeholder::Token(name) => self.mint.valid(name),
                        Placeholder::ExpiredToken(name) => self.mint.expired(name),
                        Placeholder::BadToken => self.mint.foreign("mallory"),
                        Placeholder::Seen { kind, index } => self
                            .normalizer
                            .value(kind, *index)
                            .ok_or_else(|| {
                                self.failure(line, format!("{placeholder} names <{kind}-{index}>, which no client has received yet"))
                            })?
                            .to_owned(),
                    };
                    bytes.extend_from_slice(value.as_bytes());
                }
            }
        }
        Ok(bytes)
    }

    // ---- receiving ----

    async fn expect(
        &mut self,
        line: usize,
        client: &str,
        items: &[Expected],
    ) -> Result<(), Failure> {
        let mut received = Vec::new();
        let mut outcome = Ok(());
        for item in items {
            match self.expect_item(client, item).await {
                Ok(text) => received.push(text),
                Err((item_line, message)) => {
                    outcome = Err((item_line, message));
                    break;
                }
            }
        }
        if !received.is_empty() {
            self.record(&format!("{client} <<<\n{}", received.join("\n")));
        }
        outcome.map_err(|(item_line, message)| self.failure(item_line.max(line), message))
    }

    /// Reads the next item for `expected`; its recorded text, or the line and explanation of
    /// the mismatch.
    async fn expect_item(
        &mut self,
        client: &str,
        expected: &Expected,
    ) -> Result<String, (usize, String)> {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        let (line, wanted) = match expected {
            Expected::HeartBeat { line } => (*line, crate::transcript::HEART_BEAT_MARK.to_owned()),
            Expected::Frame(frame) => (frame.line, render_expected(frame)),
        };
        loop {
            let next = self
                .next(client, deadline)
                .await
                .map_err(|message| (line, message))?;
            match (next, expected) {
                (Next::Item(Received::HeartBeat), Expected::HeartBeat { .. }) => {
                    return Ok(crate::transcript::HEART_BEAT_MARK.to_owned());
                }
                // Heart-beats are transport-level: skipped (and not recorded, their number
                // depends on timing) unless the transcript expects one.
                (Next::Item(Received::HeartBeat), Expected::Frame(_)) => {}
                (Next::Item(Received::Frame(frame)), expected) => {
                    let frame = self.normalizer.frame(&frame);
                    let rendered = frame.render();
                    let verdict = match expected {
                        Expected::Frame(wanted) => compare(wanted, &frame),
                        Expected::HeartBeat { .. } => {
                            Err("a frame arrived instead of a heart-beat".to_owned())
                        }
                    };
                    return match verdict {
                        Ok(()) => Ok(rendered),
                        Err(why) => Err((
                            line,
                            format!(
                                "{client} received a different frame: {why}\n--- expected\n{wanted}\n--- received\n{rendered}"
                            ),
                        )),
                    };
                }
                (Next::Closed, _) => {
                    return Err((
                        line,
                        format!("{client}'s connection was closed while waiting for\n{wanted}"),
                    ));
                }
                (Next::TimedOut, _) => {
                    return Err((
                        line,
                        format!(
                            "{client} received nothing within {FRAME_TIMEOUT:?}; expected\n{wanted}"
                        ),
                    ));
                }
            }
        }
    }

    async fn expect_closed(&mut self, line: usize, client: &str) -> Result<(), Failure> {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        loop {
            match self
                .next(client, deadline)
                .await
                .map_err(|m| self.failure(line, m))?
            {
                Next::Item(Received::HeartBeat) => {}
                Next::Item(Received::Frame(frame)) => {
                    let frame = self.normalizer.frame(&frame).render();
                    return Err(self.failure(
                        line,
                        format!("{client} expected the server to close, but received\n{frame}"),
                    ));
                }
                Next::Closed => break,
                Next::TimedOut => {
                    return Err(self.failure(
                        line,
                        format!("{client} expected the server to close the connection within {FRAME_TIMEOUT:?}; it stayed open"),
                    ));
                }
            }
        }
        let state = self.client(line, client)?;
        if !state.reader.is_empty() {
            return Err(self.failure(
                line,
                format!("{client}'s connection closed in the middle of a frame"),
            ));
        }
        self.record(&format!("{client} closed"));
        Ok(())
    }

    async fn expect_silence(&mut self, line: usize, client: &str) -> Result<(), Failure> {
        let deadline = Instant::now() + SILENCE;
        loop {
            match self
                .next(client, deadline)
                .await
                .map_err(|m| self.failure(line, m))?
            {
                Next::Item(Received::HeartBeat) => {}
                Next::Item(Received::Frame(frame)) => {
                    let frame = self.normalizer.frame(&frame).render();
                    return Err(self.failure(
                        line,
                        format!("{client} expected silence, but received\n{frame}"),
                    ));
                }
                Next::Closed => {
                    return Err(self.failure(
                        line,
                        format!("{client} expected silence, but the connection was closed"),
                    ));
                }
                Next::TimedOut => break,
            }
        }
        self.record(&format!("{client} silent"));
        Ok(())
    }

    /// After the last step nothing may be left unread: no extra frame, no unexpected close.
    async fn expect_quiet_end(&mut self) -> Result<(), Failure> {
        let deadline = Instant::now() + FINAL_QUIET;
        let names: Vec<String> = self
            .clients
            .iter()
            .filter(|c| c.connection.is_some() && !c.server_closed)
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            loop {
                match self
                    .next(&name, deadline)
                    .await
                    .map_err(|m| self.failure(0, m))?
                {
                    Next::Item(Received::HeartBeat) => {}
                    Next::Item(Received::Frame(frame)) => {
                        let frame = self.normalizer.frame(&frame).render();
                        return Err(self.failure(
                            0,
                            format!("after the last step, {name} received a frame the transcript does not expect:\n{frame}"),
                        ));
                    }
                    Next::Closed => {
                        return Err(self.failure(
                            0,
                            format!("after the last step, {name}'s connection was closed; add `{name} closed`"),
                        ));
                    }
                    Next::TimedOut => break,
                }
            }
        }
        Ok(())
    }

    /// The next item for `client`, waiting until `deadline`.
    async fn next(&mut self, client: &str, deadline: Instant) -> Result<Next, String> {
        let state = self
            .clients
            .iter_mut()
            .find(|c| c.name == client)
            .ok_or_else(|| {
                format!(
                    "{client} has not connected yet (a client connects by sending: `{client} >>>`)"
                )
            })?;
        loop {
            if let Some(item) = state
                .reader
                .next_item()
                .map_err(|error| format!("{client} received bytes that are not STOMP: {error}"))?
            {
                return Ok(Next::Item(item));
            }
            if state.server_closed {
                return Ok(Next::Closed);
            }
            let Some(connection) = state.connection.as_mut() else {
                return Err(format!("{client} has no open connection"));
            };
            match tokio::time::timeout_at(deadline, connection.recv()).await {
                Ok(Some(bytes)) => state.reader.push(&bytes),
                Ok(None) => {
                    state.server_closed = true;
                    return Ok(Next::Closed);
                }
                Err(_) => return Ok(Next::TimedOut),
            }
        }
    }

    // ---- bookkeeping ----

    fn client(&mut self, line: usize, client: &str) -> Result<&mut ClientState, Failure> {
        match self.clients.iter().position(|c| c.name == client) {
            Some(index) => Ok(&mut self.clients[index]),
            None => Err(self.failure(line, format!("{client} has not connected yet"))),
        }
    }

    fn record(&mut self, text: &str) {
        if !self.log.is_empty() {
            self.log.push('\n');
        }
        self.log.push_str(text);
        self.log.push('\n');
    }

    fn failure(&self, line: usize, message: String) -> Failure {
        Failure {
            transcript: self.transcript.name.clone(),
            combination: self.combination,
            line,
            message,
            recorded: self.log.clone(),
        }
    }
}

/// Compares a normalised frame with what the transcript expects; why they differ, if so.
fn compare(expected: &ExpectedFrame, actual: &NormalFrame) -> Result<(), String> {
    let mut problems = Vec::new();
    if expected.command != actual.command {
        problems.push(format!(
            "command {} instead of {}",
            actual.command, expected.command
        ));
    }
    let mut unmatched: Vec<&(String, String)> = actual.headers.iter().collect();
    for header in &expected.headers {
        match unmatched.iter().position(|h| *h == header) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => problems.push(format!(
                "header {}:{} missing or different",
                header.0, header.1
            )),
        }
    }
    if !expected.other_headers_ignored {
        // content-length is checked by the reader itself; only compared when written down.
        let content_length_listed = expected
            .headers
            .iter()
            .any(|(name, _)| name == "content-length");
        for (name, value) in unmatched {
            if name != "content-length" || content_length_listed {
                problems.push(format!(
                    "unexpected header {name}:{value} (add `...` to ignore other headers)"
                ));
            }
        }
    }
    if expected
        .body
        .as_ref()
        .is_some_and(|body| *body != actual.body)
    {
        problems.push("the body differs".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn render_expected(frame: &ExpectedFrame) -> String {
    let mut out = format!("{}\n", frame.command);
    for (name, value) in &frame.headers {
        out.push_str(&format!("{name}:{value}\n"));
    }
    if frame.other_headers_ignored {
        out.push_str("...\n");
    }
    out.push('\n');
    match &frame.body {
        Some(body) => out.push_str(&escape_text(body)),
        None => out.push_str("..."),
    }
    out.push_str("^@");
    out
}

/// A sent chunk in transcript syntax, placeholders as written (`{token:alice}`): a line
/// break follows every `^@` (transcript lines ending in `^@` add no newline), so an LF the
/// client really sent right after a NUL shows as `^J`, and a chunk that does not end with a
/// NUL or a newline ends with `^.`.
fn display_chunk(chunk: &Template) -> String {
    let mut text = String::new();
    let mut previous_nul = false;
    let mut ends_with_newline = false;
    for part in &chunk.parts {
        let piece = match part {
            Part::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Part::Placeholder(placeholder) => {
                if std::mem::take(&mut previous_nul) {
                    text.push('\n');
                }
                text.push_str(&placeholder.to_string());
                ends_with_newline = false;
                continue;
            }
        };
        for c in piece.chars() {
            if std::mem::take(&mut previous_nul) {
                text.push('\n');
                if c == '\n' {
                    text.push_str("^J");
                    ends_with_newline = false;
                    continue;
                }
            }
            text.push_str(&escape_text(&c.to_string()));
            previous_nul = c == '\0';
            ends_with_newline = c == '\n';
        }
    }
    if previous_nul {
        text
    } else if ends_with_newline {
        // The block's last line adds one newline; blank lines at a block's end are not part
        // of it, so further trailing newlines are written as ^J.
        let trimmed = text.trim_end_matches('\n');
        let newlines = text.len() - trimmed.len();
        if trimmed.is_empty() {
            format!("{}^.", "^J".repeat(newlines))
        } else {
            format!("{trimmed}{}", "^J".repeat(newlines - 1))
        }
    } else {
        text + "^."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{Action, parse};

    fn round_trip(block: &str) {
        let parsed = parse("t", &format!("alice >>>\n{block}\n")).expect("parses");
        let Action::Send { chunk, .. } = &parsed.steps[0].action else {
            panic!("a send");
        };
        let shown = display_chunk(chunk);
        assert_eq!(shown, block);
        let again = parse("t", &format!("alice >>>\n{shown}\n")).expect("parses again");
        let Action::Send { chunk: again, .. } = &again.steps[0].action else {
            panic!("a send");
        };
        assert_eq!(again, chunk);
    }

    #[test]
    fn sent_chunks_display_as_written() {
        round_trip("CONNECT\nAuthorization:Bearer {token:alice}\n\n^@");
        round_trip("SEND\n\n{}^@\nSEND\n\n{}^@");
        round_trip("SUBSCRIBE\ndestination:/sub/chan^.");
        round_trip("x^@\n^J^J");
        round_trip("x^@\n^J^.");
        round_trip("CONNECT^M\n^M\n^@");
        round_trip("^J^.");
        round_trip("^J^J^.");
    }
}
