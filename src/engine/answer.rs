//! What a tool call answers, as types: a [`ToolOutput`] when it ran, a [`ToolError`] when it
//! was refused or failed. Nothing in the engine builds the JSON the model reads: the MCP edge
//! (`mcp::wire`) serialises an output and turns an error into its wire body, in one place.

use serde::Serialize;
use serde_json::Value;

use crate::backup::BackupPlan;
use crate::policy::access::Access;
use crate::queue::State;
use crate::queue::view::RequestView;

/// What a tool call that ran returns.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ToolOutput {
    /// A read tool's items (list_volumes, read_logs, ...).
    Listing(Box<Listing>),
    /// describe_access.
    Access(Box<Access>),
    /// get_request, cancel_request.
    Request(Box<RequestView>),
    /// A destructive request, queued for approval.
    Queued(Box<Queued>),
}

/// The items a read tool found, after projection, caps and redaction.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub environment: Option<String>,
    pub count: usize,
    pub items: Vec<Value>,
    /// What was left out and why (caps, pagination), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted: Option<Redacted>,
    /// The tool file's note for the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub scope: ScopeSummary,
}

/// Secrets replaced in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Redacted {
    pub count: usize,
    pub kinds: Vec<String>,
    pub note: &'static str,
}

/// The scope a call ran under: the rule that allowed it and its session policy.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeSummary {
    pub rule: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub session_policy_sha256: String,
}

/// A destructive request that is now waiting for a human.
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    pub request_id: String,
    pub state: State,
    pub resource_id: String,
    pub environment: String,
    /// The backup the executor will take first (none for a tool that declares none).
    pub backup: Option<BackupPlan>,
    pub approvals_required: i64,
    pub cooldown: String,
    pub expires_at: String,
    pub what_happens_next: Vec<String>,
}

/// Why a call did not run, or failed: a kind the caller can branch on, a message for the
/// model, and what it should do instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    pub kind: ErrorKind,
    pub message: String,
    pub what_you_can_do: Option<String>,
}

/// The kinds of refusal and failure. `code()` is the `error` field the model sees.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    UnknownTool,
    /// An argument failed validation; `field` names it.
    InvalidArgument {
        field: String,
    },
    /// The policy (or a protected resource) refuses the call; `rule` names what refused it.
    Refused {
        rule: Option<String>,
    },
    /// Allowed only with a human's approval, and the tool cannot be queued.
    NeedsApproval {
        rule: String,
    },
    /// A destructive request while the policy is not signed by a trusted approver.
    PolicyNotSigned {
        manifest_hash: String,
        changes: Vec<String>,
    },
    /// The session policy cannot be rendered (too large, unsafe value).
    Scope,
    /// The approval queue cannot be opened or reached.
    QueueUnavailable,
    /// The queue answered with an error.
    Queue,
    /// No such request (`field` = `request_id`) or no such resource.
    NotFound {
        field: Option<String>,
    },
    /// The request is not in a state that allows this.
    WrongState,
    /// A describe found several resources where a request names one.
    Ambiguous,
    /// The resource is not in a state AWS accepts the action in (`field` is `found`): nothing
    /// was queued and no backup was spent.
    Precondition {
        field: String,
        found: Box<Value>,
    },
    /// The look at the resource before queueing failed.
    DescribeFailed(Box<ToolError>),
    /// AWS refused the scoped credential (or STS refused AssumeRole).
    AwsAccessDenied {
        aws_code: Option<String>,
    },
    /// AWS answered the call with another error, named by its code.
    Aws {
        aws_code: Option<String>,
    },
    /// airlock's own AWS configuration on its host is not usable (a profile that does not
    /// exist, an environment without an executor role).
    AwsConfiguration,
    /// airlock's base credential could not be obtained (its source failed).
    AwsCredentials,
    /// An AWS endpoint could not be reached.
    AwsUnreachable,
    /// AWS is throttling the caller.
    AwsThrottled {
        aws_code: Option<String>,
    },
    /// A broken invariant in airlock itself.
    Internal,
}

impl ErrorKind {
    /// The `error` field of the wire body.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::UnknownTool => "unknown_tool",
            ErrorKind::InvalidArgument { .. } => "invalid_argument",
            ErrorKind::Refused { .. } => "refused",
            ErrorKind::NeedsApproval { .. } => "needs_approval",
            ErrorKind::PolicyNotSigned { .. } => "policy_not_signed",
            ErrorKind::Scope => "scope",
            ErrorKind::QueueUnavailable => "queue_unavailable",
            ErrorKind::Queue => "queue_error",
            ErrorKind::NotFound { .. } => "not_found",
            ErrorKind::WrongState => "wrong_state",
            ErrorKind::Ambiguous => "ambiguous",
            ErrorKind::Precondition { .. } => "not_ready",
            ErrorKind::DescribeFailed(_) => "describe_failed",
            ErrorKind::AwsAccessDenied { .. } => "aws_access_denied",
            ErrorKind::Aws { .. } => "aws_error",
            ErrorKind::AwsConfiguration => "aws_configuration",
            ErrorKind::AwsCredentials => "aws_credentials",
            ErrorKind::AwsUnreachable => "aws_unreachable",
            ErrorKind::AwsThrottled { .. } => "aws_throttled",
            ErrorKind::Internal => "internal",
        }
    }
}

impl ToolError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            what_you_can_do: None,
        }
    }

    /// The same error, telling the model what it may do instead.
    pub fn advise(mut self, what: impl Into<String>) -> Self {
        self.what_you_can_do = Some(what.into());
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The AWS error code, when AWS gave one.
    pub fn aws_code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Aws { aws_code }
            | ErrorKind::AwsAccessDenied { aws_code }
            | ErrorKind::AwsThrottled { aws_code } => aws_code.as_deref(),
            _ => None,
        }
    }
}

/// What a tool call returns.
pub type ToolResult = Result<ToolOutput, ToolError>;
