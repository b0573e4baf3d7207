//! The SQLite store behind [`Queue`](super::Queue).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::audit::{self, Report};
use super::{Approval, NewRequest, QueueError, Request, State, call_hash, new_id};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

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
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
        ClaimOwner(format!("{host}:{}:{nonce}", std::process::id()))
    }

    /// The owner ran on this host and its process is gone (it crashed or was killed).
    pub fn is_dead_local(owner: &str) -> bool {
        let mut parts = owner.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return false;
        };
        let me = ClaimOwner::this_process();
        let my_host = me.0.split(':').next().unwrap_or_default();
        host == my_host
            && pid.parse::<u32>().is_ok_and(|p| {
                p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
            })
    }
}

#[derive(Clone)]
pub struct Queue {
    pool: SqlitePool,
    pub path: PathBuf,
}

impl Queue {
    /// Open (creating it if needed) and migrate the queue file.
    pub async fn open(path: &Path) -> Result<Self, QueueError> {
        let err = |m: String| QueueError::Open {
            path: path.display().to_string(),
            message: m,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| err(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| err(e.to_string()))?;
        MIGRATOR.run(&pool).await.map_err(|e| err(e.to_string()))?;
        Ok(Queue {
            pool,
            path: path.to_path_buf(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that takes the write lock at once, so read-then-write sequences
    /// (the audit chain's head, conditional transitions) cannot interleave.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, QueueError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn create(
        &self,
        r: &NewRequest,
        actor: &str,
        now: i64,
    ) -> Result<Request, QueueError> {
        let call_json = r.call.canonical();
        let hash = call_hash(&call_json);
        let id = new_id();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO requests (id, tool, environment, account, region, resource_id, resource_arn, call_json, call_hash,
               policy_hash, rule, approvers_required, cooldown_ms, reason, client_name, client_version, session_id,
               resource_json, state, created_at, updated_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
        )
        .bind(&id)
        .bind(&r.call.tool)
        .bind(&r.call.environment)
        .bind(&r.call.account)
        .bind(&r.call.region)
        .bind(&r.resource_id)
        .bind(&r.call.resource_arn)
        .bind(&call_json)
        .bind(&hash)
        .bind(&r.policy_hash)
        .bind(&r.rule)
        .bind(r.approvers_required)
        .bind(r.cooldown_ms)
        .bind(&r.reason)
        .bind(&r.client_name)
        .bind(&r.client_version)
        .bind(&r.session_id)
        .bind(&r.resource_json)
        .bind(now)
        .bind(now)
        .bind(now + r.ttl_ms)
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            now,
            Some(&id),
            actor,
            "requested",
            &json!({"to": "pending", "tool": r.call.tool, "resource": r.call.resource_arn, "call_hash": hash,
                    "policy_hash": r.policy_hash, "rule": r.rule, "reason": r.reason}),
        )
        .await?;
        tx.commit().await?;
        // Built from what was written rather than read back: one query less per request.
        Ok(Request {
            id,
            tool: r.call.tool.clone(),
            environment: r.call.environment.clone(),
            account: r.call.account.clone(),
            region: r.call.region.clone(),
            resource_id: r.resource_id.clone(),
            resource_arn: r.call.resource_arn.clone(),
            call_json,
            call_hash: hash,
            policy_hash: r.policy_hash.clone(),
            rule: r.rule.clone(),
            approvers_required: r.approvers_required,
            cooldown_ms: r.cooldown_ms,
            reason: r.reason.clone(),
            client_name: r.client_name.clone(),
            client_version: r.client_version.clone(),
            session_id: r.session_id.clone(),
            resource_json: r.resource_json.clone(),
            state: State::Pending.as_str().into(),
            created_at: now,
            updated_at: now,
            expires_at: now + r.ttl_ms,
            not_before: None,
            lease_owner: None,
            lease_until: None,
            attempts: 0,
            phase: String::new(),
            backup_id: None,
            backup_copy_id: None,
            outcome: None,
        })
    }

    pub async fn get(&self, id: &str) -> Result<Request, QueueError> {
        sqlx::query_as("SELECT * FROM requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| QueueError::NotFound(id.to_string()))
    }

    pub async fn list(&self, state: Option<State>) -> Result<Vec<Request>, QueueError> {
        let rows = match state {
            Some(s) => {
                sqlx::query_as("SELECT * FROM requests WHERE state = ? ORDER BY created_at")
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT * FROM requests ORDER BY created_at")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows)
    }

    pub async fn approvals(&self, id: &str) -> Result<Vec<Approval>, QueueError> {
        Ok(
            sqlx::query_as("SELECT * FROM approvals WHERE request_id = ? ORDER BY approved_at")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Expire pending and approved requests past their deadline.
    pub async fn expire_due(&self, now: i64) -> Result<Vec<String>, QueueError> {
        let ids: Vec<(String, String)> =
            sqlx::query_as("SELECT id, state FROM requests WHERE state IN ('pending', 'approved') AND expires_at <= ?")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        let mut done = Vec::new();
        for (id, _) in ids {
            match self
                .transition(
                    &id,
                    &[State::Pending, State::Approved],
                    State::Expired,
                    "airlock",
                    "expired",
                    json!({}),
                    now,
                )
                .await
            {
                Ok(_) => done.push(id),
                Err(QueueError::WrongState { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
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
        mut detail: Value,
        now: i64,
    ) -> Result<Request, QueueError> {
        let mut tx = self.begin().await?;
        let current: Option<(String,)> = sqlx::query_as("SELECT state FROM requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((state,)) = current else {
            return Err(QueueError::NotFound(id.to_string()));
        };
        if !from.iter().any(|s| s.as_str() == state) {
            return Err(QueueError::WrongState {
                id: id.into(),
                state,
                action: event.into(),
            });
        }
        let n =
            sqlx::query("UPDATE requests SET state = ?, updated_at = ? WHERE id = ? AND state = ?")
                .bind(to.as_str())
                .bind(now)
                .bind(id)
                .bind(&state)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n != 1 {
            return Err(QueueError::WrongState {
                id: id.into(),
                state,
                action: event.into(),
            });
        }
        if let Value::Object(m) = &mut detail {
            m.insert("from".into(), json!(state));
            m.insert("to".into(), json!(to.as_str()));
        }
        audit::append(&mut tx, now, Some(id), actor, event, &detail).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Record one approval. When `required` distinct approvals exist, the request becomes
    /// `approved`, due at the latest signed not-before, and expires `window_ms` after that.
    pub async fn add_approval(
        &self,
        a: &Approval,
        required: i64,
        window_ms: i64,
        actor: &str,
        now: i64,
    ) -> Result<(Request, i64), QueueError> {
        let mut tx = self.begin().await?;
        let current: Option<(String,)> = sqlx::query_as("SELECT state FROM requests WHERE id = ?")
            .bind(&a.request_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((state,)) = current else {
            return Err(QueueError::NotFound(a.request_id.clone()));
        };
        if state != "pending" {
            return Err(QueueError::WrongState {
                id: a.request_id.clone(),
                state,
                action: "approved".into(),
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO approvals (request_id, approver, public_key, approved_at, not_before, signature)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, public_key) DO NOTHING",
        )
        .bind(&a.request_id)
        .bind(&a.approver)
        .bind(&a.public_key)
        .bind(a.approved_at)
        .bind(a.not_before)
        .bind(&a.signature)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(QueueError::WrongState {
                id: a.request_id.clone(),
                state: "already approved with this key".into(),
                action: "approved again by the same approver".into(),
            });
        }
        audit::append(
            &mut tx,
            now,
            Some(&a.request_id),
            actor,
            "approval_recorded",
            &json!({"approver": a.approver, "public_key": a.public_key, "not_before": a.not_before, "signature": a.signature}),
        )
        .await?;
        let (count, due): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), MAX(not_before) FROM approvals WHERE request_id = ?")
                .bind(&a.request_id)
                .fetch_one(&mut *tx)
                .await?;
        if count >= required {
            sqlx::query(
                "UPDATE requests SET state = 'approved', not_before = ?, expires_at = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
            )
            .bind(due)
            .bind(due + window_ms)
            .bind(now)
            .bind(&a.request_id)
            .execute(&mut *tx)
            .await?;
            audit::append(
                &mut tx,
                now,
                Some(&a.request_id),
                actor,
                "approved",
                &json!({"from": "pending", "to": "approved", "approvals": count, "not_before": due}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok((self.get(&a.request_id).await?, count))
    }

    /// Claim one request for execution: an approved one that is due, or an executing one whose
    /// holder's lease ran out or whose holder died on this host. One winner per request.
    pub async fn claim(
        &self,
        owner: &ClaimOwner,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Request>, QueueError> {
        let candidates: Vec<(String, String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT * FROM (SELECT id, state, lease_owner, lease_until FROM requests
                 WHERE state = 'approved' AND not_before <= ? AND expires_at > ?
                 ORDER BY not_before LIMIT 32)
             UNION ALL
             SELECT id, state, lease_owner, lease_until FROM requests WHERE state = 'executing'",
        )
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for (id, state, holder, until) in candidates {
            let reclaim = state == "executing"
                && (until.is_some_and(|u| u < now)
                    || holder.as_deref().is_some_and(ClaimOwner::is_dead_local));
            if state == "executing" && !reclaim {
                continue;
            }
            let mut tx = self.begin().await?;
            let n = sqlx::query(
                "UPDATE requests SET state = 'executing', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
                 WHERE id = ? AND state = ? AND lease_owner IS ?",
            )
            .bind(&owner.0)
            .bind(now + lease_ms)
            .bind(now)
            .bind(&id)
            .bind(&state)
            .bind(&holder)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                continue; // someone else won
            }
            let event = if reclaim { "resumed" } else { "claimed" };
            audit::append(
                &mut tx,
                now,
                Some(&id),
                &format!("executor:{}", owner.0),
                event,
                &json!({"from": state, "to": "executing", "previous_holder": holder}),
            )
            .await?;
            tx.commit().await?;
            return Ok(Some(self.get(&id).await?));
        }
        Ok(None)
    }

    /// Record executor progress (only the lease holder can).
    pub async fn set_phase(
        &self,
        id: &str,
        owner: &ClaimOwner,
        phase: &str,
        detail: Value,
        now: i64,
    ) -> Result<(), QueueError> {
        let mut tx = self.begin().await?;
        let backup = detail.get("backup_id").and_then(Value::as_str);
        let copy = detail.get("backup_copy_id").and_then(Value::as_str);
        let n = sqlx::query(
            "UPDATE requests SET phase = ?, backup_id = COALESCE(?, backup_id), backup_copy_id = COALESCE(?, backup_copy_id), updated_at = ?
             WHERE id = ? AND state = 'executing' AND lease_owner = ?",
        )
        .bind(phase)
        .bind(backup)
        .bind(copy)
        .bind(now)
        .bind(id)
        .bind(&owner.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(QueueError::WrongState {
                id: id.into(),
                state: "not held by this executor".into(),
                action: phase.into(),
            });
        }
        audit::append(
            &mut tx,
            now,
            Some(id),
            &format!("executor:{}", owner.0),
            phase,
            &detail,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finish an executing request (only the lease holder can).
    pub async fn finish(
        &self,
        id: &str,
        owner: &ClaimOwner,
        to: State,
        mut outcome: Value,
        now: i64,
    ) -> Result<Request, QueueError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE requests SET state = ?, outcome = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
             WHERE id = ? AND state = 'executing' AND lease_owner = ?",
        )
        .bind(to.as_str())
        .bind(outcome.to_string())
        .bind(now)
        .bind(id)
        .bind(&owner.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(QueueError::WrongState {
                id: id.into(),
                state: "not held by this executor".into(),
                action: to.as_str().into(),
            });
        }
        if let Value::Object(m) = &mut outcome {
            m.insert("from".into(), json!("executing"));
            m.insert("to".into(), json!(to.as_str()));
        }
        audit::append(
            &mut tx,
            now,
            Some(id),
            &format!("executor:{}", owner.0),
            to.as_str(),
            &outcome,
        )
        .await?;
        tx.commit().await?;
        self.get(id).await
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
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE requests SET state = 'approved', not_before = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
             WHERE id = ? AND state = 'executing' AND lease_owner = ?",
        )
        .bind(not_before)
        .bind(now)
        .bind(id)
        .bind(&owner.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            audit::append(
                &mut tx,
                now,
                Some(id),
                &format!("executor:{}", owner.0),
                "released",
                &json!({"from": "executing", "to": "approved", "why": why, "not_before": not_before}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
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
        let outcome = json!({"held": why}).to_string();
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE requests SET outcome = ?, updated_at = ?
             WHERE id = ? AND state = 'approved' AND (outcome IS NULL OR outcome != ?)",
        )
        .bind(&outcome)
        .bind(now)
        .bind(id)
        .bind(&outcome)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            audit::append(&mut tx, now, Some(id), actor, "held", &json!({"why": why})).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The newest trusted signature of the policy at `policy_path` honoured so far
    /// (signed_at_ms, signer), without recording anything (`airlock policy status`).
    pub async fn newest_policy_signature(
        &self,
        policy_path: &str,
    ) -> Result<Option<(i64, String)>, QueueError> {
        Ok(sqlx::query_as(
            "SELECT signed_at_ms, signer FROM policy_signature_high WHERE policy_path = ?",
        )
        .bind(policy_path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Rollback protection for signed policies: `signed_at_ms` is the newest trusted
    /// signature of the policy at `policy_path` that is about to be honoured. When a newer
    /// trusted signature of that file was honoured before, returns it (signed_at_ms, signer):
    /// the caller must refuse (this is a rollback to an older signed policy). Otherwise records
    /// this one as the newest seen (when it is newer) and returns `None`.
    pub async fn note_policy_signature(
        &self,
        policy_path: &str,
        signed_at_ms: i64,
        signer: &str,
        manifest_hash: &str,
        now: i64,
    ) -> Result<Option<(i64, String)>, QueueError> {
        let mut tx = self.begin().await?;
        let high: Option<(i64, String)> = sqlx::query_as(
            "SELECT signed_at_ms, signer FROM policy_signature_high WHERE policy_path = ?",
        )
        .bind(policy_path)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((at, by)) = high {
            if at > signed_at_ms {
                tx.rollback().await?;
                return Ok(Some((at, by)));
            }
            if at == signed_at_ms {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        sqlx::query(
            "INSERT INTO policy_signature_high (policy_path, signed_at_ms, signer, manifest_hash, seen_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (policy_path) DO UPDATE SET signed_at_ms = excluded.signed_at_ms,
               signer = excluded.signer, manifest_hash = excluded.manifest_hash, seen_at = excluded.seen_at",
        )
        .bind(policy_path)
        .bind(signed_at_ms)
        .bind(signer)
        .bind(manifest_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
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
        let mut tx = self.begin().await?;
        audit::append(&mut tx, now, request_id, actor, event, &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn verify_audit(&self) -> Result<Report, QueueError> {
        audit::verify(&self.pool).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
