//! A tool's `[aws]` table: the service and protocol, the wire action (what actually runs), the
//! IAM actions and resource ARN templates that become the session policy, the request
//! templates and the calls of a multi-request read tool. What reaches a session policy must be
//! built from validated arguments only, with no wildcard.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::{Map, Value};
use serde_spanned::Spanned;

use super::Check;
use crate::catalogue::raw::{RawAws, RawCall};
use crate::catalogue::{
    ArgKind, ArgSpec, AwsSpec, CallSpec, JsonVersion, Pagination, Protocol, Risk, placeholders,
};

/// The verbs a read tool's IAM actions may start with.
const READ_VERBS: &[&str] = &[
    "Describe",
    "List",
    "Get",
    "Filter",
    "Lookup",
    "Search",
    "Head",
    "BatchGet",
    "Query",
    "Scan",
    "Select",
    "Validate",
    "StartQuery",
    "GetQueryResults",
    "StopQuery",
];

/// Placeholders a resource template may use besides the tool's own arguments.
const ENV_PLACEHOLDERS: &[&str] = &["partition", "region", "account"];

const MAX_PAGES_CEILING: u32 = 100;

/// The `[aws]` table as an [`AwsSpec`]; `None` when it has errors (they are in `c`).
pub(super) fn validate(
    c: &mut Check,
    aws: &Spanned<RawAws>,
    risk: Risk,
    arguments: &[ArgSpec],
) -> Option<AwsSpec> {
    let a = aws.get_ref();
    let before = c.errs.len();
    service_and_protocol(c, aws);
    wire_action(c, aws, risk);
    if a.protocol != Protocol::RestXml && (a.path.is_some() || a.method.is_some()) {
        c.at(
            aws,
            "`path` and `method` belong to the rest_xml protocol; remove them",
        );
    }
    let method = check_method(c, aws, a.method.as_deref(), risk);
    if let Some(p) = &a.path
        && let Err(e) = check_path(p.get_ref(), arguments)
    {
        c.at(p, e);
    }
    let calls = calls(c, aws, risk, arguments);
    iam_actions(c, aws, risk);
    resources(c, aws, risk, arguments);
    let request = template(c, a.request.as_ref(), arguments);
    if let Some(p) = &a.pagination
        && (p.max_pages == 0 || p.max_pages > MAX_PAGES_CEILING)
    {
        c.at(
            aws,
            format!("pagination.max_pages must be 1..={MAX_PAGES_CEILING}"),
        );
    }
    if c.errs.len() > before {
        return None;
    }
    Some(AwsSpec {
        service: a.service.get_ref().clone(),
        protocol: a.protocol,
        action: a.action.get_ref().clone(),
        version: a.version.clone(),
        target: a.target.clone(),
        json_version: a
            .json_version
            .as_ref()
            .map_or_else(JsonVersion::default, |v| *v.get_ref()),
        iam_actions: a.iam_actions.iter().map(|x| x.get_ref().clone()).collect(),
        resources: a.resources.iter().map(|x| x.get_ref().clone()).collect(),
        wildcard_reason: a.wildcard_reason.clone(),
        request,
        pagination: a.pagination.as_ref().map(|p| Pagination {
            request_token: p.request_token.clone(),
            response_token: p.response_token.clone(),
            max_pages: p.max_pages,
        }),
        already_done: a.already_done.clone(),
        method,
        path: a.path.as_ref().map(|p| p.get_ref().clone()),
        calls,
    })
}

/// The service name, what each protocol needs, and the awsJson version.
fn service_and_protocol(c: &mut Check, aws: &Spanned<RawAws>) {
    let a = aws.get_ref();
    let service = a.service.get_ref();
    if !service
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || service.is_empty()
    {
        c.at(
            &a.service,
            format!(
                "service `{service}` must be an AWS endpoint prefix such as \"ec2\" or \"logs\""
            ),
        );
    }
    match a.protocol {
        Protocol::Ec2 | Protocol::Query if a.version.is_none() => c.at(
            aws,
            "query protocols need `version` (the API version, e.g. \"2016-11-15\" for EC2)",
        ),
        Protocol::Json
            if a.target.is_none()
                && (a.calls.is_empty() || a.calls.iter().any(|c| c.get_ref().target.is_none())) =>
        {
            c.at(aws, "the json protocol needs `target` (the X-Amz-Target header, e.g. \"Logs_20140328.FilterLogEvents\")");
        }
        Protocol::RestXml if a.calls.is_empty() && a.path.is_none() => {
            c.at(aws, "the rest_xml protocol needs `path` (e.g. \"/${bucket}\"; \"/\" for the service root)");
        }
        _ => {}
    }
    json_version(c, aws);
}

