//! Per-call credentials. The broker turns (environment, session policy) into temporary AWS
//! credentials with AssumeRole, passing the rendered session policy inline so the credentials
//! can do only what that one call needs.
//!
//! Credentials are cached by everything that changes the AssumeRole call (environment, role,
//! base credential profile, policy hash) until shortly before they expire; concurrent misses for
//! one key wait on one STS call. The secret halves live only in
//! [`aws_credential_types::Credentials`], whose `Debug` redacts them, and are never logged,
//! returned or written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use tokio::sync::{Mutex, OnceCell};

use crate::aws::endpoint;
use crate::policy::Environment;
use crate::scope::SessionPolicy;

/// Reuse cached credentials only while they have at least this long left.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// At most this many scopes are cached; expired ones go first.
const CACHE_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("could not load the broker's base AWS credentials for environment `{env}`: {message}")]
    BaseCredentials { env: String, message: String },
    #[error("AssumeRole on {role} was refused ({code}): {message}")]
    AssumeRole {
        role: String,
        code: String,
        message: String,
    },
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

/// Mints credentials for a scope. The real one is [`StsBroker`]; the trait lets the engine be
/// driven by other brokers (a shared credential service, a test double for pure unit tests).
pub trait CredentialBroker: Send + Sync {
    fn credentials<'a>(
        &'a self,
        req: ScopeRequest<'a>,
    ) -> BoxFuture<'a, Result<Credentials, CredentialError>>;

    /// How many AssumeRole calls this broker has made.
    fn assume_role_calls(&self) -> u64;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    env: String,
    role: String,
    profile: Option<String>,
    policy_hash: String,
}

type Slot = Arc<Mutex<Option<Credentials>>>;
type StsClient = Arc<OnceCell<aws_sdk_sts::Client>>;

/// AssumeRole through aws-sdk-sts, with the base credential from the standard AWS chain or a
/// named profile.
pub struct StsBroker {
    duration: Duration,
    base: Option<Credentials>,
    /// One STS client per (environment, base-credential profile).
    clients: Mutex<HashMap<(String, Option<String>), StsClient>>,
    cache: std::sync::Mutex<HashMap<CacheKey, Slot>>,
    calls: AtomicU64,
    counter: AtomicU64,
}

impl StsBroker {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            base: None,
            clients: Mutex::new(HashMap::new()),
            cache: std::sync::Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            counter: AtomicU64::new(0),
        }
    }

    /// A broker whose base credential is given rather than found through the AWS chain: for
    /// embedding airlock in another program, and for tests against a local endpoint that hand it
    /// the endpoint's throwaway keys. The CLI always uses the standard chain.
    pub fn with_base_credentials(duration: Duration, base: Credentials) -> Self {
        Self {
            base: Some(base),
            ..Self::new(duration)
        }
    }

    /// The STS client for `env` with the base credential of `profile` (one per pair).
    async fn client(&self, env: &Environment, profile: Option<&str>) -> aws_sdk_sts::Client {
        let cell = {
            let mut m = self.clients.lock().await;
            m.entry((env.name.clone(), profile.map(str::to_string)))
                .or_default()
                .clone()
        };
        cell.get_or_init(|| async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(env.region.clone()));
            if let Some(base) = &self.base {
                loader = loader.credentials_provider(base.clone());
            } else if let Some(p) = profile {
                loader = loader.profile_name(p);
            }
            if let Some(url) = endpoint::override_for("sts", env) {
                loader = loader.endpoint_url(url);
            }
            let conf = loader.load().await;
            aws_sdk_sts::Client::new(&conf)
        })
        .await
        .clone()
    }

    fn slot(&self, key: CacheKey) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            let now = SystemTime::now();
            cache.retain(|_, slot| match slot.try_lock() {
                Ok(g) => g.as_ref().is_some_and(|c| fresh(c, now)),
                Err(_) => true, // being filled right now
            });
            if cache.len() >= CACHE_CAPACITY
                && let Some(k) = cache.keys().next().cloned()
            {
                cache.remove(&k);
            }
        }
        cache.entry(key).or_default().clone()
    }

    fn session_name(&self, tool: &str) -> String {
        // Unique per AssumeRole call; RoleSessionName allows [\w+=,.@-]{2,64}.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tool: String = tool
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(24)
            .collect();
        format!("airlock-{tool}-{n}-{}", &id[..12])
    }

    async fn assume(&self, req: ScopeRequest<'_>) -> Result<Credentials, CredentialError> {
        let (role, profile) = req.role.of(req.env)?;
        let client = self.client(req.env, profile).await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let session = self.session_name(req.tool);
        tracing::info!(
            env = %req.env.name,
            role = %role,
            policy_hash = %req.policy.hash,
            session = %session,
            "AssumeRole with a per-call session policy"
        );
        // The document itself (no secret in it), so an operator or a test can prove its scope.
        tracing::debug!(session = %session, policy = %req.policy.json, "session policy");
        let out = client
            .assume_role()
            .role_arn(role)
            .role_session_name(session)
            .policy(&req.policy.json)
            .duration_seconds(self.duration.as_secs() as i32)
            .source_identity(req.source_identity)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or("error").to_string();
                let message = e
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| aws_sdk_sts::error::DisplayErrorContext(&e).to_string());
                if matches!(code.as_str(), "error") && message.contains("credentials") {
                    CredentialError::BaseCredentials {
                        env: req.env.name.clone(),
                        message,
                    }
                } else {
                    CredentialError::AssumeRole {
                        role: role.to_string(),
                        code,
                        message,
                    }
                }
            })?;
        let c = out
            .credentials()
            .ok_or_else(|| CredentialError::Empty(role.to_string()))?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "airlock-sts",
        ))
    }
}

fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry()
        .is_some_and(|e| e.duration_since(now).is_ok_and(|left| left > EXPIRY_MARGIN))
}

impl CredentialBroker for StsBroker {
    fn credentials<'a>(
        &'a self,
        req: ScopeRequest<'a>,
    ) -> BoxFuture<'a, Result<Credentials, CredentialError>> {
        Box::pin(async move {
            let (role, profile) = req.role.of(req.env)?;
            let key = CacheKey {
                env: req.env.name.clone(),
                role: role.to_string(),
                profile: profile.map(str::to_string),
                policy_hash: req.policy.hash.clone(),
            };
            let slot = self.slot(key);
            // Holding the slot's lock across the STS call collapses concurrent misses for one
            // scope into one AssumeRole; other scopes have their own slots.
            let mut guard = slot.lock().await;
            if let Some(c) = guard.as_ref()
                && fresh(c, SystemTime::now())
            {
                return Ok(c.clone());
            }
            let c = self.assume(req).await?;
            *guard = Some(c.clone());
            Ok(c)
        })
    }

    fn assume_role_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}
