//! Slash commands typed on the input line, parsed without side effects.
//!
//! A submitted line is either a chat message or a command; [`parse`] decides which and checks
//! the arguments, and the model carries the command out. A line that starts with `//` is a
//! message that starts with `/` (the IRC convention), so nothing is impossible to say.

use thiserror::Error;

/// The longest nickname accepted, in bytes, as for `--nick`: it travels in every raw datagram.
pub const MAX_NICK_BYTES: usize = 32;

/// One line of help, shown for `/help` and after an unknown command.
pub const COMMAND_SUMMARY: &str =
    "commands: /help  /quit  /nick NAME  /stats  /mode  /clear  (//text sends \"/text\")";

/// A slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/help`: list the commands and keys.
    Help,
    /// `/quit` (also `/exit`): leave the chat, finishing what the mode promises to finish.
    Quit,
    /// `/nick NAME`: change the nickname.
    Nick(String),
    /// `/stats`: show the transport's counters as a table.
    Stats,
    /// `/mode`: show the transport mode and how to use the other one.
    Mode,
    /// `/clear`: empty the history on screen.
    Clear,
}

/// What a submitted line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text to send to the peer.
    Message(String),
    /// A command to carry out.
    Command(Command),
}

/// Why a line that looked like a command is not one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// The command name is not known.
    #[error("unknown command /{0}; {COMMAND_SUMMARY}")]
    Unknown(String),
    /// `/nick` without a name.
    #[error("usage: /nick NAME")]
    MissingNick,
    /// A nickname that is too long or contains spaces or control characters.
    #[error("bad nickname: {0}")]
    BadNick(String),
    /// A command that takes no arguments was given some.
    #[error("/{0} takes no arguments")]
    UnexpectedArgument(&'static str),
}

/// Parses a submitted line.
pub fn parse(line: &str) -> Result<Input, CommandError> {
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Input::Message(line.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Input::Message(rest.to_owned()));
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (rest, ""),
    };
    let no_args = |command: Command, name: &'static str| {
        if args.is_empty() {
            Ok(Input::Command(command))
        } else {
            Err(CommandError::UnexpectedArgument(name))
        }
    };
    match name.to_ascii_lowercase().as_str() {
        "help" | "?" => no_args(Command::Help, "help"),
        "quit" | "exit" => no_args(Command::Quit, "quit"),
        "stats" => no_args(Command::Stats, "stats"),
        "mode" => no_args(Command::Mode, "mode"),
        "clear" => no_args(Command::Clear, "clear"),
        "nick" => parse_nick(args).map(|nick| Input::Command(Command::Nick(nick))),
        _ => Err(CommandError::Unknown(name.to_owned())),
    }
}

/// Checks a nickname as `--nick` does: one word of at most [`MAX_NICK_BYTES`] bytes, no control
/// characters.
pub fn parse_nick(args: &str) -> Result<String, CommandError> {
    if args.is_empty() {
        return Err(CommandError::MissingNick);
    }
    if args.chars().any(char::is_whitespace) {
        return Err(CommandError::BadNick("one word, no spaces".into()));
    }
    if args.chars().any(char::is_control) {
        return Err(CommandError::BadNick("no control characters".into()));
    }
    if args.len() > MAX_NICK_BYTES {
        return Err(CommandError::BadNick(format!(
            "at most {MAX_NICK_BYTES} bytes"
        )));
    }
    Ok(args.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_text_is_a_message() {
        assert_eq!(
            parse("hello /there"),
            Ok(Input::Message("hello /there".into()))
        );
        assert_eq!(parse(" /quit"), Ok(Input::Message(" /quit".into())));
    }

    #[test]
    fn double_slash_sends_a_slash() {
        assert_eq!(parse("//quit"), Ok(Input::Message("/quit".into())));
    }

    #[test]
    fn each_command_parses() {
        assert_eq!(parse("/help"), Ok(Input::Command(Command::Help)));
        assert_eq!(parse("/quit"), Ok(Input::Command(Command::Quit)));
        assert_eq!(parse("/exit"), Ok(Input::Command(Command::Quit)));
        assert_eq!(parse("/stats"), Ok(Input::Command(Command::Stats)));
        assert_eq!(parse("/mode"), Ok(Input::Command(Command::Mode)));
        assert_eq!(parse("/clear  "), Ok(Input::Command(Command::Clear)));
        assert_eq!(parse("/QUIT"), Ok(Input::Command(Command::Quit)));
        assert_eq!(
            parse("/nick   alice "),
            Ok(Input::Command(Command::Nick("alice".into())))
        );
        assert_eq!(
            parse("/nick 東京"),
            Ok(Input::Command(Command::Nick("東京".into())))
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(parse("/nick"), Err(CommandError::MissingNick));
        assert_eq!(parse("/nick  "), Err(CommandError::MissingNick));
        assert!(matches!(parse("/nick a b"), Err(CommandError::BadNick(_))));
        assert!(matches!(
            parse(&format!("/nick {}", "x".repeat(MAX_NICK_BYTES + 1))),
            Err(CommandError::BadNick(_))
        ));
        assert!(parse(&format!("/nick {}", "x".repeat(MAX_NICK_BYTES))).is_ok());
        // Bytes, not characters: eleven three-byte characters are too many.
        assert!(matches!(
            parse(&format!("/nick {}", "東".repeat(11))),
            Err(CommandError::BadNick(_))
        ));
        assert!(matches!(
            parse("/nick a\u{7}"),
            Err(CommandError::BadNick(_))
        ));
        assert_eq!(
            parse("/quit now"),
            Err(CommandError::UnexpectedArgument("quit"))
        );
    }

    #[test]
    fn unknown_commands_get_the_one_line_help() {
        let err = parse("/frobnicate x").unwrap_err();
        assert_eq!(err, CommandError::Unknown("frobnicate".into()));
        let text = err.to_string();
        assert!(text.contains("/frobnicate"));
        assert!(text.contains("/help") && text.contains("/nick NAME"));
        assert!(!text.contains('\n'));
        assert_eq!(parse("/"), Err(CommandError::Unknown(String::new())));
    }
}
