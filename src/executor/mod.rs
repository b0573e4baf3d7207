//! The executor: runs approved, due requests, and nothing else. Run by the operator with the
//! executor's credential (never by `airlock serve`).
//!
//! Before it claims anything, the policy it loaded (and the tool files it enables) must be
//! signed by an approver in the trust file and still be the files on disk; otherwise due
//! requests are held (they stay approved, with the reason recorded). For each request it claims
//! (atomically, with a lease), it checks everything again from the sources it trusts rather
//! than the queue row: the stored call still hashes to the signed hash, the signed policy in
//! force still says `approve` for it, every approval
//! signature verifies against the trust file, enough distinct trusted approvers signed, the
//! signed cooldown has passed, and the resource is still what was approved. Then it backs the
//! resource up (waiting for the backup to complete, copying it out of the region where the
//! policy says so) and runs the action under a session policy naming only that resource and
//! that action. Progress is recorded as it goes, so a crash at any point resumes on restart and
//! a request is never executed twice.

mod plan;
pub use plan::{BackupPlan, backup_plan};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::approval::trust::TrustFile;
use crate::approval::{ApprovalClaim, PublicKey, verify};
use crate::aws::{self, AwsError};
use crate::catalogue::args::Args;
use crate::catalogue::{AwsSpec, BackupKind, Catalogue, Protocol, Risk, ToolSpec};
use crate::credentials::{CredentialBroker, ScopeRequest};
use crate::engine::{CallContext, Engine};
use crate::policy::signature::Integrity;
use crate::policy::{Decision, Environment, Policy, Rule};
use crate::queue::{ClaimOwner, Queue, Request, State};
use crate::scope::{self, SessionPolicy};
use crate::timefmt::now_ms;

const EC2_VERSION: &str = "2016-11-15";
const RDS_VERSION: &str = "2014-10-31";
/// How long one claim holds a request before another executor may resume it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30 * 60);
/// How long to wait for a backup to complete.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// What one look at a backup in progress found.
enum BackupState {
    /// Finished: the backup can be relied on.
    Done,
    /// Ended without a usable backup, in this state.
    Failed(String),
    /// Still running.
    Running,
}

/// Executor progress, in the order it happens.
const PHASES: [&str; 5] = [
    "",
    "backup_started",
    "backup_copy_started",
    "backup_done",
    "delete_sent",
];

/// The IAM actions of an EBS-snapshot backup, as [`Executor`] calls them: CreateSnapshot in the
/// resource's region, DescribeSnapshots to follow it (in both regions), CopySnapshot called in
/// the backup region.
pub const EBS_CREATE_SNAPSHOT: &str = "ec2:CreateSnapshot";
pub const EBS_DESCRIBE_SNAPSHOTS: &str = "ec2:DescribeSnapshots";
pub const EBS_COPY_SNAPSHOT: &str = "ec2:CopySnapshot";
/// The IAM actions of an RDS snapshot backup: CreateDBSnapshot on the instance and the new
/// snapshot, DescribeDBSnapshots to follow it, CopyDBSnapshot called in the backup region.
pub const RDS_CREATE_SNAPSHOT: &str = "rds:CreateDBSnapshot";
pub const RDS_DESCRIBE_SNAPSHOTS: &str = "rds:DescribeDBSnapshots";
pub const RDS_COPY_SNAPSHOT: &str = "rds:CopyDBSnapshot";
/// Backup DB snapshots are named after the request (`airlock-r-0123456789ab`), so a restart
/// finds the one it already started instead of taking another.
pub const RDS_BACKUP_PREFIX: &str = "airlock-";
/// The IAM actions of a log-group export: CreateExportTask on the group, DescribeExportTasks
/// (no resource-level permission) to follow it. The S3 write is the Logs service's own, allowed
/// by the bucket's policy, not the executor's.
pub const LOGS_CREATE_EXPORT: &str = "logs:CreateExportTask";
pub const LOGS_DESCRIBE_EXPORTS: &str = "logs:DescribeExportTasks";

/// One grant the executor role needs for a backup: these actions on these resources, when the
/// request is sent to one of these regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupGrant {
    /// A statement id for the generated IAM document (letters and digits).
    pub sid: &'static str,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub regions: Vec<String>,
}

