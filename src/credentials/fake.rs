//! A broker for in-process tests of the engine and the executor: it mints throwaway
//! credentials (no STS, no network), records every request it was asked for (environment, role
//! and the exact session policy), and can be told to refuse. Nothing here holds or makes a real
//! credential.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use super::{CredentialBroker, CredentialError, Minting, Role, ScopeRequest};

/// One request the fake broker was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub env: String,
    pub role: Role,
    /// The role ARN that would have been assumed.
    pub role_arn: String,
    pub policy_json: String,
    pub tool: String,
    pub source_identity: String,
}

#[derive(Debug, Default)]
pub struct FakeBroker {
    minted: Mutex<Vec<Minted>>,
    refuse: Mutex<Option<String>>,
}

impl FakeBroker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse every later request as STS would refuse AssumeRole, with `code`.
    pub fn refuse_with(&self, code: &str) {
        *self.refuse.lock().unwrap_or_else(|p| p.into_inner()) = Some(code.into());
    }

    /// Everything minted so far, in order.
    pub fn minted(&self) -> Vec<Minted> {
        self.minted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl CredentialBroker for FakeBroker {
    fn credentials<'a>(&'a self, req: ScopeRequest<'a>) -> Minting<'a> {
        Box::pin(async move {
            let (role_arn, _) = req.role.of(req.env)?;
            if let Some(code) = self
                .refuse
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return Err(CredentialError::AssumeRole {
                    role: role_arn.to_string(),
                    code,
                    message: "refused by the fake broker".into(),
                });
            }
            self.minted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Minted {
                    env: req.env.name.clone(),
                    role: req.role,
                    role_arn: role_arn.to_string(),
                    policy_json: req.policy.json.clone(),
                    tool: req.tool.to_string(),
                    source_identity: req.source_identity.to_string(),
                });
            Ok(Credentials::new(
                "airlock-fake-key-id",
                "fake-secret-not-a-credential",
                Some("fake-session-token".into()),
                Some(SystemTime::now() + Duration::from_secs(900)),
                "airlock-fake",
            ))
        })
    }

    fn assume_role_calls(&self) -> u64 {
        self.minted.lock().map_or(0, |m| m.len() as u64)
    }
}
