//! One tool call's AWS requests: render, sign, send, decode, follow pagination up to the tool
//! file's cap, and gather the items.

use std::time::Duration;

use aws_credential_types::Credentials;
use serde_json::{Map, Value};

use super::protocol::{
    json_protocol_error, lookup, query_body, render_request, rest_path, rest_query, xml_error,
    xml_to_json,
};
use super::sign::sign_request;
use super::{AwsError, endpoint};
use crate::BoxFuture;
use crate::catalogue::args::Args;
use crate::catalogue::{AwsSpec, Protocol};
use crate::policy::Environment;

/// Largest answer body read from AWS per page.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What the pages of one call returned.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The items gathered from every page (or the whole answer, for tools without `items`).
    pub items: Vec<Value>,
    /// The first page's answer when the tool has no `items` path.
    pub document: Option<Value>,
    pub pages: u32,
    /// More pages existed than the tool's `max_pages` allows.
    pub more_pages: bool,
}

/// What one tool call (or executor step) sends: the tool's AWS spec, where its items are in
/// the answer, the environment, the validated arguments, and the scoped credential.
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    pub spec: &'a AwsSpec,
    pub items_path: Option<&'a str>,
    pub env: &'a Environment,
    pub args: &'a Args,
    pub creds: &'a Credentials,
}

/// Sends a tool's AWS requests. The real one is [`HttpCaller`] (SigV4 over reqwest); the
/// trait lets the engine and the executor be driven in-process by a fake endpoint in tests.
pub trait AwsCaller: Send + Sync {
    fn fetch<'a>(&'a self, req: Fetch<'a>) -> BoxFuture<'a, Result<Fetched, AwsError>>;
}

/// [`fetch`] over one HTTP client, built on first use: building it loads the TLS root
/// certificates (hundreds of files), which would otherwise sit between spawn and the
/// `initialize` answer.
#[derive(Default)]
pub struct HttpCaller {
    client: std::sync::OnceLock<reqwest::Client>,
}

impl AwsCaller for HttpCaller {
    fn fetch<'a>(&'a self, r: Fetch<'a>) -> BoxFuture<'a, Result<Fetched, AwsError>> {
        let http = self.client.get_or_init(http_client);
        Box::pin(fetch(http, r.spec, r.items_path, r.env, r.args, r.creds))
    }
}

/// A shared HTTP client: rustls, short connect timeout, bounded request time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Run the AWS side of a tool call.
pub async fn fetch(
    http: &reqwest::Client,
    spec: &AwsSpec,
    items_path: Option<&str>,
    env: &Environment,
    args: &Args,
    creds: &Credentials,
) -> Result<Fetched, AwsError> {
    if !spec.calls.is_empty() {
        return fetch_calls(http, spec, env, args, creds).await;
    }
    let mut params = render_request(&spec.request, args, env);
    let mut out = Fetched::default();
    let max_pages = spec.pagination.as_ref().map_or(1, |p| p.max_pages);
    loop {
        let page = send(http, spec, env, args, &params, creds).await?;
        out.pages += 1;
        let token = spec.pagination.as_ref().and_then(|p| {
            lookup(&page, &p.response_token)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| (p.request_token.clone(), t.to_string()))
        });
        match items_path {
            Some(path) => match lookup(&page, path) {
                Some(Value::Array(a)) => out.items.extend(a.iter().cloned()),
                Some(Value::Null) | None => {}
                Some(one) => out.items.push(one.clone()),
            },
            None => {
                if out.document.is_none() {
                    out.document = Some(page.clone());
                }
            }
        }
        match token {
            Some((name, t)) if out.pages < max_pages => {
                params.insert(name, Value::String(t));
            }
            Some(_) => {
                out.more_pages = true;
                break;
            }
            None => break,
        }
    }
    Ok(out)
}

/// A tool with several requests: one document with each call's answer under its name (null
/// for a call whose error code the tool declares as "absent").
async fn fetch_calls(
    http: &reqwest::Client,
    spec: &AwsSpec,
    env: &Environment,
    args: &Args,
    creds: &Credentials,
) -> Result<Fetched, AwsError> {
    let mut doc = Map::new();
    let mut out = Fetched::default();
    for c in &spec.calls {
        let one = spec.for_call(c);
        let params = render_request(&one.request, args, env);
        let v = match send(http, &one, env, args, &params, creds).await {
            Ok(v) => v,
            Err(AwsError::Service { code, .. }) if c.absent.contains(&code) => Value::Null,
            Err(e) => return Err(e),
        };
        out.pages += 1;
        doc.insert(c.name.clone(), v);
    }
    out.document = Some(Value::Object(doc));
    Ok(out)
}

/// The signed request for one page of `spec`, as it goes on the wire.
fn build_request(
    http: &reqwest::Client,
    spec: &AwsSpec,
    env: &Environment,
    args: &Args,
    params: &Map<String, Value>,
    creds: &Credentials,
) -> Result<reqwest::Request, AwsError> {
    let url = endpoint::resolve(&spec.service, env);
    let transport = |e: String| AwsError::Transport {
        service: spec.service.clone(),
        endpoint: url.clone(),
        message: e,
    };
    let builder = match spec.protocol {
        Protocol::RestXml => {
            let path = rest_path(spec.path.as_deref().unwrap_or("/"), args, env);
            let query = rest_query(params);
            let full = if query.is_empty() {
                format!("{url}{path}")
            } else {
                format!("{url}{path}?{query}")
            };
            let method = reqwest::Method::from_bytes(spec.method.as_bytes())
                .map_err(|e| transport(e.to_string()))?;
            http.request(method, full)
        }
        _ => http.post(format!("{url}/")),
    };
    let builder = match spec.protocol {
        Protocol::RestXml => builder,
        Protocol::Ec2 | Protocol::Query => builder
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(query_body(
                spec.protocol,
                &spec.action,
                spec.version.as_deref().unwrap_or_default(),
                params,
            )),
        Protocol::Json => builder
            .header("content-type", spec.json_version.content_type())
            .header("x-amz-target", spec.target.as_deref().unwrap_or_default())
            .body(serde_json::to_vec(params).unwrap_or_default()),
    };
    let mut req = builder.build().map_err(|e| transport(e.to_string()))?;
    sign_request(&mut req, creds, &env.region, &spec.service)?;
    Ok(req)
}

