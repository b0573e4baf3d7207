//! The executor: runs approved, due requests, and nothing else. Run by the operator with the
//! executor's credential (never by `airlock serve`).
//!
//! Before it claims anything, the policy it loaded (and the tool files it enables) must be
//! signed by an approver in the trust file and still be the files on disk; otherwise due
//! requests are held (they stay approved, with the reason recorded). For each request it claims
//! (atomically, with a lease), it checks everything again from the sources it trusts rather
//! than the queue row ([`verify`]): the stored call still hashes to the signed hash, the signed
//! policy in force still says `approve` for it, every approval signature verifies against the
//! trust file, enough distinct trusted approvers signed, the signed cooldown has passed, and
//! the resource is still what was approved. Then it takes the backup the tool declares
//! ([`crate::backup`]) and runs the action under a session policy naming only that resource and
//! that action ([`act`]). Progress is recorded as it goes, so a crash at any point resumes on
//! restart and a request is never executed twice.

mod act;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::approval::trust::TrustFile;
use crate::backup::{self, CrashPoint, Refuse};
use crate::catalogue::Catalogue;
use crate::credentials::CredentialBroker;
use crate::engine::Engine;
use crate::policy::Policy;
use crate::policy::signature::Integrity;
use crate::queue::{ClaimOwner, Queue, QueueError, Request, State};
use crate::timefmt::{Clock, SystemClock};

/// How long one claim holds a request before another executor may resume it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30 * 60);

/// What happened to one request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub request_id: String,
    pub state: String,
    pub message: String,
}

/// Progress lines for the person watching (stderr).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Called at each [`CrashPoint`]; tests use it to stop the executor there, as a crash would
/// (the future never completes and the test drops it).
pub type CrashHook = Arc<dyn Fn(CrashPoint) -> crate::BoxFuture<'static, ()> + Send + Sync>;

