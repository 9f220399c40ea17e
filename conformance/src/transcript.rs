//! Transcript files: parsing `*.stomp` text into [`Step`]s.
//!
//! The format is described in `docs/conformance.md`. In short: a transcript is a sequence of
//! steps, each introduced by a step line (`alice >>>`, `alice <<<`, `alice closed`,
//! `alice close`, `alice silent`, `wait 300ms`, `config: key=value`); `>>>` and `<<<` are
//! followed by a block of frame text that runs to the next step line, comment line or the end
//! of the file. In frame text `^@` is the NUL byte that ends a frame.

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// A parsed transcript.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// The file name without `.stomp`, e.g. `01-connect`: also the snapshot's name.
    pub name: String,
    /// The comment lines at the top of the file, without `# `.
    pub description: String,
    /// Server settings, from `config:` lines.
    pub settings: Vec<Setting>,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

/// One `config: key=value` line: a [`rtchat_server::ServerConfig`] field for this transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `heart-beat=SX,SY` (milliseconds).
    HeartBeat(String),
    /// `max-message-chars=N`.
    MaxMessageChars(usize),
    /// `max-sends-per-second=N`.
    MaxSendsPerSecond(u32),
    /// `max-frame-bytes=N`.
    MaxFrameBytes(usize),
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::HeartBeat(value) => write!(f, "heart-beat={value}"),
            Setting::MaxMessageChars(n) => write!(f, "max-message-chars={n}"),
            Setting::MaxSendsPerSecond(n) => write!(f, "max-sends-per-second={n}"),
            Setting::MaxFrameBytes(n) => write!(f, "max-frame-bytes={n}"),
        }
    }
}

/// One step, with the line it starts on (for error messages).
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line number of the step line.
    pub line: usize,
    /// What to do.
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// `NAME >>>`: the client sends these bytes as one transport message (opening its
    /// connection first if it has none).
    Send {
        /// The client's name in the transcript.
        client: String,
        /// What it sends.
        chunk: Template,
    },
    /// `NAME <<<`: the client must receive these, in order.
    Expect {
        /// The client's name in the transcript.
        client: String,
        /// What it must receive, in order.
        items: Vec<Expected>,
    },
    /// `NAME closed`: the server must close the client's connection.
    Closed {
        /// The client's name in the transcript.
        client: String,
    },
    /// `NAME close`: the client closes its connection.
    Close {
        /// The client's name in the transcript.
        client: String,
    },
    /// `NAME silent`: no frame may arrive for a short while.
    Silent {
        /// The client's name in the transcript.
        client: String,
    },
    /// `wait Nms`: let time pass (heart-beat transcripts only).
    Wait(Duration),
}

/// Client bytes with placeholders, resolved when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces, in order.
    pub parts: Vec<Part>,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes sent as they are.
    Bytes(Vec<u8>),
    /// A value known only when the transcript runs.
    Placeholder(Placeholder),
}

/// A value substituted into client bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{token:NAME}`: a valid token for the named user.
    Token(String),
    /// `{expired-token:NAME}`: a token for the named user, signed by the server's secret,
    /// that expired an hour ago.
    ExpiredToken(String),
    /// `{bad-token}`: a well-formed token signed with another secret.
    BadToken,
    /// `{id-N}`, `{ack-N}`, `{msg-N}`: the real value the recording shows as `<id-N>`, ...
    Seen {
        /// `id`, `ack` or `msg`.
        kind: String,
        /// Which of the values of that kind seen so far (from 1).
        index: usize,
    },
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Token(name) => write!(f, "{{token:{name}}}"),
            Placeholder::ExpiredToken(name) => write!(f, "{{expired-token:{name}}}"),
            Placeholder::BadToken => write!(f, "{{bad-token}}"),
            Placeholder::Seen { kind, index } => write!(f, "{{{kind}-{index}}}"),
        }
    }
}

/// The kinds of normalised values a client may quote back (`{id-1}`, `{ack-2}`, `{msg-3}`).
pub const SEEN_KINDS: [&str; 3] = ["id", "ack", "msg"];

