//! The broker's and the operator's identity policies.

use serde_json::json;

use super::{Document, IamError, Kind, MAX_INLINE_USER, Principals, check_size, sorted};
use crate::policy::Policy;

fn executor_roles(policy: &Policy) -> Vec<String> {
    sorted(
        policy
            .environments
            .values()
            .filter_map(|e| e.executor_role.clone()),
    )
}

/// The broker: assume the agent roles and simulate its own policy (for doctor), never the
/// executor roles.
pub(super) fn broker(policy: &Policy, principals: &Principals) -> Result<Document, IamError> {
    let agent_roles = sorted(policy.environments.values().map(|e| e.agent_role.clone()));
    let executor_roles = executor_roles(policy);
    let mut statements = vec![
        json!({
            "Sid": "AssumeTheAgentRoles",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Resource": agent_roles,
        }),
        // `airlock doctor` asks the policy simulator what this principal may do (control 2);
        // on itself only, so it learns nothing about other principals.
        json!({
            "Sid": "SimulateItselfForDoctor",
            "Effect": "Allow",
            "Action": "iam:SimulatePrincipalPolicy",
            "Resource": principals.broker,
        }),
    ];
    if !executor_roles.is_empty() {
        statements.push(json!({
            "Sid": "NeverTheExecutorRoles",
            "Effect": "Deny",
            "Action": "sts:*",
            "Resource": executor_roles,
        }));
    }
    let json = json!({"Version": "2012-10-17", "Statement": statements});
    check_size("broker-policy.json", &json, MAX_INLINE_USER)?;
    Ok(Document {
        file: "broker-policy.json".into(),
        kind: Kind::Broker,
        title: format!(
            "identity policy of the broker {}: assume the agent roles and simulate its own policy (for doctor), nothing else",
            principals.broker
        ),
        json,
        notes: Vec::new(),
    })
}

/// The operator: assume the executor roles (none when there are none).
pub(super) fn operator(
    policy: &Policy,
    principals: &Principals,
) -> Result<Option<Document>, IamError> {
    let executor_roles = executor_roles(policy);
    let Some(operator) = principals
        .operator
        .as_ref()
        .filter(|_| !executor_roles.is_empty())
    else {
        return Ok(None);
    };
    let json = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AssumeTheExecutorRoles",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Resource": executor_roles,
        }]
    });
    check_size("operator-policy.json", &json, MAX_INLINE_USER)?;
    Ok(Some(Document {
        file: "operator-policy.json".into(),
        kind: Kind::Operator,
        title: format!("identity policy of the operator {operator}: assume the executor roles"),
        json,
        notes: Vec::new(),
    }))
}
