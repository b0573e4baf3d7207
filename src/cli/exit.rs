//! Exit codes scripts can trust:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (for `explain`: the call would be allowed) |
//! | 1 | an error while running (I/O, AWS unreachable, ...) |
//! | 2 | bad command line (clap) |
//! | 3 | invalid configuration (policy.toml or a tool file) |
//! | 4 | refused by policy (`explain`: the call would be denied, its arguments are invalid or the tool is unknown) |
//! | 5 | needs approval (`explain`: the call would be queued for a human) |

use std::process::ExitCode;

pub const ERROR: u8 = 1;
pub const CONFIG: u8 = 3;
pub const REFUSED: u8 = 4;
pub const APPROVAL: u8 = 5;

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn config(e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(Failure {
            code: CONFIG,
            message: format!("invalid configuration:\n{e}"),
        })
    }
}

pub fn code_for(e: &anyhow::Error) -> ExitCode {
    ExitCode::from(e.downcast_ref::<Failure>().map_or(ERROR, |f| f.code))
}