/// One thing a client must receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// `(heart-beat)`: one or more heart-beat EOLs.
    HeartBeat {
        /// The transcript line it was written on.
        line: usize,
    },
    /// A frame.
    Frame(ExpectedFrame),
}

/// An expected frame, compared with the normalised received one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFrame {
    /// Line of the command.
    pub line: usize,
    /// The command, e.g. `MESSAGE`.
    pub command: String,
    /// Header lines as written (`name`, `value`), in order.
    pub headers: Vec<(String, String)>,
    /// A `...` header line was given: headers not listed are not compared.
    pub other_headers_ignored: bool,
    /// The body; `None` when written as `...` (not compared).
    pub body: Option<String>,
}

/// A transcript that cannot be parsed: the file, the line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The transcript's name.
    pub transcript: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.stomp:{}: {}",
            self.transcript, self.line, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Marks the end of a frame in frame text.
pub const NUL_MARK: &str = "^@";
/// At the end of a `>>>` line: the chunk goes on without a newline here.
pub const NO_NEWLINE_MARK: &str = "^.";
/// The header line (or body) that means "not compared".
pub const IGNORED_MARK: &str = "...";
/// An expected heart-beat.
pub const HEART_BEAT_MARK: &str = "(heart-beat)";

/// Reads and parses `path`; the transcript is named after the file.
pub fn load(path: &Path) -> Result<Transcript, ParseError> {
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|error| ParseError {
        transcript: name.clone(),
        line: 0,
        message: format!("cannot read {}: {error}", path.display()),
    })?;
    parse(&name, &text)
}

/// The kind of a line outside blocks.
enum StepLine<'a> {
    Comment,
    Blank,
    Config(&'a str),
    Wait(&'a str),
    Client { client: &'a str, verb: &'a str },
}

fn classify(line: &str) -> Option<StepLine<'_>> {
    if line.starts_with('#') {
        return Some(StepLine::Comment);
    }
    if line.trim().is_empty() {
        return Some(StepLine::Blank);
    }
    if let Some(rest) = line.strip_prefix("config:") {
        return Some(StepLine::Config(rest.trim()));
    }
    if let Some(rest) = line.strip_prefix("wait ") {
        return Some(StepLine::Wait(rest.trim()));
    }
    let (client, verb) = line.split_once(' ')?;
    let is_name = !client.is_empty()
        && client
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let is_verb = matches!(verb, ">>>" | "<<<" | "closed" | "close" | "silent");
    (is_name && is_verb).then_some(StepLine::Client { client, verb })
}

/// Parses transcript text.
pub fn parse(name: &str, text: &str) -> Result<Transcript, ParseError> {
    let error = |line: usize, message: String| ParseError {
        transcript: name.to_owned(),
        line,
        message,
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut description = Vec::new();
    let mut in_header_comment = true;
    let mut settings = Vec::new();
    let mut steps = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let number = index + 1;
        let line = lines[index];
        index += 1;
        let Some(kind) = classify(line) else {
            return Err(error(
                number,
                format!(
                    "expected a step (`alice >>>`, `alice <<<`, `alice closed`, `alice close`, `alice silent`, `wait 100ms`, `config: ...`) or a comment, found {line:?}"
                ),
            ));
        };
        match kind {
            StepLine::Comment => {
                if in_header_comment {
                    description.push(line.trim_start_matches('#').trim().to_owned());
                }
                continue;
            }
            StepLine::Blank => {
                in_header_comment = false;
                continue;
            }
            _ => in_header_comment = false,
        }
        let action = match kind {
            StepLine::Comment | StepLine::Blank => continue,
            StepLine::Config(setting) => {
                if !steps.is_empty() {
                    return Err(error(
                        number,
                        "config: lines must come before every step".to_owned(),
                    ));
                }
                settings.push(parse_setting(setting).map_err(|message| error(number, message))?);
                continue;
            }
            StepLine::Wait(duration) => {
                let millis = duration
                    .strip_suffix("ms")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| {
                        error(number, format!("expected `wait <N>ms`, found {line:?}"))
                    })?;
                Action::Wait(Duration::from_millis(millis))
            }
            StepLine::Client { client, verb } => {
                let client = client.to_owned();
                match verb {
                    ">>>" | "<<<" => {
                        let start = index;
                        while index < lines.len() && !ends_block(lines[index]) {
                            index += 1;
                        }
                        let mut block = &lines[start..index];
                        while let Some((last, rest)) = block.split_last() {
                            if last.trim().is_empty() {
                                block = rest;
                            } else {
                                break;
                            }
                        }
                        if block.is_empty() {
                            return Err(error(
                                number,
                                format!("`{line}` needs frame text on the lines after it"),
                            ));
                        }
                        if verb == ">>>" {
                            let chunk = parse_chunk(block)
                                .map_err(|(offset, message)| error(start + offset + 1, message))?;
                            Action::Send { client, chunk }
                        } else {
                            let items = parse_expected(block, start + 1)
                                .map_err(|(line, message)| error(line, message))?;
                            Action::Expect { client, items }
                        }
                    }
                    "closed" => Action::Closed { client },
                    "close" => Action::Close { client },
                    _ => Action::Silent { client },
                }
            }
        };
        steps.push(Step {
            line: number,
            action,
        });
    }
    if steps.is_empty() {
        return Err(error(1, "a transcript needs at least one step".to_owned()));
    }
    Ok(Transcript {
        name: name.to_owned(),
        description: description.join("\n").trim().to_owned(),
        settings,
        steps,
    })
}

