//! airlock: an MCP server that gives AI coding agents typed infrastructure tools instead of
//! tokens. Every call is validated against its tool's declared arguments, decided by
//! `policy.toml`, and run under AWS credentials minted for that one call with an inline session
//! policy naming exactly the tool's actions on the call's own resources.
//!
//! The modules follow the path a call takes: [`catalogue`] (what tools exist) ->
//! [`policy`] (may this call run here?) -> [`scope`] (the session policy for it) ->
//! [`credentials`] (AssumeRole with that policy) -> [`aws`] (the signed request and the
//! projection of its answer) -> [`redact`] (secrets scrubbed) -> [`mcp`] (the tool result).
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod approval;
pub mod aws;
pub mod backup;
pub mod catalogue;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod engine;
pub mod executor;
pub mod iam;
pub mod mcp;
pub mod policy;
pub mod queue;
pub mod redact;
pub mod scope;

pub mod timefmt;

/// A boxed future, for the traits whose implementations are chosen at run time (the credential
/// broker, the AWS caller).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