/// What the executor role must be allowed for a backup of `kind` in `env`, where `resources`
/// are the ARNs (or ARN patterns) of what is backed up. Mirrors [`Executor`]'s backup steps,
/// and is what `airlock iam` writes into the executor's permissions.
pub fn backup_grants(
    kind: BackupKind,
    env: &Environment,
    resources: &[String],
) -> Vec<BackupGrant> {
    match kind {
        BackupKind::None => Vec::new(),
        BackupKind::EbsSnapshot => {
            let p = &env.partition;
            let here = format!("arn:{p}:ec2:{}::snapshot/*", env.region);
            let mut grants = vec![
                BackupGrant {
                    sid: "BackupCreateSnapshot",
                    actions: vec![EBS_CREATE_SNAPSHOT.into()],
                    resources: resources.iter().cloned().chain([here.clone()]).collect(),
                    regions: vec![env.region.clone()],
                },
                BackupGrant {
                    sid: "BackupFollowSnapshot",
                    actions: vec![EBS_DESCRIBE_SNAPSHOTS.into()],
                    resources: vec!["*".into()],
                    regions: std::iter::once(env.region.clone())
                        .chain(env.backup_region.clone())
                        .collect(),
                },
            ];
            if let Some(dest) = &env.backup_region {
                grants.push(BackupGrant {
                    sid: "BackupCopySnapshot",
                    actions: vec![EBS_COPY_SNAPSHOT.into()],
                    resources: vec![here, format!("arn:{p}:ec2:{dest}::snapshot/*")],
                    regions: vec![dest.clone()],
                });
            }
            grants
        }
        BackupKind::SnapshotCopy => {
            let p = &env.partition;
            let dest = env
                .backup_region
                .clone()
                .unwrap_or_else(|| env.region.clone());
            vec![
                BackupGrant {
                    sid: "BackupCopyEbsSnapshotOut",
                    actions: vec![EBS_COPY_SNAPSHOT.into()],
                    resources: resources
                        .iter()
                        .cloned()
                        .chain([format!("arn:{p}:ec2:{dest}::snapshot/*")])
                        .collect(),
                    regions: vec![dest.clone()],
                },
                BackupGrant {
                    sid: "BackupFollowEbsSnapshotCopy",
                    actions: vec![EBS_DESCRIBE_SNAPSHOTS.into()],
                    resources: vec!["*".into()],
                    regions: vec![dest],
                },
            ]
        }
        BackupKind::LogsExport => vec![
            BackupGrant {
                sid: "BackupExportLogGroup",
                actions: vec![LOGS_CREATE_EXPORT.into()],
                resources: resources.to_vec(),
                regions: vec![env.region.clone()],
            },
            BackupGrant {
                sid: "BackupFollowLogExport",
                actions: vec![LOGS_DESCRIBE_EXPORTS.into()],
                resources: vec!["*".into()],
                regions: vec![env.region.clone()],
            },
        ],
        BackupKind::RdsSnapshot => {
            let snap =
                |region: &str| rds_snapshot_arn(env, region, &format!("{RDS_BACKUP_PREFIX}*"));
            let mut grants = vec![
                BackupGrant {
                    sid: "BackupCreateDbSnapshot",
                    actions: vec![RDS_CREATE_SNAPSHOT.into()],
                    resources: resources
                        .iter()
                        .cloned()
                        .chain([snap(&env.region)])
                        .collect(),
                    regions: vec![env.region.clone()],
                },
                BackupGrant {
                    sid: "BackupFollowDbSnapshot",
                    actions: vec![RDS_DESCRIBE_SNAPSHOTS.into()],
                    resources: std::iter::once(snap(&env.region))
                        .chain(env.backup_region.as_deref().map(snap))
                        .collect(),
                    regions: std::iter::once(env.region.clone())
                        .chain(env.backup_region.clone())
                        .collect(),
                },
            ];
            if let Some(dest) = &env.backup_region {
                grants.push(BackupGrant {
                    sid: "BackupCopyDbSnapshot",
                    actions: vec![RDS_COPY_SNAPSHOT.into()],
                    resources: vec![snap(&env.region), snap(dest)],
                    regions: vec![dest.clone()],
                });
            }
            grants
        }
    }
}

/// The ARN of DB snapshot `name` in `region` of `env`'s account.
pub fn rds_snapshot_arn(env: &Environment, region: &str, name: &str) -> String {
    format!(
        "arn:{}:rds:{region}:{}:snapshot:{name}",
        env.partition, env.account
    )
}

fn phase_at_least(current: &str, want: &str) -> bool {
    let pos = |p: &str| PHASES.iter().position(|x| *x == p).unwrap_or(0);
    pos(current) >= pos(want)
}

/// What happened to one request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub request_id: String,
    pub state: String,
    pub message: String,
}

/// Progress lines for the person watching (stderr).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

pub struct Executor {
    policy: Arc<Policy>,
    trust: TrustFile,
    queue: Arc<Queue>,
    broker: Arc<dyn CredentialBroker>,
    /// An engine over the same policy with every environment's agent role replaced by its
    /// executor role: it looks at resources under the executor's own credential.
    engine: Engine,
    http: reqwest::Client,
    owner: ClaimOwner,
    lease: Duration,
    poll: Duration,
    progress: Progress,
    /// Whether the policy this executor loaded is signed by a trusted approver.
    integrity: Integrity,
}

/// Why a request must not run.
struct Refuse(String);

impl Executor {
    pub fn new(
        policy: Arc<Policy>,
        catalogue: Arc<Catalogue>,
        trust: TrustFile,
        queue: Arc<Queue>,
        broker: Arc<dyn CredentialBroker>,
        progress: Progress,
        integrity: Integrity,
    ) -> Self {
        let mut as_executor = (*policy).clone();
        for env in as_executor.environments.values_mut() {
            if let Some(r) = &env.executor_role {
                env.agent_role = r.clone();
                env.profile = env.executor_profile.clone();
            }
        }
        let engine = Engine::new(Arc::new(as_executor), catalogue.clone(), broker.clone());
        Self {
            policy,
            trust,
            queue,
            broker,
            engine,
            http: aws::call::http_client(),
            owner: ClaimOwner::this_process(),
            lease: DEFAULT_LEASE,
            poll: Duration::from_secs(2),
            progress,
            integrity,
        }
    }

    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    fn say(&self, s: String) {
        (self.progress)(&s);
    }

    /// Run every request that is due now; return what happened to each.
    pub async fn run_once(&self) -> Result<Vec<Outcome>, crate::queue::QueueError> {
        let now = now_ms();
        for id in self.queue.expire_due(now).await? {
            self.say(format!("{id}: expired"));
        }
        let mut out = Vec::new();
        // An unsigned (or changed) policy runs nothing: due requests stay approved, with the
        // reason recorded, and run once a trusted approver signs the policy.
        let st = self.integrity.check_fresh(&self.queue).await;
        if !st.signed {
            let why = format!(
                "the policy is not signed by a trusted approver: {}. A human must review policy.toml and the tool files it enables and run `airlock policy sign`; this request stays approved and runs once the policy is signed",
                st.problem.as_deref().unwrap_or("no valid signature")
            );
            let now = now_ms();
            for r in self.queue.list(Some(State::Approved)).await? {
                if r.not_before.is_some_and(|nb| nb <= now) {
                    let new = self
                        .queue
                        .hold(&r.id, &format!("executor:{}", self.owner.0), &why, now)
                        .await?;
                    if new {
                        self.say(format!("{}: held ({why})", r.id));
                    }
                    out.push(Outcome {
                        request_id: r.id,
                        state: "held".into(),
                        message: why.clone(),
                    });
                }
            }
            return Ok(out);
        }
        while let Some(req) = self
            .queue
            .claim(&self.owner, self.lease.as_millis() as i64, now_ms())
            .await?
        {
            let o = self.process(req).await;
            self.say(format!("{}: {} ({})", o.request_id, o.state, o.message));
            out.push(o);
        }
        Ok(out)
    }

