//! The one place where a tool call's typed answer becomes what the model reads: the output
//! serialised as `structuredContent` (and as compact JSON text), an error as a body with its
//! `error` kind, the message, and what the agent may do instead.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

use crate::engine::{ErrorKind, ToolError, ToolResult};

/// The MCP tool result for a call's answer.
pub fn tool_result(answer: &ToolResult) -> CallToolResult {
    let (body, is_error) = match answer {
        Ok(out) => (serde_json::to_value(out).unwrap_or(Value::Null), false),
        Err(e) => (error_body(e), true),
    };
    // Compact: the model reads JSON as well either way, and this is on every call.
    let text = serde_json::to_string(&body).unwrap_or_default();
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(body);
    result
}

/// The JSON body of a refused or failed call.
pub fn error_body(e: &ToolError) -> Value {
    let mut b = Map::new();
    b.insert("error".into(), json!(e.kind.code()));
    b.insert("message".into(), json!(e.message));
    let advice = e.what_you_can_do.as_ref().map(|w| json!(w));
    match &e.kind {
        ErrorKind::InvalidArgument { field } => {
            b.insert("field".into(), json!(field));
            if let Some(a) = advice {
                b.insert("hint".into(), a);
            }
            return Value::Object(b);
        }
        ErrorKind::Refused { rule: Some(rule) } => {
            b.insert("rule".into(), json!(rule));
        }
        ErrorKind::NeedsApproval { rule } => {
            b.insert("decision".into(), json!("approve"));
            b.insert("rule".into(), json!(rule));
        }
        ErrorKind::PolicyNotSigned {
            manifest_hash,
            changes,
        } => {
            b.insert(
                "policy_signature".into(),
                json!({"signed": false, "manifest_hash": manifest_hash, "changes": changes}),
            );
        }
        ErrorKind::NotFound { field: Some(f) } => {
            b.insert("field".into(), json!(f));
        }
        ErrorKind::Precondition { field, found } => {
            b.insert("field".into(), json!(field));
            b.insert("found".into(), (**found).clone());
        }
        ErrorKind::DescribeFailed(inner) => {
            b.insert("describe".into(), error_body(inner));
        }
        ErrorKind::AwsAccessDenied { .. }
        | ErrorKind::Aws { .. }
        | ErrorKind::AwsThrottled { .. }
        | ErrorKind::AwsConfiguration
        | ErrorKind::AwsCredentials
        | ErrorKind::AwsUnreachable => {
            b.insert("what_you_can_do".into(), advice.unwrap_or(Value::Null));
            b.insert("aws_code".into(), json!(e.aws_code()));
            return Value::Object(b);
        }
        _ => {}
    }
    if let Some(a) = advice {
        b.insert("what_you_can_do".into(), a);
    }
    Value::Object(b)
}
