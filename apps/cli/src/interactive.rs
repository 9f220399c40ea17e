//! The interactive prompt: each line is sent to the room; `/room ID` moves to another room,
//! `/history [N]` prints the room's newest N stored messages, `/quit` (or Ctrl-D) leaves.
//! The line editor (rustyline) runs on a thread of its own, since it blocks; messages arrive
//! meanwhile and are printed above the prompt.

use crate::error::CliError;
use crate::link::Stomp;
use crate::{Session, output};
use rtchat_stomp::{Command, Frame};
use rustyline::ExternalPrinter as _;
use rustyline::error::ReadlineError;

/// Newest messages `/history` shows without a number.
const HISTORY: u32 = 10;

/// What the user typed.
#[derive(Debug, PartialEq, Eq)]
enum Input<'a> {
    Say(&'a str),
    Room(&'a str),
    History(u32),
    Quit,
    Nothing,
    Unknown(&'a str),
}

fn parse(line: &str) -> Input<'_> {
    let line = line.trim();
    let Some(command) = line.strip_prefix('/') else {
        return if line.is_empty() {
            Input::Nothing
        } else {
            Input::Say(line)
        };
    };
    let (name, argument) = command
        .split_once(char::is_whitespace)
        .map_or((command, ""), |(name, rest)| (name, rest.trim()));
    match (name, argument) {
        ("quit" | "exit", _) => Input::Quit,
        ("room", room) if valid_room(room) => Input::Room(room),
        ("history", "") => Input::History(HISTORY),
        ("history", count) => match count.parse() {
            Ok(count @ 1..=100) => Input::History(count),
            _ => Input::Unknown(line),
        },
        _ => Input::Unknown(line),
    }
}

/// Room ids are 1 to 64 of `[A-Za-z0-9_-]` (they go into a destination and a query string).
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Where lines go: above the prompt on a terminal, plain stdout otherwise.
type Printer = Box<dyn FnMut(String) + Send>;

/// Runs the prompt until `/quit`, Ctrl-D or an error.
pub async fn run(
    mut stomp: Stomp,
    mut session: Session,
    since_seq: Option<u64>,
) -> Result<(), CliError> {
    let terminal = |error: ReadlineError| CliError::Terminal(error.to_string());
    let mut editor = rustyline::DefaultEditor::new().map_err(terminal)?;
    let mut print: Printer = match editor.create_external_printer() {
        Ok(mut printer) => Box::new(move |line: String| {
            if printer.print(format!("{line}\n")).is_err() {
                println!("{line}");
            }
        }),
        Err(_) => Box::new(|line: String| println!("{line}")),
    };
    let (lines_in, mut lines) = tokio::sync::mpsc::channel::<Option<String>>(16);
    std::thread::spawn(move || {
        loop {
            match editor.readline("> ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    if lines_in.blocking_send(Some(line)).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    // Ctrl-C, Ctrl-D, or stdin ended.
                    let _ = lines_in.blocking_send(None);
                    return;
                }
            }
        }
    });

    let mut subscription = 0u64;
    stomp
        .send(crate::subscribe(&session.room, since_seq).header("receipt", "joined"))
        .await?;
    eprintln!(
        "rtchat-cli: in {} over {}; type to chat, /room ID, /history [N], /quit",
        session.room,
        stomp.transport()
    );
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(Some(line)) = line else { break };
                match parse(&line) {
                    Input::Quit => break,
                    Input::Nothing => {}
                    Input::Say(text) => stomp.send(crate::send(&session.room, text)).await?,
                    Input::Room(room) => {
                        stomp
                            .send(Frame::new(Command::Unsubscribe).header("id", subscription.to_string()))
                            .await?;
                        subscription += 1;
                        room.clone_into(&mut session.room);
                        stomp
                            .send(
                                Frame::new(Command::Subscribe)
                                    .header("id", subscription.to_string())
                                    .header("destination", format!("/sub/channel/{room}")),
                            )
                            .await?;
                        eprintln!("rtchat-cli: now in {room}");
                    }
                    Input::History(count) => history(&session, count, &mut print).await?,
                    Input::Unknown(line) => eprintln!(
                        "rtchat-cli: unknown command {line:?}: /room ID, /history [1-100], /quit"
                    ),
                }
            }
            frame = stomp.next_frame() => {
                let Some(frame) = frame? else {
                    return Err(CliError::Closed("messages"));
                };
                let current = frame.get("subscription") == Some(subscription.to_string().as_str());
                if current && let Some(message) = output::chat_message(&frame) {
                    print(output::line(&message, session.json));
                }
            }
        }
    }
    stomp.disconnect(|_| {}).await
}

/// Prints the room's newest `count` stored messages, oldest first.
async fn history(session: &Session, count: u32, print: &mut Printer) -> Result<(), CliError> {
    let answer = session
        .api
        .get(
            &format!("/message?roomId={}&limit={count}", session.room),
            Some(&session.token),
        )
        .await?;
    match answer.body["response"].as_array() {
        Some(messages) => {
            for message in messages.iter().rev() {
                print(output::line(message, session.json));
            }
        }
        None => eprintln!("rtchat-cli: no history: {}", answer.message()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_messages_or_commands() {
        assert_eq!(parse("  hello /there "), Input::Say("hello /there"));
        assert_eq!(parse(""), Input::Nothing);
        assert_eq!(parse("/quit"), Input::Quit);
        assert_eq!(parse("/room garden"), Input::Room("garden"));
        assert_eq!(parse("/room   a-b_c "), Input::Room("a-b_c"));
        assert_eq!(parse("/history"), Input::History(HISTORY));
        assert_eq!(parse("/history 25"), Input::History(25));
        for unknown in [
            "/room",
            "/room a&b=c",
            "/history 0",
            "/history 101",
            "/history x",
            "/dance",
        ] {
            assert!(matches!(parse(unknown), Input::Unknown(_)), "{unknown:?}");
        }
    }
}
