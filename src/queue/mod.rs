//! The approval queue: requests bound to an exact call, the approvals over them, and the
//! hash-chained audit log.
//!
//! [`Queue`] is the domain layer, written once for every backend: the state machine
//! ([`State::may_become`]), the lease rules of claims, the approval threshold, and the audit
//! chain ([`audit`]). Under it a backend ([`store::Store`]; [`sqlite`] is the embedded one) only
//! applies a compare-and-set to one request together with the audit events that record it, in
//! one transaction, so two approvers or two executors racing cannot both win, and a crash
//! leaves either the old state or the new one.
//!
//! States: `pending -> approved -> executing -> executed | failed`; `pending -> denied |
//! cancelled | expired`; `approved -> cancelled | expired`.

pub mod audit;
pub mod columns;
mod model;
pub mod sqlite;
pub mod store;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

pub use model::{
    Approval, Call, NewRequest, Phase, QueueError, Request, State, call_hash, canonical_json,
    new_id,
};
use store::{Applied, Backend, Change, Draft, Expect, Filter, Mark, Store, Write};

/// Where the queue lives by default: the user's state directory, outside any workspace.
pub fn default_db_path() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("airlock").join("queue.db")
}

/// Who holds an executing request: `host:pid:nonce`.
#[derive(Debug, Clone)]
pub struct ClaimOwner(pub String);

impl ClaimOwner {
    pub fn this_process() -> Self {
        let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
        ClaimOwner(format!("{}:{}:{nonce}", hostname(), std::process::id()))
    }

    /// How the holder appears in the audit log.
    pub fn actor(&self) -> String {
        format!("executor:{}", self.0)
    }

    /// The owner ran on this host and its process is gone (it crashed or was killed). Only a
    /// hint for a queue on this host: a lease is what holds across hosts.
    pub fn is_dead_local(owner: &str) -> bool {
        let mut parts = owner.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        host == hostname()
            && pid.parse::<u32>().is_ok_and(|p| {
                p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
            })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// How many times an approval is retried when another one raced it.
const APPROVAL_RETRIES: usize = 8;

/// The queue over one backend.
#[derive(Clone)]
pub struct Queue {
    store: Arc<dyn Store>,
    /// Where it is, for people (a file path, or a URL without its password).
    pub location: String,
}

impl Queue {
    /// Open (creating it if needed) and migrate the SQLite queue file at `path`.
    pub async fn open(path: &Path) -> Result<Self, QueueError> {
        let store = sqlite::SqliteStore::open(path).await?;
        Ok(Self::over(Arc::new(store), path.display().to_string()))
    }

    /// A queue over any backend.
    pub fn over(store: Arc<dyn Store>, location: String) -> Self {
        Self { store, location }
    }

    pub async fn create(
        &self,
        r: &NewRequest,
        actor: &str,
        now: i64,
    ) -> Result<Request, QueueError> {
        let call_json = r.call.canonical();
        let hash = call_hash(&call_json);
        let req = Request {
            id: new_id(),
            tool: r.call.tool.clone(),
            environment: r.call.environment.clone(),
            account: r.call.account.clone(),
            region: r.call.region.clone(),
            resource_id: r.resource_id.clone(),
            resource_arn: r.call.resource_arn.clone(),
            call_json,
            call_hash: hash.clone(),
            policy_hash: r.policy_hash.clone(),
            rule: r.rule.clone(),
            approvers_required: r.approvers_required,
            cooldown_ms: r.cooldown_ms,
            reason: r.reason.clone(),
            client_name: r.client_name.clone(),
            client_version: r.client_version.clone(),
            session_id: r.session_id.clone(),
            resource_json: r.resource_json.clone(),
            state: State::Pending,
            created_at: now,
            updated_at: now,
            expires_at: now + r.ttl_ms,
            not_before: None,
            lease_owner: None,
            lease_until: None,
            attempts: 0,
            phase: Phase::Start,
            backup_id: None,
            backup_copy_id: None,
            outcome: None,
        };
        let event = Draft {
            at: now,
            request_id: Some(req.id.clone()),
            actor: actor.into(),
            event: "requested".into(),
            detail: json!({"to": "pending", "tool": r.call.tool, "resource": r.call.resource_arn, "call_hash": hash,
                    "policy_hash": r.policy_hash, "rule": r.rule, "reason": r.reason}),
        };
        self.store.insert(&req, &event).await?;
        Ok(req)
    }

    pub async fn get(&self, id: &str) -> Result<Request, QueueError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| QueueError::NotFound(id.to_string()))
    }

    pub async fn list(&self, state: Option<State>) -> Result<Vec<Request>, QueueError> {
        self.store
            .list(Filter {
                state,
                ..Filter::default()
            })
            .await
    }