/// A block runs until a step line or a comment line.
fn ends_block(line: &str) -> bool {
    matches!(
        classify(line),
        Some(StepLine::Comment | StepLine::Config(_) | StepLine::Wait(_) | StepLine::Client { .. })
    )
}

fn parse_setting(setting: &str) -> Result<Setting, String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("expected `config: key=value`, found {setting:?}"))?;
    let (key, value) = (key.trim(), value.trim());
    let number = |value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| format!("config: {key} needs a number, found {value:?}"))
    };
    let too_big = |_| format!("config: {key}={value} is too large");
    match key {
        "heart-beat" => {
            let valid = value.split_once(',').is_some_and(|(x, y)| {
                x.trim().parse::<u64>().is_ok() && y.trim().parse::<u64>().is_ok()
            });
            if valid {
                Ok(Setting::HeartBeat(value.to_owned()))
            } else {
                Err(format!(
                    "config: heart-beat needs `SX,SY` in milliseconds, found {value:?}"
                ))
            }
        }
        "max-message-chars" => Ok(Setting::MaxMessageChars(
            usize::try_from(number(value)?).map_err(too_big)?,
        )),
        "max-sends-per-second" => Ok(Setting::MaxSendsPerSecond(
            u32::try_from(number(value)?).map_err(too_big)?,
        )),
        "max-frame-bytes" => Ok(Setting::MaxFrameBytes(
            usize::try_from(number(value)?).map_err(too_big)?,
        )),
        _ => Err(format!(
            "unknown config key {key:?} (known: heart-beat, max-message-chars, max-sends-per-second, max-frame-bytes)"
        )),
    }
}

/// A `>>>` block: lines joined with `\n`, except after a line ending in `^@` (the frame ends
/// there) or `^.` (removed; the chunk goes on, or ends, without a newline).
fn parse_chunk(block: &[&str]) -> Result<Template, (usize, String)> {
    let mut builder = TemplateBuilder::default();
    for (offset, line) in block.iter().enumerate() {
        let (line, newline) = match line.strip_suffix(NO_NEWLINE_MARK) {
            Some(rest) => (rest, false),
            None => (*line, !line.ends_with(NUL_MARK)),
        };
        builder
            .push_text(line)
            .map_err(|message| (offset, message))?;
        if newline {
            builder.push_bytes(b"\n");
        }
    }
    Ok(builder.finish())
}

/// Parses escapes (`^@` NUL, `^M` CR, `^J` LF, `^^` caret) and placeholders in a line.
#[derive(Default)]
struct TemplateBuilder {
    parts: Vec<Part>,
    bytes: Vec<u8>,
}