pub struct Executor {
    policy: Arc<Policy>,
    trust: TrustFile,
    queue: Arc<Queue>,
    broker: Arc<dyn CredentialBroker>,
    /// An engine over the same policy acting as the executor: it looks at resources under the
    /// executor's own credential, through the same validated, scoped path as an agent's read.
    engine: Engine,
    owner: ClaimOwner,
    lease: Duration,
    poll: Duration,
    progress: Progress,
    /// Whether the policy this executor loaded is signed by a trusted approver.
    integrity: Integrity,
    clock: Arc<dyn Clock>,
    crash_hook: Option<CrashHook>,
}

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
        let engine = Engine::new(policy.clone(), catalogue, broker.clone()).as_executor();
        Self {
            policy,
            trust,
            queue,
            broker,
            engine,
            owner: ClaimOwner::this_process(),
            lease: DEFAULT_LEASE,
            poll: Duration::from_secs(2),
            progress,
            integrity,
            clock: Arc::new(SystemClock),
            crash_hook: None,
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

    /// Send AWS requests through `aws` (a fake endpoint in tests).
    pub fn with_aws(mut self, aws: Arc<dyn crate::aws::call::AwsCaller>) -> Self {
        self.engine = self.engine.with_aws(aws);
        self
    }

    /// Take "now" from `clock` (a hand-moved clock in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Claim as `owner` instead of this process (tests run several executors in one process).
    pub fn with_owner(mut self, owner: ClaimOwner) -> Self {
        self.owner = owner;
        self
    }

    /// Call `hook` at each crash point (tests).
    pub fn with_crash_hook(mut self, hook: CrashHook) -> Self {
        self.crash_hook = Some(hook);
        self
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn say(&self, s: String) {
        (self.progress)(&s);
    }

    fn actor(&self) -> String {
        format!("executor:{}", self.owner.0)
    }

    /// Run every request that is due now; return what happened to each.
    pub async fn run_once(&self) -> Result<Vec<Outcome>, QueueError> {
        for id in self.queue.expire_due(self.now()).await? {
            self.say(format!("{id}: expired"));
        }
        // An unsigned (or changed) policy runs nothing: due requests stay approved, with the
        // reason recorded, and run once a trusted approver signs the policy.
        let st = self.integrity.check_fresh(&*self.queue).await;
        if !st.signed {
            let why = format!(
                "the policy is not signed by a trusted approver: {}. A human must review policy.toml and the tool files it enables and run `airlock policy sign`; this request stays approved and runs once the policy is signed",
                st.problem.as_deref().unwrap_or("no valid signature")
            );
            return self.hold_due(&why).await;
        }
        let mut out = Vec::new();
        while let Some(req) = self
            .queue
            .claim(&self.owner, self.lease.as_millis() as i64, self.now())
            .await?
        {
            let o = self.process(req).await;
            self.say(format!("{}: {} ({})", o.request_id, o.state, o.message));
            out.push(o);
        }
        Ok(out)
    }

    /// Hold every approved, due request for `why` (recorded once per reason).
    async fn hold_due(&self, why: &str) -> Result<Vec<Outcome>, QueueError> {
        let now = self.now();
        let mut out = Vec::new();
        for r in self.queue.list(Some(State::Approved)).await? {
            if r.not_before.is_some_and(|nb| nb <= now) {
                if self.queue.hold(&r.id, &self.actor(), why, now).await? {
                    self.say(format!("{}: held ({why})", r.id));
                }
                out.push(Outcome {
                    request_id: r.id,
                    state: "held".into(),
                    message: why.to_string(),
                });
            }
        }
        Ok(out)
    }

    /// The next approved request's due time, if any.
    pub async fn next_due(&self) -> Result<Option<(String, i64)>, QueueError> {
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
        match self.execute(req).await {
            Ok(Done::Executed(outcome)) => self.finish(&id, State::Executed, outcome).await,
            Ok(Done::NotDue(due)) => {
                let _ = self
                    .queue
                    .release(
                        &id,
                        &self.owner,
                        due,
                        "not due yet: the signed cooldown has not passed",
                        self.now(),
                    )
                    .await;
                Outcome {
                    request_id: id,
                    state: "approved".into(),
                    message: format!(
                        "not due for {}",
                        crate::queue::view::countdown(due - self.now())
                    ),
                }
            }
            Err(Refuse(why)) => {
                let outcome = self.failure(&id, why).await;
                self.finish(&id, State::Failed, outcome).await
            }
        }
    }

    /// A failed request's outcome: why, and every backup it made before it failed (kept, and
    /// named so nobody has to hunt for an orphaned snapshot).
    async fn failure(&self, id: &str, why: String) -> Value {
        let Ok(r) = self.queue.get(id).await else {
            return json!({"error": why});
        };
        let made: Vec<String> = [
            r.backup_id.as_ref().map(|b| format!("`{b}`")),
            r.backup_copy_id.as_ref().map(|c| format!("its copy `{c}`")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if made.is_empty() {
            return json!({"error": why});
        }
        json!({
            "error": format!(
                "{why}. The backup made before the failure is kept: {}; delete it when it is no longer needed",
                made.join(" and ")
            ),
            "snapshot_id": r.backup_id,
            "copy_snapshot_id": r.backup_copy_id,
        })
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
            .finish(id, &self.owner, to, outcome, self.now())
            .await
        {
            Ok(r) => Outcome {
                request_id: id.into(),
                state: r.state.to_string(),
                message,
            },
            Err(e) => Outcome {
                request_id: id.into(),
                state: "unknown".into(),
                message: format!("could not record the outcome: {e}"),
            },
        }
    }

    /// Verify, back up, act.
    async fn execute(&self, req: Request) -> Result<Done, Refuse> {
        let (tool, args, env, rule) = self.verify_call(&req)?;
        let due = self.verify_approvals(&req, &rule).await?;
        if due > self.now() {
            return Ok(Done::NotDue(due));
        }
        self.say(format!(
            "{}: verified ({} in {}): checking the resource",
            req.id, req.resource_id, env.name
        ));
        if self.look(&req, &tool, &args).await?.is_none() {
            return if req.phase() == crate::queue::Phase::DeleteSent {
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
        let mut req = req;
        let job = act::Job::new(self, &req);
        if let Some(kind) = tool.backup {
            backup::run(kind, &job, &mut req, &env).await?;
        }
        job.act(&req, &tool, &args, &env).await
    }
}

enum Done {
    Executed(Value),
    NotDue(i64),
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// Fault injection for crash tests of the real binary: `AIRLOCK_FAULT=kill-after-backup-request`
/// makes the executor kill itself with SIGKILL right after a backup request (snapshot, copy,
/// export) was accepted, before it is recorded; `kill-after-backup` right after the backup is
/// recorded, before the action; `kill-after-delete` right after the action succeeded, before
/// the outcome is recorded. It can only make the executor stop; it skips nothing.
fn fault_point(point: CrashPoint) {
    if std::env::var("AIRLOCK_FAULT")
        .is_ok_and(|f| f.strip_prefix("kill-").is_some_and(|p| p == point.as_str()))
    {
        // SAFETY: kill(2) on our own pid.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