    /// The next approved request's due time, if any.
    pub async fn next_due(&self) -> Result<Option<(String, i64)>, crate::queue::QueueError> {
        Ok(self
            .queue
            .list(Some(State::Approved))
            .await?
            .into_iter()
            .filter_map(|r| r.not_before.map(|n| (r.id, n)))
            .min_by_key(|(_, n)| *n))
    }

    async fn process(&self, req: Request) -> Outcome {
        let id = req.id.clone();
        match self.execute(&req).await {
            Ok(Done::Executed(outcome)) => self.finish(&id, State::Executed, outcome).await,
            Ok(Done::NotDue(due)) => {
                let _ = self
                    .queue
                    .release(
                        &id,
                        &self.owner,
                        due,
                        "not due yet: the signed cooldown has not passed",
                        now_ms(),
                    )
                    .await;
                Outcome {
                    request_id: id,
                    state: "approved".into(),
                    message: format!(
                        "not due for {}",
                        crate::queue::view::countdown(due - now_ms())
                    ),
                }
            }
            Err(Refuse(why)) => self.finish(&id, State::Failed, json!({"error": why})).await,
        }
    }

    async fn finish(&self, id: &str, to: State, outcome: Value) -> Outcome {
        let message = outcome
            .get("error")
            .or_else(|| outcome.get("summary"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match self
            .queue
            .finish(id, &self.owner, to, outcome, now_ms())
            .await
        {
            Ok(r) => Outcome {
                request_id: id.into(),
                state: r.state,
                message,
            },
            Err(e) => Outcome {
                request_id: id.into(),
                state: "unknown".into(),
                message: format!("could not record the outcome: {e}"),
            },
        }
    }

    async fn execute(&self, req: &Request) -> Result<Done, Refuse> {
        let (tool, args, env, rule) = self.verify_call(req)?;
        let due = self.verify_approvals(req, &rule).await?;
        if due > now_ms() {
            return Ok(Done::NotDue(due));
        }
        self.say(format!(
            "{}: verified ({} in {}): checking the resource",
            req.id, req.resource_id, env.name
        ));
        if self.look(req, &tool, &args).await?.is_none() {
            return if req.phase == "delete_sent" {
                Ok(Done::Executed(json!({
                    "summary": format!("{} was already gone after this request's own earlier attempt", req.resource_id),
                    "snapshot_id": req.backup_id, "copy_snapshot_id": req.backup_copy_id,
                })))
            } else {
                Err(Refuse(format!(
                    "{} no longer exists; nothing was done",
                    req.resource_id
                )))
            };
        }
        let mut req = req.clone();
        match tool.backup {
            Some(BackupKind::EbsSnapshot) => {
                self.snapshot_backup(SnapshotKind::Ebs, &mut req, &env)
                    .await?
            }
            Some(BackupKind::SnapshotCopy) => self.copy_snapshot(&mut req, &env).await?,
            Some(BackupKind::RdsSnapshot) => {
                self.snapshot_backup(SnapshotKind::Rds, &mut req, &env)
                    .await?
            }
            Some(BackupKind::LogsExport) => self.export_logs(&mut req, &env).await?,
            Some(BackupKind::None) | None => {}
        }
        self.act(&req, &tool, &args, &env).await
    }

    /// The stored call is intact, names a destructive tool of the catalogue, and the policy is
    /// the one it was requested (and approved) under.
    fn verify_call(
        &self,
        req: &Request,
    ) -> Result<(Arc<ToolSpec>, Args, Environment, Rule), Refuse> {
        if !req.call_intact() {
            return Err(Refuse("the stored call does not match its hash: the request was altered after it was made".into()));
        }
        let call = req
            .call()
            .ok_or_else(|| Refuse("the stored call cannot be read".into()))?;
        if call.tool != req.tool
            || call.environment != req.environment
            || call.resource_arn != req.resource_arn
        {
            return Err(Refuse(
                "the request's columns do not match its signed call: the request was altered"
                    .into(),
            ));
        }
        // A request made under an earlier policy file still runs only because the policy now in
        // force is signed by a trusted approver (checked before any claim, in `run_once`), and
        // only if that policy still queues this exact call with no more approvals and no
        // longer cooldown than were signed (checked below and in `verify_approvals`).
        if req.policy_hash != self.policy.hash {
            self.say(format!(
                "{}: made under policy {}; the signed policy now in force is {}: checking the call against it",
                req.id,
                short(&req.policy_hash),
                short(&self.policy.hash)
            ));
        }
        let input: Map<String, Value> = call.arguments.as_object().cloned().unwrap_or_default();
        let (tool, plan) = self
            .engine
            .plan(&call.tool, &input)
            .map_err(|e| Refuse(format!("the call is no longer valid: {e}")))?;
        if tool.risk != Risk::Destructive {
            return Err(Refuse(format!("`{}` is not a destructive tool", tool.name)));
        }
        if plan.verdict.decision != Decision::Approve {
            return Err(Refuse(format!(
                "the current policy no longer queues this call ({}: {})",
                plan.verdict.matched, plan.verdict.reason
            )));
        }
        let env = self
            .policy
            .environments
            .get(&call.environment)
            .cloned()
            .ok_or_else(|| {
                Refuse(format!(
                    "environment `{}` is gone from the policy",
                    call.environment
                ))
            })?;
        if env.account != call.account || env.region != call.region {
            return Err(Refuse(
                "the environment's account or region changed since the request".into(),
            ));
        }
        if env.executor_role.is_none() {
            return Err(Refuse(format!(
                "environment `{}` has no executor_role",
                env.name
            )));
        }
        if plan
            .session_policy
            .as_ref()
            .and_then(|p| p.resources.first())
            != Some(&call.resource_arn)
        {
            return Err(Refuse(
                "the call's resource does not match the resource it was approved for".into(),
            ));
        }
        let rule = plan
            .verdict
            .rule
            .ok_or_else(|| Refuse("an approval decision without a rule".into()))?;
        Ok((tool, plan.arguments, env, rule))
    }

    /// Enough distinct trusted approvers signed this exact request, call and policy, each with
    /// at least the rule's cooldown. Returns when it is due (the latest signed not-before).
    async fn verify_approvals(&self, req: &Request, rule: &Rule) -> Result<i64, Refuse> {
        let cooldown = rule.cooldown.as_millis() as i64;
        let approvals = self
            .queue
            .approvals(&req.id)
            .await
            .map_err(|e| Refuse(e.to_string()))?;
        let mut valid = BTreeSet::new();
        let mut due = 0;
        let mut problems = Vec::new();
        for a in &approvals {
            let key: PublicKey = match a.public_key.parse() {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("an approval has an unreadable key: {e}"));
                    continue;
                }
            };
            let Some(trusted) = self.trust.find(&key) else {
                problems.push(format!(
                    "approval by {} ({}) is signed by a key that is not in the trust file {}",
                    a.approver,
                    key.fingerprint(),
                    self.trust.path.display()
                ));
                continue;
            };
            let claim = ApprovalClaim {
                request_id: req.id.clone(),
                call_hash: req.call_hash.clone(),
                policy_hash: req.policy_hash.clone(),
                approved_at_ms: a.approved_at,
                not_before_ms: a.not_before,
            };
            if let Err(e) = verify(&key, &claim, &a.signature) {
                problems.push(format!(
                    "approval by {} does not verify for this request, call and policy: {e}",
                    trusted.name
                ));
                continue;
            }
            if a.not_before - a.approved_at < cooldown {
                problems.push(format!(
                    "approval by {} allows a shorter cooldown than the rule's",
                    trusted.name
                ));
                continue;
            }
            valid.insert(key.to_string());
            due = due.max(a.not_before);
        }
        let required = rule.approvers as usize;
        if valid.len() < required {
            let mut why = format!(
                "{} valid approval(s) from trusted approvers; {required} required",
                valid.len()
            );
            if !problems.is_empty() {
                why.push_str(": ");
                why.push_str(&problems.join("; "));
            }
            return Err(Refuse(why));
        }
        if now_ms() > due + self.policy.execution_window.as_millis() as i64 {
            return Err(Refuse(
                "the approval is older than the policy's execution_window".into(),
            ));
        }
        Ok(due)
    }

