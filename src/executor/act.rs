//! One request's steps under the executor's credential: the [`Runner`] the backup kinds use
//! (each AWS request under its own session policy, recorded phases, progress, crash points),
//! and the action itself under a session policy naming only that resource and that action.

use aws_credential_types::Credentials;
use serde_json::{Value, json};

use super::{Done, Executor, fault_point};
use crate::aws::AwsError;
use crate::aws::call::Fetch;
use crate::backup::{CrashPoint, Refuse, Runner};
use crate::catalogue::args::Args;
use crate::catalogue::{AwsSpec, ToolSpec};
use crate::credentials::{Role, ScopeRequest};
use crate::policy::Environment;
use crate::queue::{Phase, Request};
use crate::scope::{self, SessionPolicy};

/// The executor working on one request.
pub(super) struct Job<'a> {
    ex: &'a Executor,
    id: String,
}

impl<'a> Job<'a> {
    pub(super) fn new(ex: &'a Executor, req: &Request) -> Self {
        Self {
            ex,
            id: req.id.clone(),
        }
    }

    /// Credentials for one step with its own session policy.
    async fn creds(
        &self,
        env: &Environment,
        policy: &SessionPolicy,
        step: &str,
    ) -> Result<Credentials, Refuse> {
        let identity = format!("airlock-executor-{}", self.id);
        self.ex
            .broker
            .credentials(ScopeRequest {
                env,
                role: Role::Executor,
                policy,
                tool: step,
                source_identity: &identity,
            })
            .await
            .map_err(|e| {
                Refuse(format!(
                    "could not get the executor credential for {step}: {e}"
                ))
            })
    }

    /// The action itself, under a session policy naming only this resource and action.
    pub(super) async fn act(
        &self,
        req: &Request,
        tool: &ToolSpec,
        args: &Args,
        env: &Environment,
    ) -> Result<Done, Refuse> {
        let spec = tool
            .aws()
            .ok_or_else(|| Refuse("the tool has no action".into()))?;
        let sp = scope::render(tool, env, args).map_err(|e| Refuse(e.to_string()))?;
        let creds = self.creds(env, &sp, &tool.name).await?;
        let resent = req.phase() == Phase::DeleteSent;
        self.phase(
            Phase::DeleteSent,
            json!({"session_policy_sha256": sp.hash, "actions": sp.actions, "resources": sp.resources}),
        )
        .await?;
        self.say(format!(
            "{}: running {} on {} (session policy: {:?} on {:?})",
            req.id, spec.action, req.resource_id, sp.actions, sp.resources
        ));
        let already = match self
            .ex
            .engine
            .aws()
            .fetch(Fetch {
                spec,
                items_path: None,
                env,
                args,
                creds: &creds,
            })
            .await
        {
            Ok(_) => {
                self.crash_point(CrashPoint::AfterDelete).await;
                false
            }
            Err(AwsError::Service { code, .. }) if spec.already_done.contains(&code) && resent => {
                true
            }
            Err(e) => return Err(Refuse(format!("{} failed: {e}", spec.action))),
        };
        Ok(Done::Executed(json!({
            "summary": if already {
                format!("{} was already gone after this request's own earlier attempt; recorded as done", req.resource_id)
            } else {
                format!("{} done on {} after backup {}", spec.action, req.resource_id, req.backup_id.as_deref().unwrap_or("-"))
            },
            "snapshot_id": req.backup_id,
            "copy_snapshot_id": req.backup_copy_id,
            "session_policy_sha256": sp.hash,
        })))
    }
}

impl Runner for Job<'_> {
    async fn aws(
        &self,
        env: &Environment,
        mut spec: AwsSpec,
        actions: Vec<String>,
        resources: Vec<String>,
        params: Value,
    ) -> Result<Value, AwsError> {
        let sp = scope::document(actions.clone(), resources.clone(), &env.region)
            .map_err(|e| AwsError::Signing(e.to_string()))?;
        let creds = self
            .creds(env, &sp, &spec.action)
            .await
            .map_err(|r| AwsError::Signing(r.0))?;
        spec.iam_actions = actions;
        spec.resources = resources;
        spec.request = params.as_object().cloned().unwrap_or_default();
        let f = self
            .ex
            .engine
            .aws()
            .fetch(Fetch {
                spec: &spec,
                items_path: None,
                env,
                args: &Args::new(),
                creds: &creds,
            })
            .await?;
        Ok(f.document.unwrap_or(Value::Null))
    }

    async fn phase(&self, phase: Phase, detail: Value) -> Result<(), Refuse> {
        self.ex
            .queue
            .set_phase(&self.id, &self.ex.owner, phase, detail, self.ex.now())
            .await
            .map_err(|e| {
                Refuse(format!(
                    "could not record progress ({}): {e}",
                    phase.as_str()
                ))
            })
    }

    fn say(&self, line: String) {
        self.ex.say(line);
    }

    fn poll(&self) -> std::time::Duration {
        self.ex.poll
    }

    async fn crash_point(&self, point: CrashPoint) {
        fault_point(point);
        if let Some(hook) = &self.ex.crash_hook {
            hook(point).await;
        }
    }
}