impl TemplateBuilder {
    fn push_bytes(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn push_text(&mut self, text: &str) -> Result<(), String> {
        let mut rest = text;
        while let Some(at) = rest.find(['^', '{']) {
            self.push_bytes(&rest.as_bytes()[..at]);
            let tail = &rest[at..];
            if let Some(escaped) = tail.strip_prefix('^') {
                let byte = match escaped.chars().next() {
                    Some('@') => 0,
                    Some('M') => b'\r',
                    Some('J') => b'\n',
                    Some('^') => b'^',
                    other => {
                        return Err(format!(
                            "unknown escape ^{} (known: ^@ NUL, ^M CR, ^J LF, ^^ caret, ^. at a line's end)",
                            other.map(String::from).unwrap_or_default()
                        ));
                    }
                };
                self.bytes.push(byte);
                rest = &escaped[1..];
            } else if let Some((placeholder, after)) = placeholder_at(tail)? {
                self.flush();
                self.parts.push(Part::Placeholder(placeholder));
                rest = after;
            } else {
                self.bytes.push(b'{');
                rest = &tail[1..];
            }
        }
        self.push_bytes(rest.as_bytes());
        Ok(())
    }

    fn flush(&mut self) {
        if !self.bytes.is_empty() {
            self.parts
                .push(Part::Bytes(std::mem::take(&mut self.bytes)));
        }
    }

    fn finish(mut self) -> Template {
        self.flush();
        Template { parts: self.parts }
    }
}

/// A placeholder at the start of `text` (which starts with `{`), and what follows it.
/// `Ok(None)` when the brace starts no placeholder (e.g. JSON); an error for a brace that
/// looks like a placeholder but names an unknown one.
fn placeholder_at(text: &str) -> Result<Option<(Placeholder, &str)>, String> {
    let Some(end) = text.find('}') else {
        return Ok(None);
    };
    let inner = &text[1..end];
    let looks_like_placeholder = !inner.is_empty()
        && inner.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b':' || b == b'_'
        });
    if !looks_like_placeholder {
        return Ok(None);
    }
    let after = &text[end + 1..];
    let placeholder = if let Some(name) = inner.strip_prefix("token:") {
        Placeholder::Token(name.to_owned())
    } else if let Some(name) = inner.strip_prefix("expired-token:") {
        Placeholder::ExpiredToken(name.to_owned())
    } else if inner == "bad-token" {
        Placeholder::BadToken
    } else if let Some((kind, index)) = inner
        .rsplit_once('-')
        .filter(|(kind, _)| SEEN_KINDS.contains(kind))
        .and_then(|(kind, n)| Some((kind, n.parse::<usize>().ok().filter(|&n| n > 0)?)))
    {
        Placeholder::Seen {
            kind: kind.to_owned(),
            index,
        }
    } else {
        return Err(format!(
            "unknown placeholder {{{inner}}} (known: {{token:NAME}}, {{expired-token:NAME}}, {{bad-token}}, {{id-N}}, {{ack-N}}, {{msg-N}})"
        ));
    };
    Ok(Some((placeholder, after)))
}