fn json_version(c: &mut Check, aws: &Spanned<RawAws>) {
    let a = aws.get_ref();
    let service = a.service.get_ref();
    if let Some(jv) = &a.json_version {
        let v = *jv.get_ref();
        if a.protocol != Protocol::Json {
            c.at(jv, "`json_version` belongs to the json protocol; remove it");
        } else if let Some(want) = known_json_version(service)
            && v != want
        {
            c.at(
                jv,
                format!(
                    "`{service}` speaks awsJson {}, not {}; set json_version = \"{}\"",
                    want.as_str(),
                    v.as_str(),
                    want.as_str()
                ),
            );
        }
    } else if a.protocol == Protocol::Json
        && let Some(want) = known_json_version(service)
        && want != JsonVersion::default()
    {
        c.at(
            aws,
            format!(
                "`{service}` speaks awsJson {v} (AWS refuses the default 1.1); add json_version = \"{v}\"",
                v = want.as_str()
            ),
        );
    }
}

/// The wire action is what actually runs: in a read tool it must be a read verb too, whatever
/// the IAM actions say.
fn wire_action(c: &mut Check, aws: &Spanned<RawAws>, risk: Risk) {
    let a = aws.get_ref();
    let action = a.action.get_ref();
    if action.is_empty() || !action.chars().all(|c| c.is_ascii_alphanumeric()) {
        c.at(
            &a.action,
            format!("action `{action}` must be the API action's name, e.g. \"DescribeVolumes\""),
        );
    } else if risk == Risk::Read && !is_read_verb(action) {
        c.at(
            &a.action,
            format!("action `{action}` is not a read action, but this tool's risk is \"read\"; make it \"destructive\" (which goes through approval)"),
        );
    }
}

/// `[[aws.calls]]`: the requests of a multi-request read tool.
fn calls(c: &mut Check, aws: &Spanned<RawAws>, risk: Risk, arguments: &[ArgSpec]) -> Vec<CallSpec> {
    let a = aws.get_ref();
    if !a.calls.is_empty() && (a.request.is_some() || a.path.is_some() || a.pagination.is_some()) {
        c.at(aws, "a tool with [[aws.calls]] puts `request` and `path` in each call, and cannot paginate; remove them from [aws]");
    }
    if !a.calls.is_empty() && risk != Risk::Read {
        c.at(aws, "[[aws.calls]] is for read tools; a write or destructive tool makes exactly one request");
    }
    let mut names = BTreeSet::new();
    a.calls
        .iter()
        .map(|call| {
            let name = &call.get_ref().name;
            if !names.insert(name.clone())
                || name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                c.at(
                    call,
                    format!("call name `{name}` must be unique, lowercase letters, digits and `_`"),
                );
            }
            one_call(c, call, a.protocol, risk, arguments)
        })
        .collect()
}

fn one_call(
    c: &mut Check,
    call: &Spanned<RawCall>,
    protocol: Protocol,
    risk: Risk,
    arguments: &[ArgSpec],
) -> CallSpec {
    let cc = call.get_ref();
    if protocol == Protocol::RestXml && cc.path.is_none() {
        c.at(call, "each rest_xml call needs `path`");
    }
    if protocol != Protocol::RestXml && (cc.path.is_some() || cc.method.is_some()) {
        c.at(
            call,
            "`path` and `method` belong to the rest_xml protocol; remove them",
        );
    }
    if let Some(p) = &cc.path
        && let Err(e) = check_path(p.get_ref(), arguments)
    {
        c.at(p, e);
    }
    if risk == Risk::Read && !is_read_verb(&cc.action) {
        c.at(
            call,
            format!(
                "call action `{}` is not a read action, but this tool's risk is \"read\"",
                cc.action
            ),
        );
    }
    let request = template(c, cc.request.as_ref(), arguments);
    CallSpec {
        name: cc.name.clone(),
        action: cc.action.clone(),
        method: check_method(c, call, cc.method.as_deref(), risk),
        path: cc.path.as_ref().map(|p| p.get_ref().clone()),
        target: cc.target.clone(),
        request,
        absent: cc.absent.clone(),
    }
}

/// Each IAM action is `service:Action`, exact, and a read verb in a read tool.
fn iam_actions(c: &mut Check, aws: &Spanned<RawAws>, risk: Risk) {
    let a = aws.get_ref();
    if a.iam_actions.is_empty() {
        c.at(aws, "iam_actions must name at least one action");
    }
    for act in &a.iam_actions {
        let s = act.get_ref();
        let not_an_action = format!("`{s}` is not an IAM action; write it as \"service:Action\"");
        let Some((svc, verb)) = s.split_once(':') else {
            c.at(act, not_an_action);
            continue;
        };
        if s.contains('*') || s.contains('?') {
            c.at(
                act,
                format!("`{s}` is a wildcard action; name each action exactly"),
            );
        } else if svc.is_empty()
            || verb.is_empty()
            || !verb.chars().all(|c| c.is_ascii_alphanumeric())
        {
            c.at(act, not_an_action);
        } else if risk == Risk::Read && !is_read_verb(verb) {
            c.at(
                act,
                format!("`{s}` is not a read action, but this tool's risk is \"read\"; make it \"write\" or \"destructive\" (which go through approval)"),
            );
        }
    }
}