    /// The resource as it is now, under the executor's credential. `None` when it is gone.
    async fn look(
        &self,
        req: &Request,
        tool: &ToolSpec,
        args: &Args,
    ) -> Result<Option<Value>, Refuse> {
        let ctx = CallContext {
            client_name: "airlock-executor".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            session_id: req.id.clone(),
        };
        let current = match self.engine.describe_resource(tool, args, &ctx).await {
            Ok(item) => item,
            Err(a) if a.body["error"] == "not_found" => return Ok(None),
            Err(a) => {
                return Err(Refuse(format!(
                    "could not look at the resource: {}",
                    a.body["message"].as_str().unwrap_or_default()
                )));
            }
        };
        if current["protected"] == json!(true) {
            return Err(Refuse(format!(
                "{} is protected now; nothing was done",
                req.resource_id
            )));
        }
        let approved: Value = serde_json::from_str(&req.resource_json).unwrap_or(Value::Null);
        for field in tool.describe.iter().flat_map(|d| d.unchanged.iter()) {
            if current.get(field) != approved.get(field) {
                return Err(Refuse(format!(
                    "{} changed since it was approved: `{field}` was {} and is now {}; nothing was done",
                    req.resource_id,
                    approved.get(field).unwrap_or(&Value::Null),
                    current.get(field).unwrap_or(&Value::Null)
                )));
            }
        }
        Ok(Some(current))
    }

