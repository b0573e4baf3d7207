//! Prompts on the controlling terminal (`/dev/tty`) for approvals and passphrases, never on
//! stdin/stdout, so a program piping input cannot answer them.

use super::ApprovalError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

const TTY: &str = "/dev/tty";
/// Longest answer line read; anything longer is refused rather than buffered without end.
const MAX_LINE: usize = 4096;

/// The controlling terminal (/dev/tty), never stdin/stdout: a program piping input cannot
/// answer these prompts.
#[derive(Debug)]
pub struct Terminal {
    tty: File,
}

fn io(e: std::io::Error) -> ApprovalError {
    ApprovalError::Io(format!("terminal: {e}"))
}

impl Terminal {
    /// Opens the controlling terminal for reading and writing. `command` names what needs it
    /// (e.g. "airlock approve") in the error a caller without a terminal gets.
    pub fn open(command: &str) -> Result<Self, ApprovalError> {
        let tty = OpenOptions::new().read(true).write(true).open(TTY).map_err(|e| {
            ApprovalError::NoTerminal(format!(
                "{command} needs a terminal (/dev/tty): run it yourself in a terminal; there is no flag or variable that skips this ({e})"
            ))
        })?;
        Ok(Self { tty })
    }

    /// Writes `text` to the terminal as is.
    pub fn say(&mut self, text: &str) -> Result<(), ApprovalError> {
        self.tty
            .write_all(text.as_bytes())
            .and_then(|()| self.tty.flush())
            .map_err(io)
    }

    /// Shows `prompt` and reads one echoed line, without its line ending.
    pub fn ask_line(&mut self, prompt: &str) -> Result<String, ApprovalError> {
        self.say(prompt)?;
        // Byte by byte, so nothing typed after the newline is taken from a later prompt.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.tty.read(&mut byte) {
                Ok(0) if line.is_empty() => {
                    return Err(ApprovalError::Io("terminal closed (end of input)".into()));
                }
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) if line.len() >= MAX_LINE => {
                    return Err(ApprovalError::Io("answer too long".into()));
                }
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| ApprovalError::Io("the answer is not UTF-8".into()))
    }

    /// Shows `prompt` and reads a line with echo off (via `rpassword` on `/dev/tty`), without
    /// its line ending.
    pub fn ask_secret(&mut self, prompt: &str) -> Result<String, ApprovalError> {
        let config = rpassword::ConfigBuilder::new()
            .input_file_path(TTY)
            .output_file_path(TTY)
            .password_feedback_hide()
            .build();
        rpassword::prompt_password_with_config(prompt, config).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_without_a_tty_is_no_terminal() {
        if File::open(TTY).is_ok() {
            return; // A terminal is present: nothing to assert without a person.
        }
        let e = Terminal::open("airlock policy sign").unwrap_err();
        assert!(matches!(e, ApprovalError::NoTerminal(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("airlock policy sign needs a terminal (/dev/tty)"),
            "{e}"
        );
    }
}