/// The resource ARN templates (or `"*"`, with a reason, in read tools only).
fn resources(c: &mut Check, aws: &Spanned<RawAws>, risk: Risk, arguments: &[ArgSpec]) {
    let a = aws.get_ref();
    if a.resources.is_empty() {
        c.at(
            aws,
            "resources must name at least one ARN template (or \"*\" with wildcard_reason)",
        );
    }
    for r in &a.resources {
        if r.get_ref() != "*" {
            if let Err(e) = check_arn_template(r.get_ref(), arguments) {
                c.at(r, e);
            }
            continue;
        }
        if a.resources.len() > 1 {
            c.at(r, "\"*\" cannot be mixed with ARN templates");
        }
        if a.wildcard_reason
            .as_deref()
            .is_none_or(|w| w.trim().is_empty())
        {
            c.at(r, "resource \"*\" needs `wildcard_reason`: say why the action has no resource-level permission");
        }
        if risk != Risk::Read {
            c.at(r, "only read tools may use resource \"*\"; a write or destructive tool must name its resource");
        }
    }
}

/// The awsJson version of the JSON services airlock knows (`metadata.jsonVersion` in each
/// service's model): a tool file that says otherwise is refused, because AWS answers a wrong
/// `Content-Type` with an error page (and moto accepts either, so no test against it would tell).
fn known_json_version(service: &str) -> Option<JsonVersion> {
    match service {
        "dynamodb" => Some(JsonVersion::V1_0),
        "logs" | "ecs" => Some(JsonVersion::V1_1),
        _ => None,
    }
}

/// A request template: a table whose placeholders are arguments of the tool.
fn template(
    c: &mut Check,
    t: Option<&Spanned<toml::Table>>,
    arguments: &[ArgSpec],
) -> Map<String, Value> {
    let Some(t) = t else {
        return Map::new();
    };
    match serde_json::to_value(t.get_ref()) {
        Ok(Value::Object(m)) => {
            let mut refs = BTreeSet::new();
            collect_placeholders(&Value::Object(m.clone()), &mut refs);
            for p in refs {
                if !arguments.iter().any(|x| x.name == p)
                    && !matches!(p.as_str(), "key" | "value" | "item" | "region" | "account")
                {
                    c.at(t, format!("the request template uses `${{{p}}}`, which is not an argument of this tool"));
                }
            }
            m
        }
        _ => {
            c.at(t, "request must be a table");
            Map::new()
        }
    }
}