    /// Credentials for an executor step with its own session policy.
    async fn creds(
        &self,
        env: &Environment,
        policy: &SessionPolicy,
        step: &str,
        req: &Request,
    ) -> Result<aws_credential_types::Credentials, Refuse> {
        let mut as_exec = env.clone();
        as_exec.agent_role = env.executor_role.clone().unwrap_or_default();
        as_exec.profile = env.executor_profile.clone();
        let identity = format!("airlock-executor-{}", req.id);
        self.broker
            .credentials(ScopeRequest {
                env: &as_exec,
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

    async fn ec2(
        &self,
        env: &Environment,
        action: &str,
        actions: Vec<String>,
        resources: Vec<String>,
        params: Value,
        req: &Request,
    ) -> Result<Value, AwsError> {
        let spec = AwsSpec::step("ec2", Protocol::Ec2, action, EC2_VERSION);
        self.step(env, spec, actions, resources, params, req).await
    }

    /// One executor step under its own session policy: exactly `actions` on `resources`.
    async fn step(
        &self,
        env: &Environment,
        mut spec: AwsSpec,
        actions: Vec<String>,
        resources: Vec<String>,
        params: Value,
        req: &Request,
    ) -> Result<Value, AwsError> {
        let sp = scope::document(actions.clone(), resources.clone(), &env.region)
            .map_err(|e| AwsError::Signing(e.to_string()))?;
        let creds = self
            .creds(env, &sp, &spec.action, req)
            .await
            .map_err(|r| AwsError::Signing(r.0))?;
        spec.iam_actions = actions;
        spec.resources = resources;
        spec.request = params.as_object().cloned().unwrap_or_default();
        let f = aws::call::fetch(&self.http, &spec, None, env, &Args::new(), &creds).await?;
        Ok(f.document.unwrap_or(Value::Null))
    }

    /// A snapshot backup (EBS or RDS), waited for; copied to the backup region where the
    /// policy names one. Each step is recorded once it is started, and found again after a
    /// crash rather than taken twice.
    async fn snapshot_backup(
        &self,
        kind: SnapshotKind,
        req: &mut Request,
        env: &Environment,
    ) -> Result<(), Refuse> {
        if phase_at_least(&req.phase, "backup_done") {
            self.say(format!(
                "{}: backup {} already complete (resuming)",
                req.id,
                req.backup_id.as_deref().unwrap_or("?")
            ));
            return Ok(());
        }
        let backup_id = match req.backup_id.clone() {
            Some(id) => id,
            None => {
                let id = self.start_backup(kind, req, env).await?;
                self.phase(req, "backup_started", json!({"backup_id": id}))
                    .await?;
                req.backup_id = Some(id.clone());
                id
            }
        };
        self.wait_backup(kind, env, &backup_id, req).await?;
        match &env.backup_region {
            Some(dest) => self.isolated_copy(kind, req, env, dest, &backup_id).await?,
            None if env.require_isolated_backup => return Err(Refuse(NO_BACKUP_REGION.into())),
            None => {}
        }
        self.phase(
            req,
            "backup_done",
            json!({"backup_id": req.backup_id, "backup_copy_id": req.backup_copy_id}),
        )
        .await?;
        fault_point("after-backup");
        Ok(())
    }

    /// The copy of backup `backup_id` in region `dest`, started (or found) and waited for.
    async fn isolated_copy(
        &self,
        kind: SnapshotKind,
        req: &mut Request,
        env: &Environment,
        dest: &str,
        backup_id: &str,
    ) -> Result<(), Refuse> {
        let dest_env = Environment {
            region: dest.to_string(),
            ..env.clone()
        };
        let copy_id = match req.backup_copy_id.clone() {
            Some(id) => id,
            None => {
                let id = self
                    .start_copy(kind, req, env, &dest_env, backup_id)
                    .await?;
                self.record_copy(req, &id, dest).await?;
                id
            }
        };
        // A DB snapshot copy keeps its name in the backup region; an EBS copy gets a new id.
        let waited = match kind {
            SnapshotKind::Ebs => copy_id.as_str(),
            SnapshotKind::Rds => backup_id,
        };
        self.wait_backup(kind, &dest_env, waited, req).await
    }

    /// Records that the copy `id` was started in `dest`, so a restart waits for it.
    async fn record_copy(&self, req: &mut Request, id: &str, dest: &str) -> Result<(), Refuse> {
        self.phase(
            req,
            "backup_copy_started",
            json!({"backup_copy_id": id, "region": dest}),
        )
        .await?;
        req.backup_copy_id = Some(id.to_string());
        Ok(())
    }

    /// Starts (or finds) the backup in the resource's own region; returns its id.
    async fn start_backup(
        &self,
        kind: SnapshotKind,
        req: &Request,
        env: &Environment,
    ) -> Result<String, Refuse> {
        match kind {
            SnapshotKind::Ebs => self.start_ebs_snapshot(req, env).await,
            SnapshotKind::Rds => self.start_db_snapshot(req, env).await,
        }
    }

    /// Starts (or finds) the copy of `backup_id` in `dest_env`'s region; returns its id.
    async fn start_copy(
        &self,
        kind: SnapshotKind,
        req: &Request,
        env: &Environment,
        dest_env: &Environment,
        backup_id: &str,
    ) -> Result<String, Refuse> {
        match kind {
            SnapshotKind::Ebs => self.start_ebs_copy(req, env, dest_env, backup_id).await,
            SnapshotKind::Rds => self.start_db_copy(req, env, dest_env, backup_id).await,
        }
    }

    /// Waits until backup (or copy) `id` in `env`'s region is usable.
    async fn wait_backup(
        &self,
        kind: SnapshotKind,
        env: &Environment,
        id: &str,
        req: &Request,
    ) -> Result<(), Refuse> {
        match kind {
            SnapshotKind::Ebs => self.wait_snapshot(env, id, req).await,
            SnapshotKind::Rds => self.wait_db_snapshot(env, id, req).await,
        }
    }

    /// The EBS snapshot of the volume this request started before a crash, or a new one.
    async fn start_ebs_snapshot(&self, req: &Request, env: &Environment) -> Result<String, Refuse> {
        let description = format!(
            "airlock backup of {} before request {}",
            req.resource_id, req.id
        );
        if let Some(id) = self.find_snapshot(env, &description, req).await? {
            return Ok(id);
        }
        let p = &env.partition;
        let ask = SnapshotAsk {
            action: "CreateSnapshot",
            iam_action: EBS_CREATE_SNAPSHOT,
            resources: vec![
                req.resource_arn.clone(),
                format!("arn:{p}:ec2:{}::snapshot/*", env.region),
            ],
            params: json!({"VolumeId": req.resource_id, "Description": description}),
            failure: "the backup could not be started".into(),
        };
        self.request_snapshot(env, ask, req).await
    }

    /// The copy of EBS snapshot `snap_id` in `dest_env`'s region this request started before a
    /// crash, or a new one.
    async fn start_ebs_copy(
        &self,
        req: &Request,
        env: &Environment,
        dest_env: &Environment,
        snap_id: &str,
    ) -> Result<String, Refuse> {
        let description = format!(
            "airlock isolated copy of {snap_id} ({}) for request {}",
            req.resource_id, req.id
        );
        if let Some(id) = self.find_snapshot(dest_env, &description, req).await? {
            return Ok(id);
        }
        let p = &env.partition;
        let dest = &dest_env.region;
        let ask = SnapshotAsk {
            action: "CopySnapshot",
            iam_action: EBS_COPY_SNAPSHOT,
            resources: vec![
                format!("arn:{p}:ec2:{}::snapshot/{snap_id}", env.region),
                format!("arn:{p}:ec2:{dest}::snapshot/*"),
            ],
            params: json!({"SourceRegion": env.region, "SourceSnapshotId": snap_id, "Description": description}),
            failure: format!("the backup could not be copied to {dest}"),
        };
        self.request_snapshot(dest_env, ask, req).await
    }

    /// Sends `ask` to `env`'s region; returns the new snapshot's id. The request is not yet
    /// recorded when it is accepted (the `after-backup-request` fault point).
    async fn request_snapshot(
        &self,
        env: &Environment,
        ask: SnapshotAsk,
        req: &Request,
    ) -> Result<String, Refuse> {
        let doc = self
            .ec2(
                env,
                ask.action,
                vec![ask.iam_action.into()],
                ask.resources,
                ask.params,
                req,
            )
            .await
            .map_err(|e| Refuse(format!("{}, so nothing was deleted: {e}", ask.failure)))?;
        fault_point("after-backup-request");
        snapshot_id(&doc, ask.action)
    }

    /// This account's snapshot in `env`'s region with exactly this description (which names the
    /// request): a backup this request started before a crash, before it was recorded.
    async fn find_snapshot(
        &self,
        env: &Environment,
        description: &str,
        req: &Request,
    ) -> Result<Option<String>, Refuse> {
        let found = self
            .ec2(
                env,
                "DescribeSnapshots",
                vec![EBS_DESCRIBE_SNAPSHOTS.into()],
                vec!["*".into()],
                json!({"Owner": ["self"], "Filter": [{"Name": "description", "Value": [description]}]}),
                req,
            )
            .await
            .map_err(|e| {
                Refuse(format!(
                    "could not look for this request's earlier backup in {}, so nothing was deleted: {e}",
                    env.region
                ))
            })?;
        let id = found["snapshotSet"][0]["snapshotId"]
            .as_str()
            .map(str::to_string);
        if let Some(id) = &id {
            self.say(format!(
                "{}: found this request's backup {id} in {} (resuming)",
                req.id, env.region
            ));
        }
        Ok(id)
    }

    /// A copy of the EBS snapshot being deleted, in the backup region (or its own region when
    /// none is set and the policy does not require isolation), waited for.
    async fn copy_snapshot(&self, req: &mut Request, env: &Environment) -> Result<(), Refuse> {
        if phase_at_least(&req.phase, "backup_done") {
            self.say(format!(
                "{}: backup {} already complete (resuming)",
                req.id,
                req.backup_copy_id.as_deref().unwrap_or("?")
            ));
            return Ok(());
        }
        let dest = match (&env.backup_region, env.require_isolated_backup) {
            (Some(d), _) => d.clone(),
            (None, true) => return Err(Refuse(NO_BACKUP_REGION.into())),
            (None, false) => env.region.clone(),
        };
        let dest_env = Environment {
            region: dest.clone(),
            ..env.clone()
        };
        let copy_id = match req.backup_copy_id.clone() {
            Some(id) => id,
            None => {
                let id = self.start_snapshot_copy(req, env, &dest_env).await?;
                self.record_copy(req, &id, &dest).await?;
                id
            }
        };
        self.wait_snapshot(&dest_env, &copy_id, req).await?;
        self.phase(
            req,
            "backup_done",
            json!({"backup_copy_id": req.backup_copy_id}),
        )
        .await?;
        fault_point("after-backup");
        Ok(())
    }

    /// The copy of the EBS snapshot being deleted, in `dest_env`'s region. The description names
    /// the request, so a copy started before a crash (and not yet recorded) is found again
    /// rather than made twice.
    async fn start_snapshot_copy(
        &self,
        req: &Request,
        env: &Environment,
        dest_env: &Environment,
    ) -> Result<String, Refuse> {
        let src = &req.resource_id;
        let description = format!("airlock copy of {src} before request {}", req.id);
        if let Some(id) = self.find_snapshot(dest_env, &description, req).await? {
            self.say(format!(
                "{}: found this request's copy {id} (resuming)",
                req.id
            ));
            return Ok(id);
        }
        let p = &env.partition;
        let dest = &dest_env.region;
        let ask = SnapshotAsk {
            action: "CopySnapshot",
            iam_action: EBS_COPY_SNAPSHOT,
            resources: vec![
                req.resource_arn.clone(),
                format!("arn:{p}:ec2:{dest}::snapshot/*"),
            ],
            params: json!({"SourceRegion": env.region, "SourceSnapshotId": src, "Description": description}),
            failure: format!("the snapshot could not be copied to {dest}"),
        };
        self.request_snapshot(dest_env, ask, req).await
    }

    async fn rds(
        &self,
        env: &Environment,
        action: &str,
        actions: Vec<String>,
        resources: Vec<String>,
        params: Value,
        req: &Request,
    ) -> Result<Value, AwsError> {
        let spec = AwsSpec::step("rds", Protocol::Query, action, RDS_VERSION);
        self.step(env, spec, actions, resources, params, req).await
    }

    /// The instance's final DB snapshot, named after the request; returns its name.
    async fn start_db_snapshot(&self, req: &Request, env: &Environment) -> Result<String, Refuse> {
        let name = format!("{RDS_BACKUP_PREFIX}{}", req.id);
        let here = rds_snapshot_arn(env, &env.region, &name);
        let sent = self
            .rds(
                env,
                "CreateDBSnapshot",
                vec![RDS_CREATE_SNAPSHOT.into()],
                vec![req.resource_arn.clone(), here],
                json!({"DBInstanceIdentifier": req.resource_id, "DBSnapshotIdentifier": name}),
                req,
            )
            .await;
        let found = format!(
            "{}: found this request's snapshot {name} (resuming)",
            req.id
        );
        self.db_snapshot_sent(sent, found, "started")?;
        Ok(name)
    }

    /// The copy of DB snapshot `name` in `dest_env`'s region, under the same name; returns
    /// the copy's ARN.
    async fn start_db_copy(
        &self,
        req: &Request,
        env: &Environment,
        dest_env: &Environment,
        name: &str,
    ) -> Result<String, Refuse> {
        let dest = &dest_env.region;
        let here = rds_snapshot_arn(env, &env.region, name);
        let there = rds_snapshot_arn(env, dest, name);
        let sent = self
            .rds(
                dest_env,
                "CopyDBSnapshot",
                vec![RDS_COPY_SNAPSHOT.into()],
                vec![here.clone(), there.clone()],
                json!({"SourceDBSnapshotIdentifier": here, "TargetDBSnapshotIdentifier": name, "CopyTags": true}),
                req,
            )
            .await;
        let found = format!("{}: found this request's copy in {dest} (resuming)", req.id);
        self.db_snapshot_sent(sent, found, &format!("copied to {dest}"))?;
        Ok(there)
    }

    /// The outcome of a request for a DB snapshot named after this request.
    /// `DBSnapshotAlreadyExists` means this request started it before a crash: it is found,
    /// not taken twice.
    fn db_snapshot_sent(
        &self,
        sent: Result<Value, AwsError>,
        found: String,
        what: &str,
    ) -> Result<(), Refuse> {
        match sent {
            Ok(_) => fault_point("after-backup-request"),
            Err(AwsError::Service { code, .. }) if code == "DBSnapshotAlreadyExists" => {
                self.say(found);
            }
            Err(e) => {
                return Err(Refuse(format!(
                    "the final snapshot could not be {what}, so nothing was deleted: {e}"
                )));
            }
        }
        Ok(())
    }

    async fn logs(
        &self,
        env: &Environment,
        action: &str,
        actions: Vec<String>,
        resources: Vec<String>,
        params: Value,
        req: &Request,
    ) -> Result<Value, AwsError> {
        let mut spec = AwsSpec::step("logs", Protocol::Json, action, "");
        spec.version = None;
        spec.target = Some(format!("Logs_20140328.{action}"));
        self.step(env, spec, actions, resources, params, req).await
    }

    /// Every event of the log group exported to the environment's `log_export_bucket` under
    /// `airlock/REQUEST_ID`, waited for until complete. The task is named after the request, so
    /// a restart finds the export it already started instead of starting another.
    async fn export_logs(&self, req: &mut Request, env: &Environment) -> Result<(), Refuse> {
        if phase_at_least(&req.phase, "backup_done") {
            self.say(format!(
                "{}: export {} already complete (resuming)",
                req.id,
                req.backup_id.as_deref().unwrap_or("?")
            ));
            return Ok(());
        }
        let Some(bucket) = env.log_export_bucket.clone() else {
            return Err(Refuse(format!(
                "environment `{}` names no log_export_bucket, so the log group cannot be exported before it is deleted; nothing was deleted",
                env.name
            )));
        };
        let group = req.resource_id.clone();
        let group_arns = vec![req.resource_arn.clone(), format!("{}:*", req.resource_arn)];
        let task_name = format!("airlock-{}", req.id);
        let prefix = format!("airlock/{}", req.id);
        let task_id = match &req.backup_id {
            Some(t) => t.clone(),
            None => {
                let earlier = self.find_export(env, &task_name, req).await?;
                let id = match earlier {
                    Some(id) => {
                        self.say(format!(
                            "{}: found this request's export {id} (resuming)",
                            req.id
                        ));
                        id
                    }
                    None => {
                        let doc = self
                            .logs(
                                env,
                                "CreateExportTask",
                                vec![LOGS_CREATE_EXPORT.into()],
                                group_arns.clone(),
                                json!({"taskName": task_name, "logGroupName": group, "from": 0, "to": now_ms(), "destination": bucket, "destinationPrefix": prefix}),
                                req,
                            )
                            .await
                            .map_err(|e| Refuse(format!("the export to s3://{bucket}/{prefix} could not be started, so nothing was deleted: {e}")))?;
                        fault_point("after-backup-request");
                        doc["taskId"]
                            .as_str()
                            .ok_or_else(|| Refuse("CreateExportTask returned no task id".into()))?
                            .to_string()
                    }
                };
                self.phase(
                    req,
                    "backup_started",
                    json!({"backup_id": id, "destination": format!("s3://{bucket}/{prefix}")}),
                )
                .await?;
                req.backup_id = Some(id.clone());
                id
            }
        };
        let what = format!("export {task_id}");
        self.wait_for(&what, async || {
            let doc = self
                .logs(
                    env,
                    "DescribeExportTasks",
                    vec![LOGS_DESCRIBE_EXPORTS.into()],
                    vec!["*".into()],
                    json!({"taskId": task_id}),
                    req,
                )
                .await
                .map_err(|e| Refuse(format!("could not follow {what}: {e}")))?;
            let code = doc["exportTasks"][0]["status"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_ascii_uppercase();
            let line = format!("{}: {what} to s3://{bucket}/{prefix}: {code}", req.id);
            let progress = match code.as_str() {
                "COMPLETED" => BackupState::Done,
                "CANCELLED" | "FAILED" | "UNKNOWN" => BackupState::Failed(code),
                _ => BackupState::Running,
            };
            Ok((line, progress))
        })
        .await?;
        self.phase(
            req,
            "backup_done",
            json!({"backup_id": task_id, "destination": format!("s3://{bucket}/{prefix}")}),
        )
        .await?;
        fault_point("after-backup");
        Ok(())
    }

    /// An export task this request started earlier (by its name), if any.
    async fn find_export(
        &self,
        env: &Environment,
        task_name: &str,
        req: &Request,
    ) -> Result<Option<String>, Refuse> {
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let mut params = json!({"limit": 50});
            if let Some(t) = &token {
                params["nextToken"] = json!(t);
            }
            let doc = self
                .logs(
                    env,
                    "DescribeExportTasks",
                    vec![LOGS_DESCRIBE_EXPORTS.into()],
                    vec!["*".into()],
                    params,
                    req,
                )
                .await
                .map_err(|e| {
                    Refuse(format!(
                        "could not look for an earlier export, so nothing was deleted: {e}"
                    ))
                })?;
            if let Some(t) = doc["exportTasks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["taskName"] == json!(task_name))
            {
                return Ok(t["taskId"].as_str().map(str::to_string));
            }
            token = doc["nextToken"].as_str().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(None)
    }

    async fn wait_db_snapshot(
        &self,
        env: &Environment,
        name: &str,
        req: &Request,
    ) -> Result<(), Refuse> {
        let what = format!("backup {name}");
        self.wait_for(&what, async || {
            let doc = self
                .rds(
                    env,
                    "DescribeDBSnapshots",
                    vec![RDS_DESCRIBE_SNAPSHOTS.into()],
                    vec![rds_snapshot_arn(env, &env.region, name)],
                    json!({"DBSnapshotIdentifier": name}),
                    req,
                )
                .await
                .map_err(|e| Refuse(format!("could not follow {what}: {e}")))?;
            let snaps = &doc["DescribeDBSnapshotsResult"]["DBSnapshots"]["DBSnapshot"];
            let item = if snaps.is_array() { &snaps[0] } else { snaps };
            let status = item["Status"].as_str().unwrap_or("unknown").to_string();
            let line = format!("{}: {what} in {}: {status}", req.id, env.region);
            let progress = match status.as_str() {
                "available" => BackupState::Done,
                "failed" | "error" | "incompatible-restore" | "unknown" => {
                    BackupState::Failed(status)
                }
                _ => BackupState::Running,
            };
            Ok((line, progress))
        })
        .await
    }

    async fn wait_snapshot(
        &self,
        env: &Environment,
        snap: &str,
        req: &Request,
    ) -> Result<(), Refuse> {
        let what = format!("backup {snap}");
        self.wait_for(&what, async || {
            let doc = self
                .ec2(
                    env,
                    "DescribeSnapshots",
                    vec![EBS_DESCRIBE_SNAPSHOTS.into()],
                    vec!["*".into()],
                    json!({"SnapshotId": [snap]}),
                    req,
                )
                .await
                .map_err(|e| Refuse(format!("could not follow {what}: {e}")))?;
            let item = &doc["snapshotSet"][0];
            let status = item["status"].as_str().unwrap_or("unknown").to_string();
            let percent = item["progress"].as_str().unwrap_or("");
            let line = format!("{}: {what} in {}: {status} {percent}", req.id, env.region);
            let progress = match status.as_str() {
                "completed" => BackupState::Done,
                "error" | "recoverable" | "unknown" => BackupState::Failed(status),
                _ => BackupState::Running,
            };
            Ok((line, progress))
        })
        .await
    }

    /// Follows a backup in progress: calls `look` every poll interval, says each new status
    /// line, and returns once it is done. A backup that fails, or is not done within
    /// BACKUP_TIMEOUT, refuses the request (nothing is deleted). `what` names it in messages.
    async fn wait_for(
        &self,
        what: &str,
        mut look: impl AsyncFnMut() -> Result<(String, BackupState), Refuse>,
    ) -> Result<(), Refuse> {
        let started = std::time::Instant::now();
        let mut last = String::new();
        loop {
            let (line, progress) = look().await?;
            if line != last {
                self.say(line.clone());
                last = line;
            }
            match progress {
                BackupState::Done => return Ok(()),
                BackupState::Failed(status) => {
                    return Err(Refuse(format!("{what} is `{status}`; nothing was deleted")));
                }
                BackupState::Running => {}
            }
            if started.elapsed() > BACKUP_TIMEOUT {
                return Err(Refuse(format!(
                    "{what} did not complete in {}; nothing was deleted",
                    humantime::format_duration(BACKUP_TIMEOUT)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn phase(&self, req: &Request, phase: &str, detail: Value) -> Result<(), Refuse> {
        self.queue
            .set_phase(&req.id, &self.owner, phase, detail, now_ms())
            .await
            .map_err(|e| Refuse(format!("could not record progress ({phase}): {e}")))
    }

    /// The action itself, under a session policy naming only this resource and action.
    async fn act(
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
        let creds = self.creds(env, &sp, &tool.name, req).await?;
        self.phase(req, "delete_sent", json!({"session_policy_sha256": sp.hash, "actions": sp.actions, "resources": sp.resources})).await?;
        self.say(format!(
            "{}: running {} on {} (session policy: {:?} on {:?})",
            req.id, spec.action, req.resource_id, sp.actions, sp.resources
        ));
        let already = match aws::call::fetch(&self.http, spec, None, env, args, &creds).await {
            Ok(_) => {
                fault_point("after-delete");
                false
            }
            Err(AwsError::Service { code, .. })
                if spec.already_done.contains(&code) && req.phase == "delete_sent" =>
            {
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

enum Done {
    Executed(Value),
    NotDue(i64),
}

/// The snapshot backups that share one shape: a snapshot in the resource's region, then a
/// copy in the backup region.
#[derive(Debug, Clone, Copy)]
enum SnapshotKind {
    /// An EBS snapshot of a volume (EC2 CreateSnapshot, CopySnapshot).
    Ebs,
    /// A final DB snapshot of an RDS instance (CreateDBSnapshot, CopyDBSnapshot).
    Rds,
}

/// An EBS snapshot request (CreateSnapshot or CopySnapshot) under a session policy of exactly
/// `iam_action` on `resources`.
struct SnapshotAsk {
    action: &'static str,
    iam_action: &'static str,
    resources: Vec<String>,
    params: Value,
    /// What the refusal says when the request fails ("the backup could not be started").
    failure: String,
}

/// Why a backup is refused where the policy requires isolation but names no backup region.
const NO_BACKUP_REGION: &str =
    "the policy requires an isolated backup but names no backup_region; nothing was deleted";

/// The snapshot id `action` (CreateSnapshot, CopySnapshot) answered with.
fn snapshot_id(doc: &Value, action: &str) -> Result<String, Refuse> {
    doc["snapshotId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Refuse(format!("{action} returned no snapshot id")))
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// Fault injection for crash tests: `AIRLOCK_FAULT=kill-after-backup-request` makes the executor
/// kill itself with SIGKILL right after a backup request (snapshot, copy, export) was accepted,
/// before it is recorded; `kill-after-backup` right after the backup is recorded, before the
/// action;
/// `kill-after-delete` right after the action succeeded, before the outcome is recorded. It
/// can only make the executor stop; it skips nothing.
fn fault_point(name: &str) {
    if std::env::var("AIRLOCK_FAULT")
        .is_ok_and(|f| f.strip_prefix("kill-").is_some_and(|p| p == name))
    {
        // SAFETY: kill(2) on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