    pub async fn approvals(&self, id: &str) -> Result<Vec<Approval>, QueueError> {
        self.store.approvals(id).await
    }

    /// Expire pending and approved requests past their deadline.
    pub async fn expire_due(&self, now: i64) -> Result<Vec<String>, QueueError> {
        let due = self
            .store
            .list(Filter {
                expired_at: Some(now),
                ..Filter::default()
            })
            .await?;
        let mut done = Vec::new();
        for r in due {
            match self
                .transition(
                    &r.id,
                    &[State::Pending, State::Approved],
                    State::Expired,
                    "airlock",
                    "expired",
                    json!({}),
                    now,
                )
                .await
            {
                Ok(_) => done.push(r.id),
                Err(QueueError::WrongState { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Apply `write` if request `id` matches `expect`; a mismatch is `WrongState` (with the
    /// state it is in now, or `alt` when given) for `action`.
    async fn cas(
        &self,
        id: &str,
        expect: Expect,
        write: Write,
        action: &str,
        alt: Option<&str>,
    ) -> Result<Request, QueueError> {
        match self.store.apply(id, &expect, &write).await? {
            Applied::Done(r) => Ok(*r),
            Applied::Conflict(None) => Err(QueueError::NotFound(id.to_string())),
            Applied::Conflict(Some(now)) => Err(QueueError::WrongState {
                id: id.into(),
                state: alt.map_or_else(|| now.state.to_string(), str::to_string),
                action: action.into(),
            }),
        }
    }

    /// Move a request from one of `from` to `to`, atomically, with its audit event.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition(
        &self,
        id: &str,
        from: &[State],
        to: State,
        actor: &str,
        event: &str,
        detail: Value,
        now: i64,
    ) -> Result<Request, QueueError> {
        if let Some(f) = from.iter().find(|f| !f.may_become(to)) {
            return Err(QueueError::Transition { from: *f, to });
        }
        let current = self.get(id).await?;
        if !from.contains(&current.state) {
            return Err(QueueError::WrongState {
                id: id.into(),
                state: current.state.to_string(),
                action: event.into(),
            });
        }
        let mut detail = detail;
        if let Value::Object(m) = &mut detail {
            m.insert("from".into(), json!(current.state));
            m.insert("to".into(), json!(to));
        }
        let write = one(
            Change {
                state: Some(to),
                updated_at: now,
                ..Change::default()
            },
            draft(now, id, actor, event, detail),
        );
        let expect = Expect {
            states: vec![current.state],
            ..Expect::default()
        };
        self.cas(id, expect, write, event, None).await
    }

    /// Record one approval. When `required` distinct approvals exist, the request becomes
    /// `approved`, due at the latest signed not-before, and expires `window_ms` after that.
    /// Returns the request and how many approvals it has. Retried when another approval of
    /// the same request lands in between (the count is compared, not assumed).
    pub async fn add_approval(
        &self,
        a: &Approval,
        required: i64,
        window_ms: i64,
        actor: &str,
        now: i64,
    ) -> Result<(Request, i64), QueueError> {
        for _ in 0..APPROVAL_RETRIES {
            let r = self.get(&a.request_id).await?;
            if r.state != State::Pending {
                return Err(QueueError::WrongState {
                    id: a.request_id.clone(),
                    state: r.state.to_string(),
                    action: "approved".into(),
                });
            }
            let before = self.store.approvals(&a.request_id).await?;
            if before.iter().any(|b| b.public_key == a.public_key) {
                return Err(QueueError::WrongState {
                    id: a.request_id.clone(),
                    state: "already approved with this key".into(),
                    action: "approved again by the same approver".into(),
                });
            }
            let count = before.len() as i64 + 1;
            let mut write = Write {
                change: Change::default(),
                approval: Some(a.clone()),
                events: vec![draft(
                    now,
                    &a.request_id,
                    actor,
                    "approval_recorded",
                    json!({"approver": a.approver, "public_key": a.public_key, "not_before": a.not_before, "signature": a.signature}),
                )],
            };
            if count >= required {
                let due = before
                    .iter()
                    .map(|b| b.not_before)
                    .chain([a.not_before])
                    .max()
                    .unwrap_or(a.not_before);
                write.change = Change {
                    state: Some(State::Approved),
                    not_before: Some(due),
                    expires_at: Some(due + window_ms),
                    updated_at: now,
                    ..Change::default()
                };
                write.events.push(draft(
                    now,
                    &a.request_id,
                    actor,
                    "approved",
                    json!({"from": "pending", "to": "approved", "approvals": count, "not_before": due}),
                ));
            }
            let expect = Expect {
                states: vec![State::Pending],
                approvals: Some(before.len()),
                ..Expect::default()
            };
            if let Applied::Done(r) = self.store.apply(&a.request_id, &expect, &write).await? {
                return Ok((*r, count));
            }
        }
        Err(QueueError::Db(format!(
            "request {} changed under {APPROVAL_RETRIES} attempts to record this approval; try again",
            a.request_id
        )))
    }

    /// Claim one request for execution: an approved one that is due, or an executing one whose
    /// holder's lease ran out (or, on a queue on this host, whose holder died). One winner per
    /// request.
    pub async fn claim(
        &self,
        owner: &ClaimOwner,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Request>, QueueError> {
        let due = self
            .store
            .list(Filter {
                due_at: Some(now),
                limit: Some(32),
                ..Filter::default()
            })
            .await?;
        let running = self
            .store
            .list(Filter {
                state: Some(State::Executing),
                ..Filter::default()
            })
            .await?;
        let local = self.store.backend() == Backend::Sqlite;
        for r in due.into_iter().chain(running) {
            let reclaim = r.state == State::Executing;
            if reclaim && !lease_lapsed(&r, now, local) {
                continue;
            }
            let event = if reclaim { "resumed" } else { "claimed" };
            let write = one(
                Change {
                    state: Some(State::Executing),
                    lease: Some(Some((owner.0.clone(), now + lease_ms))),
                    add_attempt: true,
                    updated_at: now,
                    ..Change::default()
                },
                draft(
                    now,
                    &r.id,
                    &owner.actor(),
                    event,
                    json!({"from": r.state, "to": "executing", "previous_holder": r.lease_owner}),
                ),
            );
            let expect = Expect {
                states: vec![r.state],
                lease_owner: Some(r.lease_owner.clone()),
                ..Expect::default()
            };
            if let Applied::Done(r) = self.store.apply(&r.id, &expect, &write).await? {
                return Ok(Some(*r));
            }
            // Someone else won this one.
        }
        Ok(None)
    }

    /// [`Self::cas`] of what only the lease holder `owner` may write.
    async fn cas_held(
        &self,
        id: &str,
        owner: &ClaimOwner,
        write: Write,
        action: &str,
    ) -> Result<Request, QueueError> {
        let alt = Some("not held by this executor");
        self.cas(id, Self::held_by(owner), write, action, alt).await
    }

    /// What only the holder of an executing request may write.
    fn held_by(owner: &ClaimOwner) -> Expect {
        Expect {
            states: vec![State::Executing],
            lease_owner: Some(Some(owner.0.clone())),
            ..Expect::default()
        }
    }

    /// Record executor progress (only the lease holder can): the phase reached, with the backup
    /// ids in `detail` (`backup_id`, `backup_copy_id`) remembered.
    pub async fn set_phase(
        &self,
        id: &str,
        owner: &ClaimOwner,
        phase: Phase,
        detail: Value,
        now: i64,
    ) -> Result<(), QueueError> {
        let text = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_string);
        let write = one(
            Change {
                phase: Some(phase),
                backup_id: text("backup_id"),
                backup_copy_id: text("backup_copy_id"),
                updated_at: now,
                ..Change::default()
            },
            draft(now, id, &owner.actor(), phase.as_str(), detail.clone()),
        );
        self.cas_held(id, owner, write, phase.as_str())
            .await
            .map(|_| ())
    }

    /// Finish an executing request (only the lease holder can).
    pub async fn finish(
        &self,
        id: &str,
        owner: &ClaimOwner,
        to: State,
        outcome: Value,
        now: i64,
    ) -> Result<Request, QueueError> {
        if !State::Executing.may_become(to) || !to.is_final() {
            return Err(QueueError::Transition {
                from: State::Executing,
                to,
            });
        }
        let mut detail = outcome.clone();
        if let Value::Object(m) = &mut detail {
            m.insert("from".into(), json!("executing"));
            m.insert("to".into(), json!(to));
        }
        let write = one(
            Change {
                state: Some(to),
                outcome: Some(outcome),
                lease: Some(None),
                updated_at: now,
                ..Change::default()
            },
            draft(now, id, &owner.actor(), to.as_str(), detail),
        );
        self.cas_held(id, owner, write, to.as_str()).await
    }

    /// Give a claimed request back (not due after all): approved again, due at `not_before`.
    pub async fn release(
        &self,
        id: &str,
        owner: &ClaimOwner,
        not_before: i64,
        why: &str,
        now: i64,
    ) -> Result<(), QueueError> {
        let write = one(
            Change {
                state: Some(State::Approved),
                not_before: Some(not_before),
                lease: Some(None),
                updated_at: now,
                ..Change::default()
            },
            draft(
                now,
                id,
                &owner.actor(),
                "released",
                json!({"from": "executing", "to": "approved", "why": why, "not_before": not_before}),
            ),
        );
        // Not holding it (any more) is not an error: there is nothing to give back.
        self.store
            .apply(id, &Self::held_by(owner), &write)
            .await
            .map(|_| ())
    }

    /// Record why the executor holds an approved, due request without running it (the policy
    /// is not signed): the request stays `approved`, its outcome says why, and the audit log
    /// gets a `held` event when the reason is new. Returns whether anything changed.
    pub async fn hold(
        &self,
        id: &str,
        actor: &str,
        why: &str,
        now: i64,
    ) -> Result<bool, QueueError> {
        let outcome = json!({"held": why});
        let r = self.get(id).await?;
        if r.state != State::Approved || r.outcome.as_ref() == Some(&outcome) {
            return Ok(false);
        }
        let write = one(
            Change {
                outcome: Some(outcome),
                updated_at: now,
                ..Change::default()
            },
            draft(now, id, actor, "held", json!({"why": why})),
        );
        let expect = Expect {
            states: vec![State::Approved],
            outcome: Some(r.outcome.clone()),
            ..Expect::default()
        };
        Ok(matches!(
            self.store.apply(id, &expect, &write).await?,
            Applied::Done(_)
        ))
    }

    /// The newest trusted signature of the policy at `policy_path` honoured so far
    /// (signed_at_ms, signer), without recording anything (`airlock policy status`).
    pub async fn newest_policy_signature(
        &self,
        policy_path: &str,
    ) -> Result<Option<(i64, String)>, QueueError> {
        Ok(self
            .store
            .mark(policy_path)
            .await?
            .map(|m| (m.signed_at_ms, m.signer)))
    }

    /// Rollback protection for signed policies: `signed_at_ms` is the newest trusted
    /// signature of the policy at `policy_path` that is about to be honoured. When a newer
    /// trusted signature of that file was honoured before, returns it (signed_at_ms, signer):
    /// the caller must refuse (this is a rollback to an older signed policy). Otherwise records
    /// this one as the newest seen (when it is newer) and returns `None`. The mark only rises.
    pub async fn note_policy_signature(
        &self,
        policy_path: &str,
        signed_at_ms: i64,
        signer: &str,
        manifest_hash: &str,
        now: i64,
    ) -> Result<Option<(i64, String)>, QueueError> {
        let mark = Mark {
            signed_at_ms,
            signer: signer.into(),
            manifest_hash: manifest_hash.into(),
            seen_at: now,
        };
        for _ in 0..APPROVAL_RETRIES {
            let high = self.store.mark(policy_path).await?;
            match &high {
                Some(h) if h.signed_at_ms > signed_at_ms => {
                    return Ok(Some((h.signed_at_ms, h.signer.clone())));
                }
                Some(h) if h.signed_at_ms == signed_at_ms => return Ok(None),
                _ => {}
            }
            if self
                .store
                .set_mark(policy_path, high.as_ref(), &mark)
                .await?
            {
                return Ok(None);
            }
        }
        Err(QueueError::Db(
            "the policy signature mark kept changing; try again".into(),
        ))
    }

    /// An event that changes no state (a refused approval attempt, a tamper finding).
    pub async fn note(
        &self,
        request_id: Option<&str>,
        actor: &str,
        event: &str,
        detail: Value,
        now: i64,
    ) -> Result<(), QueueError> {
        let d = Draft {
            at: now,
            request_id: request_id.map(str::to_string),
            actor: actor.into(),
            event: event.into(),
            detail,
        };
        self.store.append(std::slice::from_ref(&d)).await
    }

    /// The whole audit log, in order.
    pub async fn events(&self) -> Result<Vec<audit::Event>, QueueError> {
        self.store.events().await
    }

    /// Check the audit chain and that it explains every request and approval.
    pub async fn verify_audit(&self) -> Result<audit::Report, QueueError> {
        let events = self.store.events().await?;
        let requests: Vec<(String, String)> = self
            .list(None)
            .await?
            .into_iter()
            .map(|r| (r.id, r.state.to_string()))
            .collect();
        let signatures = self.store.signatures().await?;
        Ok(audit::verify(&events, &requests, &signatures))
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// May another executor take over this executing request? Its lease ran out, or (on a queue
/// on this host) its holder's process is gone.
fn lease_lapsed(r: &Request, now: i64, local: bool) -> bool {
    r.lease_until.is_some_and(|u| u < now)
        || (local
            && r.lease_owner
                .as_deref()
                .is_some_and(ClaimOwner::is_dead_local))
}

/// A compare-and-set of `change`, recorded by `event`.
fn one(change: Change, event: Draft) -> Write {
    Write {
        change,
        approval: None,
        events: vec![event],
    }
}

fn draft(at: i64, id: &str, actor: &str, event: &str, detail: Value) -> Draft {
    Draft {
        at,
        request_id: Some(id.to_string()),
        actor: actor.into(),
        event: event.into(),
        detail,
    }
}
