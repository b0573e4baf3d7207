//! Where each service's requests go. Precedence follows the AWS SDKs, with the policy in the
//! place of the shared config file: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`,
//! then the environment's `endpoint` in policy.toml, then the public regional endpoint.
//! `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` turns the environment variables off.

use crate::policy::Environment;

/// The suffix of `AWS_ENDPOINT_URL_<SERVICE>` for an endpoint prefix, as the SDKs name it.
fn env_suffix(service: &str) -> String {
    match service {
        "logs" => "CLOUDWATCH_LOGS".into(),
        "monitoring" => "CLOUDWATCH".into(),
        "elasticloadbalancing" => "ELASTIC_LOAD_BALANCING_V2".into(),
        other => other.to_ascii_uppercase().replace('-', "_"),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// A configured endpoint for `service`, if any.
pub fn override_for(service: &str, env: &Environment) -> Option<String> {
    let ignore =
        var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !ignore {
        if let Some(v) = var(&format!("AWS_ENDPOINT_URL_{}", env_suffix(service))) {
            return Some(v);
        }
        if let Some(v) = var("AWS_ENDPOINT_URL") {
            return Some(v);
        }
    }
    env.endpoint.clone()
}

/// The endpoint for `service` in `env`.
pub fn resolve(service: &str, env: &Environment) -> String {
    override_for(service, env).unwrap_or_else(|| {
        let suffix = if env.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{service}.{}.{suffix}", env.region)
    })
}
