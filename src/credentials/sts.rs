//! [`StsBroker`]: AssumeRole through aws-sdk-sts with the rendered session policy inline, the
//! base credential from the standard AWS chain or a named profile, cached per scope.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use tokio::sync::{Mutex, OnceCell};

use super::base;
use super::cache::Cache;
use super::{CredentialBroker, CredentialError, Minting, ScopeRequest};
use crate::aws::endpoint;
use crate::policy::Environment;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    env: String,
    role: String,
    profile: Option<String>,
    policy_hash: String,
}

type StsClient = Arc<OnceCell<aws_sdk_sts::Client>>;

/// AssumeRole through aws-sdk-sts, with the base credential from the standard AWS chain or a
/// named profile.
pub struct StsBroker {
    duration: Duration,
    base: Option<Credentials>,
    /// One STS client per (environment, base-credential profile).
    clients: Mutex<HashMap<(String, Option<String>), StsClient>>,
    cache: Cache<CacheKey>,
    calls: AtomicU64,
    counter: AtomicU64,
}

impl StsBroker {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            base: None,
            clients: Mutex::new(HashMap::new()),
            cache: Cache::default(),
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

    /// The STS client for `env` with the base credential of `profile` (one per pair). A
    /// configuration problem is not cached: fixing the AWS config files fixes the next call.
    async fn client(
        &self,
        env: &Environment,
        profile: Option<&str>,
    ) -> Result<aws_sdk_sts::Client, CredentialError> {
        let cell = {
            let mut m = self.clients.lock().await;
            m.entry((env.name.clone(), profile.map(str::to_string)))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| async {
            let loader = match &self.base {
                Some(base) => {
                    let mut l = aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .region(aws_config::Region::new(env.region.clone()))
                        .credentials_provider(base.clone());
                    if let Some(url) = endpoint::override_for("sts", env) {
                        l = l.endpoint_url(url);
                    }
                    l
                }
                None => base::loader(env, profile).await?,
            };
            Ok(aws_sdk_sts::Client::new(&loader.load().await))
        })
        .await
        .cloned()
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
        let client = self.client(req.env, profile).await?;
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
            .map_err(|e| sts_failure(&e, req.env, role, profile))?;
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

impl CredentialBroker for StsBroker {
    fn credentials<'a>(&'a self, req: ScopeRequest<'a>) -> Minting<'a> {
        Box::pin(async move {
            let (role, profile) = req.role.of(req.env)?;
            let key = CacheKey {
                env: req.env.name.clone(),
                role: role.to_string(),
                profile: profile.map(str::to_string),
                policy_hash: req.policy.hash.clone(),
            };
            // Concurrent misses for one scope wait on one AssumeRole.
            self.cache.get_or_mint(key, self.assume(req)).await
        })
    }

    fn assume_role_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// An AssumeRole that failed, as whose problem it is: the base credential, the network, STS
/// throttling, or STS refusing (with its code, read from the raw body when the SDK could not
/// parse it). Never the SDK's Debug dump.
fn sts_failure(
    e: &SdkError<AssumeRoleError>,
    env: &Environment,
    role: &str,
    profile: Option<&str>,
) -> CredentialError {
    let dyn_e: &(dyn std::error::Error + 'static) = e;
    let url = endpoint::override_for("sts", env).unwrap_or_else(|| endpoint::resolve("sts", env));
    tracing::debug!(error = %base::innermost(dyn_e), env = %env.name, "AssumeRole failed");
    if let Some(c) = base::find::<CredentialsError>(dyn_e) {
        return base::classify_base(c, env, profile);
    }
    match e {
        SdkError::DispatchFailure(d) => {
            let message = match base::find::<std::io::Error>(dyn_e).map(std::io::Error::kind) {
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    "connection refused (nothing is listening there)".to_string()
                }
                Some(std::io::ErrorKind::TimedOut) => "the connection timed out".to_string(),
                _ if d.is_timeout() => "the connection timed out".to_string(),
                _ => base::innermost(dyn_e),
            };
            CredentialError::Unreachable {
                endpoint: url,
                message,
            }
        }
        SdkError::TimeoutError(_) => CredentialError::Unreachable {
            endpoint: url,
            message: "it did not answer in time".into(),
        },
        _ => {
            let raw = e.raw_response();
            let body = raw
                .and_then(|r| r.body().bytes())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let tag = |t: &str| {
                body.split_once(&format!("<{t}>"))
                    .and_then(|(_, r)| r.split_once(&format!("</{t}>")))
                    .map(|(v, _)| v.trim().to_string())
            };
            let code = e.code().map(str::to_string).or_else(|| tag("Code"));
            let message = e.message().map(str::to_string).or_else(|| tag("Message"));
            let status = raw.map_or(0, |r| r.status().as_u16());
            match code {
                Some(code) if code.contains("Throttl") || code == "RequestLimitExceeded" => {
                    CredentialError::Throttled {
                        role: role.to_string(),
                        code,
                    }
                }
                Some(code) => CredentialError::AssumeRole {
                    role: role.to_string(),
                    code,
                    message: message.unwrap_or_default(),
                },
                None => CredentialError::AssumeRole {
                    role: role.to_string(),
                    code: format!("HTTP {status}"),
                    message: format!("STS at {url} answered with a body that is not an AWS error"),
                },
            }
        }
    }
}