/// A `<<<` block: frames (each ending with `^@`) and `(heart-beat)` lines.
fn parse_expected(block: &[&str], first_line: usize) -> Result<Vec<Expected>, (usize, String)> {
    let mut items = Vec::new();
    let mut index = 0;
    while index < block.len() {
        let number = first_line + index;
        let line = block[index];
        index += 1;
        if line.trim().is_empty() {
            continue;
        }
        if line == HEART_BEAT_MARK {
            items.push(Expected::HeartBeat { line: number });
            continue;
        }
        // The command line; `RECEIPT^@` style one-liners are allowed too.
        let (command, mut ended) = match line.strip_suffix(NUL_MARK) {
            Some(command) => (command, true),
            None => (line, false),
        };
        if command.is_empty() || !command.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err((
                number,
                format!("expected a STOMP command or (heart-beat), found {line:?}"),
            ));
        }
        let mut frame = ExpectedFrame {
            line: number,
            command: command.to_owned(),
            headers: Vec::new(),
            other_headers_ignored: false,
            body: Some(String::new()),
        };
        // Headers, up to the blank line (or a header line ending the frame with ^@).
        while !ended {
            let Some(line) = block.get(index) else {
                return Err((number, format!("frame {command} has no ^@ at its end")));
            };
            index += 1;
            if line.is_empty() {
                break;
            }
            let (header, ends_frame) = match line.strip_suffix(NUL_MARK) {
                Some(header) => (header, true),
                None => (*line, false),
            };
            ended = ends_frame;
            if header == IGNORED_MARK {
                frame.other_headers_ignored = true;
            } else if let Some((name, value)) = header.split_once(':') {
                frame.headers.push((name.to_owned(), value.to_owned()));
            } else if !header.is_empty() {
                return Err((
                    first_line + index - 1,
                    format!(
                        "expected a header line `name:value`, `...` or a blank line, found {line:?}"
                    ),
                ));
            }
        }
        // The body, up to and including the line that ends with ^@.
        if !ended {
            let mut body = String::new();
            loop {
                let Some(line) = block.get(index) else {
                    return Err((number, format!("frame {command} has no ^@ at its end")));
                };
                index += 1;
                match line.strip_suffix(NUL_MARK) {
                    Some(last) => {
                        body.push_str(last);
                        break;
                    }
                    None => {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
            frame.body = (body != IGNORED_MARK).then_some(body);
        }
        items.push(Expected::Frame(frame));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(template: &Template) -> Vec<u8> {
        template
            .parts
            .iter()
            .flat_map(|part| match part {
                Part::Bytes(bytes) => bytes.clone(),
                Part::Placeholder(p) => p.to_string().into_bytes(),
            })
            .collect()
    }

    #[test]
    fn parses_sends_expectations_and_directives() {
        let text = "# Title line\n# more\n\nconfig: max-frame-bytes=100\n\nalice >>>\nCONNECT\nAuthorization:Bearer {token:alice}\n\n^@\n\nalice <<<\nCONNECTED\nversion:1.2\n...\n\n^@\nalice <<<\nMESSAGE\n...\n\n{\"a\":1}^@\n(heart-beat)\nbob silent\nwait 20ms\nbob close\nalice closed\n";
        let transcript = parse("t", text).expect("parses");
        assert_eq!(transcript.description, "Title line\nmore");
        assert_eq!(transcript.settings, vec![Setting::MaxFrameBytes(100)]);
        assert_eq!(transcript.steps.len(), 7);
        let Action::Send { client, chunk } = &transcript.steps[0].action else {
            panic!("send expected");
        };
        assert_eq!(client, "alice");
        assert_eq!(
            bytes_of(chunk),
            b"CONNECT\nAuthorization:Bearer {token:alice}\n\n\0".to_vec()
        );
        let Action::Expect { items, .. } = &transcript.steps[1].action else {
            panic!("expect expected");
        };
        let Expected::Frame(frame) = &items[0] else {
            panic!("frame expected");
        };
        assert!(frame.other_headers_ignored);
        assert_eq!(frame.body.as_deref(), Some(""));
        let Action::Expect { items, .. } = &transcript.steps[2].action else {
            panic!("expect expected");
        };
        assert_eq!(items.len(), 2);
        let Expected::Frame(frame) = &items[0] else {
            panic!("frame expected");
        };
        assert_eq!(frame.body.as_deref(), Some("{\"a\":1}"));
        assert!(matches!(transcript.steps[6].action, Action::Closed { .. }));
    }

    #[test]
    fn escapes_and_partial_chunks() {
        let transcript = parse("t", "alice >>>\nSEND^M\nx:{id-2}^.\n").expect("parses");
        let Action::Send { chunk, .. } = &transcript.steps[0].action else {
            panic!("send expected");
        };
        assert_eq!(
            chunk.parts,
            vec![
                Part::Bytes(b"SEND\r\nx:".to_vec()),
                Part::Placeholder(Placeholder::Seen {
                    kind: "id".into(),
                    index: 2
                })
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let error = parse(
            "t",
            "alice >>>\nCONNECT\n{token:nobody-knows-this:x}{wat}\n",
        )
        .expect_err("unknown placeholder");
        assert_eq!(error.line, 3);
        let error = parse("t", "alice <<<\nCONNECTED\nversion:1.2\n").expect_err("no NUL");
        assert_eq!(error.line, 2);
        let error = parse("t", "hello\n").expect_err("not a step");
        assert_eq!(error.line, 1);
    }
}