async fn send(
    http: &reqwest::Client,
    spec: &AwsSpec,
    env: &Environment,
    args: &Args,
    params: &Map<String, Value>,
    creds: &Credentials,
) -> Result<Value, AwsError> {
    let url = endpoint::resolve(&spec.service, env);
    let transport = |e: String| AwsError::Transport {
        service: spec.service.clone(),
        endpoint: url.clone(),
        message: e,
    };
    let req = build_request(http, spec, env, args, params, creds)?;
    let resp = http
        .execute(req)
        .await
        .map_err(|e| transport(without_url(&e)))?;
    let status = resp.status().as_u16();
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if resp
        .content_length()
        .is_some_and(|n| n as usize > MAX_RESPONSE_BYTES)
    {
        return Err(AwsError::Decode {
            service: spec.service.clone(),
            message: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
        });
    }
    let bytes = resp.bytes().await.map_err(|e| transport(without_url(&e)))?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(AwsError::Decode {
            service: spec.service.clone(),
            message: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let decoded = match spec.protocol {
        Protocol::Ec2 | Protocol::Query | Protocol::RestXml => {
            if status >= 300 {
                let (code, message) =
                    xml_error(&text).unwrap_or_else(|| ("Unknown".into(), snippet(&text)));
                return Err(AwsError::Service {
                    service: spec.service.clone(),
                    status,
                    code,
                    message,
                });
            }
            if text.trim().is_empty() {
                Ok(Value::Object(Map::new()))
            } else {
                xml_to_json(&text)
            }
        }
        Protocol::Json => {
            let v: Result<Value, String> = if text.trim().is_empty() {
                Ok(Value::Object(Map::new()))
            } else {
                serde_json::from_str(&text).map_err(|e| e.to_string())
            };
            if status >= 300 {
                let (code, message) = json_protocol_error(error_type.as_deref(), &text)
                    .unwrap_or_else(|| ("Unknown".into(), snippet(&text)));
                return Err(AwsError::Service {
                    service: spec.service.clone(),
                    status,
                    code,
                    message,
                });
            }
            v
        }
    };
    decoded.map_err(|message| AwsError::Decode {
        service: spec.service.clone(),
        message,
    })
}

fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}

/// reqwest's error text without the URL (which is ours anyway, and noisy).
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(u) = e.url() {
        msg = msg.replace(u.as_str(), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Catalogue, Handler, parse_tool};
    use crate::config::source::SourceFile;

    fn env() -> Environment {
        Environment::for_tests("eu-west-1")
    }

    fn built(spec: &AwsSpec) -> reqwest::Request {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let params = render_request(&spec.request, &Args::new(), &env());
        build_request(&http_client(), spec, &env(), &Args::new(), &params, &creds)
            .expect("the request builds")
    }

    fn header<'a>(req: &'a reqwest::Request, name: &str) -> &'a str {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn aws_spec(tool: &crate::catalogue::ToolSpec) -> &AwsSpec {
        match &tool.handler {
            Handler::Aws(a) => a,
            _ => panic!("an aws tool"),
        }
    }

    /// DynamoDB speaks awsJson 1.0 (real DynamoDB answers 1.1 with a 404 page; moto accepts
    /// either, so only the built request can show it); Logs speaks 1.1.
    #[test]
    fn json_requests_carry_the_services_json_version() {
        let dynamo = parse_tool(&SourceFile::new(
            "tools/t.toml",
            r#"
name = "list_tables"
description = "List tables."
risk = "read"

[[arguments]]
name = "environment"
type = "environment"
required = true
description = "env"

[aws]
service = "dynamodb"
protocol = "json"
json_version = "1.0"
action = "ListTables"
target = "DynamoDB_20120810.ListTables"
iam_actions = ["dynamodb:ListTables"]
resources = ["*"]
wildcard_reason = "ListTables has no resource."
"#,
        ))
        .expect("valid");
        let req = built(aws_spec(&dynamo));
        assert_eq!(header(&req, "content-type"), "application/x-amz-json-1.0");
        assert_eq!(header(&req, "x-amz-target"), "DynamoDB_20120810.ListTables");
        assert!(
            header(&req, "authorization").contains("/eu-west-1/dynamodb/aws4_request"),
            "{}",
            header(&req, "authorization")
        );
        assert_eq!(
            req.url().host_str(),
            Some("dynamodb.eu-west-1.amazonaws.com")
        );

        let cat = Catalogue::builtin().expect("built-in tools are valid");
        let logs = cat.get("list_log_groups").expect("list_log_groups");
        let req = built(aws_spec(logs));
        assert_eq!(header(&req, "content-type"), "application/x-amz-json-1.1");
        assert_eq!(
            header(&req, "x-amz-target"),
            "Logs_20140328.DescribeLogGroups"
        );
        for (tool, version) in [
            ("list_dynamodb_tables", "application/x-amz-json-1.0"),
            ("list_ecs_clusters", "application/x-amz-json-1.1"),
        ] {
            let req = built(aws_spec(cat.get(tool).expect(tool)));
            assert_eq!(header(&req, "content-type"), version, "{tool}");
        }
    }
}