/// A rest_xml request's HTTP method. What is sent is what runs: a read tool sends GET or HEAD,
/// whatever its action names say (`DELETE /bucket` deletes).
fn check_method<T>(c: &mut Check, at: &Spanned<T>, m: Option<&str>, risk: Risk) -> String {
    match m {
        None => "GET".into(),
        Some(m @ ("POST" | "PUT" | "DELETE")) if risk == Risk::Read => {
            c.at(
                at,
                format!("method `{m}` can change things, but this tool's risk is \"read\"; a read tool sends GET or HEAD (make it \"destructive\", which goes through approval)"),
            );
            m.into()
        }
        Some(m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE")) => m.into(),
        Some(other) => {
            c.at(
                at,
                format!("method `{other}` must be one of GET, HEAD, POST, PUT, DELETE"),
            );
            "GET".into()
        }
    }
}

/// A rest_xml path template: starts with `/`, and every argument in it is a required string
/// with a pattern (it becomes part of the URL the request is signed for).
fn check_path(p: &str, arguments: &[ArgSpec]) -> Result<(), String> {
    if !p.starts_with('/') || p.contains('?') || p.contains('#') {
        return Err(format!(
            "path `{p}` must start with \"/\" and hold no query (`?`) or fragment; the query is the request template"
        ));
    }
    let mut refs = BTreeSet::new();
    placeholders(p, &mut refs);
    for r in refs {
        match arguments.iter().find(|a| a.name == r) {
            Some(a) if a.kind == ArgKind::String && a.required && a.pattern.is_some() => {}
            _ => {
                return Err(format!(
                    "path `{p}` uses `${{{r}}}`, which must be a required string argument with a `pattern`"
                ));
            }
        }
    }
    Ok(())
}

/// An ARN template must keep the call inside its environment: `arn:${partition}:SERVICE:
/// ${region}|"":${account}|"":...`, and every argument it uses must be a required string with a
/// pattern, so a model cannot smuggle a wildcard or another account into the session policy.
fn check_arn_template(s: &str, arguments: &[ArgSpec]) -> Result<(), String> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[1] != "${partition}" {
        return Err(format!(
            "resource `{s}` must be an ARN template starting with \"arn:${{partition}}:\""
        ));
    }
    if !matches!(parts[3], "${region}" | "") {
        return Err(format!(
            "resource `{s}`: the region part must be ${{region}} (or empty for global resources)"
        ));
    }
    if !matches!(parts[4], "${account}" | "") {
        return Err(format!(
            "resource `{s}`: the account part must be ${{account}} (or empty), so calls stay in their environment's account"
        ));
    }
    // `*` inside an ARN would widen the scope beyond the validated resource; the one exception
    // is a final `:*`, which names the sub-resources of that one resource (CloudWatch Logs
    // evaluates log-group actions against `log-group:NAME:*`).
    let body = s.strip_suffix(":*").unwrap_or(s);
    if body.contains('*') || body.contains('?') {
        return Err(format!(
            "resource `{s}` contains a wildcard; build it from validated arguments (only a final \":*\" for sub-resources is allowed)"
        ));
    }
    let mut refs = BTreeSet::new();
    placeholders(s, &mut refs);
    let mut uses_argument = false;
    for p in refs {
        if ENV_PLACEHOLDERS.contains(&p.as_str()) {
            continue;
        }
        match arguments.iter().find(|a| a.name == p) {
            None => {
                return Err(format!(
                    "resource `{s}` uses `${{{p}}}`, which is not an argument of this tool"
                ));
            }
            Some(a) if a.kind != ArgKind::String || !a.required || a.pattern.is_none() => {
                return Err(format!(
                    "resource `{s}` uses argument `{p}`, which must be a required string with a `pattern` to reach an ARN"
                ));
            }
            Some(a) => {
                let pattern = a.pattern.as_ref().map(Regex::as_str).unwrap_or_default();
                if let Some(problem) = arn_pattern_problem(pattern, a.max_length) {
                    return Err(format!("resource `{s}` uses argument `{p}`, but {problem}"));
                }
                uses_argument = true;
            }
        }
    }
    if !uses_argument {
        return Err(format!(
            "resource `{s}` does not use any validated argument; name the resource from the call's arguments"
        ));
    }
    Ok(())
}

/// A read verb: one of [`READ_VERBS`] followed by the start of a word (`DescribeVolumes`,
/// `GetObject`), never a verb that merely begins with the same letters (`Getaway`).
fn is_read_verb(verb: &str) -> bool {
    READ_VERBS.iter().any(|v| {
        verb.strip_prefix(v).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
        })
    })
}

/// Why `pattern` cannot safely reach an ARN: it accepts unboundedly long values (and the
/// argument has no `max_length`), or it accepts `*` or `?`, which IAM reads as wildcards.
fn arn_pattern_problem(pattern: &str, max_length: Option<usize>) -> Option<String> {
    let hir = match regex_syntax::Parser::new().parse(pattern) {
        Ok(h) => h,
        Err(e) => return Some(format!("its pattern does not parse: {e}")),
    };
    if may_match_wildcard(&hir) {
        return Some(
            "its pattern accepts `*` or `?`, which IAM reads as wildcards; exclude them from the pattern".into(),
        );
    }
    if hir.properties().maximum_len().is_none() && max_length.is_none() {
        return Some(
            "its pattern accepts values of any length; bound it (e.g. `{1,128}`) or set `max_length`".into(),
        );
    }
    None
}

/// Whether a regular expression can match a string holding `*` or `?`: true when any literal
/// or class in it contains one of them.
fn may_match_wildcard(h: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    let wild = |c: u32| c == u32::from('*') || c == u32::from('?');
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(l) => l.0.iter().any(|b| wild(u32::from(*b))),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| ['*', '?'].iter().any(|w| r.start() <= *w && *w <= r.end())),
        HirKind::Class(Class::Bytes(c)) => c.ranges().iter().any(|r| {
            [b'*', b'?']
                .iter()
                .any(|w| r.start() <= *w && *w <= r.end())
        }),
        HirKind::Repetition(r) => may_match_wildcard(&r.sub),
        HirKind::Capture(c) => may_match_wildcard(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(may_match_wildcard),
    }
}

/// Placeholders of a request template; `${a|b}` (a, else b) names both.
pub(crate) fn collect_placeholders(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            let mut names = BTreeSet::new();
            placeholders(s, &mut names);
            out.extend(names.iter().flat_map(|n| n.split('|')).map(str::to_string));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_placeholders(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$each" || k == "$when" {
                    if let Value::String(s) = x {
                        out.insert(s.clone());
                    }
                } else {
                    collect_placeholders(x, out);
                }
            }
        }
        _ => {}
    }
}
