//! The one thing a queue backend does: store requests, approvals, audit events and the policy
//! signature mark, and apply a compare-and-set to one request together with the audit events
//! that record it, in one transaction. The state machine, lease rules, approval thresholds and
//! the audit hash chain live above this trait ([`super::Queue`], [`super::audit`]), written
//! once; a backend seals each event with [`super::audit::seal`] against the chain head it
//! reads inside its transaction, with appends serialised on that head.

use serde_json::Value;

pub use super::audit::{Draft, Event};
use super::model::{Approval, Phase, QueueError, Request, State};
use crate::BoxFuture;

/// What a backend answers, later.
pub type Answer<'a, T> = BoxFuture<'a, Result<T, QueueError>>;
/// Whether a mark was raised.
pub type Raised<'a> = Answer<'a, bool>;

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file on this host: a lease holder on this host can be checked for liveness.
    Sqlite,
    /// A server shared by many hosts.
    Postgres,
}

/// What the request row must look like for a compare-and-set to apply.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Its state is one of these.
    pub states: Vec<State>,
    /// Its lease holder is exactly this (`Some(None)`: no holder).
    pub lease_owner: Option<Option<String>>,
    /// It has exactly this many approvals.
    pub approvals: Option<usize>,
    /// Its outcome is exactly this (`Some(None)`: none).
    pub outcome: Option<Option<Value>>,
}

/// What a compare-and-set changes (`None`: leave the column as it is).
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub state: Option<State>,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    /// `Some(None)` releases the lease; `Some(Some((owner, until)))` takes it.
    pub lease: Option<Option<(String, i64)>>,
    pub add_attempt: bool,
    pub phase: Option<Phase>,
    pub backup_id: Option<String>,
    pub backup_copy_id: Option<String>,
    pub outcome: Option<Value>,
    pub updated_at: i64,
}

impl Expect {
    /// Does request `r` (with `approvals` approvals, counted when [`Self::approvals`] is set)
    /// match?
    pub fn matches(&self, r: &Request, approvals: Option<usize>) -> bool {
        self.states.contains(&r.state)
            && self
                .lease_owner
                .as_ref()
                .is_none_or(|o| *o == r.lease_owner)
            && self.approvals.is_none_or(|n| approvals == Some(n))
            && self.outcome.as_ref().is_none_or(|o| *o == r.outcome)
    }
}

impl Change {
    /// `r` with this change applied: what a backend writes back.
    pub fn applied(&self, r: &Request) -> Request {
        let mut n = r.clone();
        if let Some(s) = self.state {
            n.state = s;
        }
        if let Some(t) = self.not_before {
            n.not_before = Some(t);
        }
        if let Some(t) = self.expires_at {
            n.expires_at = t;
        }
        if let Some(l) = &self.lease {
            n.lease_owner = l.as_ref().map(|(o, _)| o.clone());
            n.lease_until = l.as_ref().map(|(_, u)| *u);
        }
        if self.add_attempt {
            n.attempts += 1;
        }
        if let Some(p) = self.phase {
            n.phase = p;
        }
        if let Some(b) = &self.backup_id {
            n.backup_id = Some(b.clone());
        }
        if let Some(b) = &self.backup_copy_id {
            n.backup_copy_id = Some(b.clone());
        }
        if let Some(o) = &self.outcome {
            n.outcome = Some(o.clone());
        }
        if self.updated_at != 0 {
            n.updated_at = self.updated_at;
        }
        n
    }
}

/// A compare-and-set: the change, an approval to insert with it, and the events recording it.
#[derive(Debug, Clone, Default)]
pub struct Write {
    pub change: Change,
    pub approval: Option<Approval>,
    pub events: Vec<Draft>,
}

/// What a compare-and-set did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Applied; the row as it is now.
    Done(Box<Request>),
    /// Not applied: the row did not match (as it is now), or there is no such request.
    Conflict(Option<Box<Request>>),
}

/// The newest trusted signature of one policy file honoured so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub signed_at_ms: i64,
    pub signer: String,
    pub manifest_hash: String,
    /// When this process recorded it.
    pub seen_at: i64,
}

/// Which requests to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub state: Option<State>,
    /// Only approved requests due at or before this time (and not expired at it), soonest
    /// first, at most `limit`.
    pub due_at: Option<i64>,
    /// Only pending or approved requests whose deadline is at or before this time.
    pub expired_at: Option<i64>,
    pub limit: Option<usize>,
}

/// A queue backend.
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// Insert a new request with the event that records it.
    fn insert<'a>(&'a self, r: &'a Request, event: &'a Draft) -> Answer<'a, ()>;
    fn get<'a>(&'a self, id: &'a str) -> Answer<'a, Option<Request>>;
    /// Requests in creation order (or, with `due_at`, soonest due first).
    fn list(&self, filter: Filter) -> Answer<'_, Vec<Request>>;
    /// A request's approvals, in the order they were made.
    fn approvals<'a>(&'a self, id: &'a str) -> Answer<'a, Vec<Approval>>;
    /// Every approval's (request id, signature), for `audit verify`.
    fn signatures(&self) -> Answer<'_, Vec<(String, String)>>;
    /// In one transaction: if request `id` matches `expect`, apply `write` (the change, the
    /// approval, the events); otherwise change nothing.
    fn apply<'a>(
        &'a self,
        id: &'a str,
        expect: &'a Expect,
        write: &'a Write,
    ) -> Answer<'a, Applied>;
    /// Append events that change no state.
    fn append<'a>(&'a self, events: &'a [Draft]) -> Answer<'a, ()>;
    /// The whole audit chain, in order.
    fn events(&self) -> Answer<'_, Vec<Event>>;
    fn mark<'a>(&'a self, policy: &'a str) -> Answer<'a, Option<Mark>>;
    /// Set the mark of `policy` to `to` if it is still `from` (compare-and-set); whether it
    /// was set.
    fn set_mark<'a>(&'a self, policy: &'a str, from: Option<&'a Mark>, to: &'a Mark) -> Raised<'a>;
    fn close(&self) -> BoxFuture<'_, ()>;
}
