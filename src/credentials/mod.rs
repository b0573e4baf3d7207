//! Per-call credentials. The broker turns (environment, session policy) into temporary AWS
//! credentials with AssumeRole, passing the rendered session policy inline so the credentials
//! can do only what that one call needs.
//!
//! Credentials are cached by everything that changes the AssumeRole call (environment, role,
//! base credential profile, policy hash) until shortly before they expire; concurrent misses for
//! one key wait on one STS call ([`cache`]). The secret halves live only in
//! [`aws_credential_types::Credentials`], whose `Debug` redacts them, and are never logged,
//! returned or written.
//!
//! - [`sts`]: the real broker, [`StsBroker`].
//! - [`fake`]: a broker for in-process tests that mints throwaway credentials and counts.

pub mod base;
pub mod cache;
pub mod fake;
mod sts;

pub use cache::EXPIRY_MARGIN;
pub use sts::StsBroker;

use aws_credential_types::Credentials;

use crate::policy::Environment;
use crate::scope::SessionPolicy;

/// Why no credential could be minted, said as whose problem it is.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// airlock's configuration on this machine: a profile that does not exist, a malformed
    /// AWS config file.
    #[error("environment `{env}`: {message}")]
    Config { env: String, message: String },
    /// The base credential's source failed (a credential_process, an SSO login, a profile's own
    /// AssumeRole).
    #[error("the base AWS credential for environment `{env}` could not be obtained: {message}")]
    BaseCredentials { env: String, message: String },
    /// STS refused AssumeRole, with its error code.
    #[error("AssumeRole on {role} was refused ({code}): {message}")]
    AssumeRole {
        role: String,
        code: String,
        message: String,
    },
    /// STS is throttling this caller.
    #[error("STS is throttling AssumeRole on {role} ({code})")]
    Throttled { role: String, code: String },
    /// The STS endpoint could not be reached (or did not answer in time).
    #[error("cannot reach STS at {endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("STS returned no credentials for {0}")]
    Empty(String),
    #[error("environment `{0}` has no executor_role, so nothing can run there as the executor")]
    NoExecutorRole(String),
}

/// Whose role a credential is for. The agent role is what `airlock serve` assumes for the
/// agent's calls; the executor role is what `airlock executor` assumes to back up and act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Agent,
    Executor,
}

impl Role {
    /// The role ARN and the base-credential profile this role is assumed with in `env`.
    pub fn of(self, env: &Environment) -> Result<(&str, Option<&str>), CredentialError> {
        match self {
            Role::Agent => Ok((env.agent_role.as_str(), env.profile.as_deref())),
            Role::Executor => env
                .executor_role
                .as_deref()
                .map(|r| (r, env.executor_profile.as_deref()))
                .ok_or_else(|| CredentialError::NoExecutorRole(env.name.clone())),
        }
    }
}

/// One call's request for credentials.
#[derive(Debug, Clone, Copy)]
pub struct ScopeRequest<'a> {
    pub env: &'a Environment,
    pub role: Role,
    pub policy: &'a SessionPolicy,
    pub tool: &'a str,
    /// Names the agent session in CloudTrail (`SourceIdentity`).
    pub source_identity: &'a str,
}

pub use crate::BoxFuture;

/// Credentials being minted for one scope.
pub type Minting<'a> = BoxFuture<'a, Result<Credentials, CredentialError>>;

/// Mints credentials for a scope. The real one is [`StsBroker`]; the trait lets the engine be
/// driven by other brokers (a shared credential service, a test double for pure unit tests).
pub trait CredentialBroker: Send + Sync {
    fn credentials<'a>(&'a self, req: ScopeRequest<'a>) -> Minting<'a>;

    /// How many AssumeRole calls this broker has made.
    fn assume_role_calls(&self) -> u64;
}
