//! The wire protocols: request templates from tool files rendered with the call's arguments,
//! serialised as EC2 query, awsQuery or awsJson 1.1, and answers (XML or JSON) turned into JSON
//! values that the projection reads.
//!
//! Template language (tool files, `[aws.request]`):
//! - `"${arg}"` alone is replaced by the argument's value (any JSON type); the key is left out
//!   when the argument is absent. `"text-${arg}"` interpolates strings.
//! - `{ "$when" = "arg", ... }` keeps the table only when `arg` is given (and not empty).
//! - `{ "$each" = "arg", "$item" = {...} }` inside a list expands to one element per item of a
//!   list argument (`${item}`) or per entry of a map argument (`${key}`, `${value}`).
//! - `"${a|b}"` is `a` when given, else `b`.
//! - Empty lists and tables are left out, as AWS expects of optional parameters.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::catalogue::Protocol;
use crate::catalogue::args::Args;
use crate::policy::Environment;

struct Vars<'a> {
    args: &'a Args,
    env: &'a Environment,
    local: BTreeMap<&'static str, Value>,
}

impl Vars<'_> {
    /// A variable's value; `a|b` is `a` when given, else `b`.
    fn get(&self, name: &str) -> Option<Value> {
        if name.contains('|') {
            return name
                .split('|')
                .map(|n| self.get_one(n))
                .find(|v| v.as_ref().is_some_and(|v| !v.is_null()))
                .flatten();
        }
        self.get_one(name)
    }

    fn get_one(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.local.get(name) {
            return Some(v.clone());
        }
        match name {
            "region" => Some(Value::String(self.env.region.clone())),
            "account" => Some(Value::String(self.env.account.clone())),
            _ => self.args.get(name).cloned(),
        }
    }

    fn present(&self, name: &str) -> bool {
        match self.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        }
    }
}

/// Render a request template with validated arguments.
pub fn render_request(
    tmpl: &Map<String, Value>,
    args: &Args,
    env: &Environment,
) -> Map<String, Value> {
    let vars = Vars {
        args,
        env,
        local: BTreeMap::new(),
    };
    match render(&Value::Object(tmpl.clone()), &vars) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn render(v: &Value, vars: &Vars<'_>) -> Option<Value> {
    match v {
        Value::String(s) => render_str(s, vars),
        Value::Array(items) => {
            let mut out = Vec::new();
            for it in items {
                if let Value::Object(o) = it
                    && let Some(Value::String(each)) = o.get("$each")
                {
                    expand_each(each, o.get("$item").unwrap_or(&Value::Null), vars, &mut out);
                } else if let Some(x) = render(it, vars) {
                    out.push(x);
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::Object(o) => {
            if let Some(Value::String(when)) = o.get("$when")
                && !vars.present(when)
            {
                return None;
            }
            let mut out = Map::new();
            for (k, x) in o {
                if k == "$when" {
                    continue;
                }
                if let Some(r) = render(x, vars) {
                    out.insert(k.clone(), r);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

fn expand_each(arg: &str, item: &Value, vars: &Vars<'_>, out: &mut Vec<Value>) {
    let mk = |local: BTreeMap<&'static str, Value>| Vars {
        args: vars.args,
        env: vars.env,
        local,
    };
    match vars.get(arg) {
        Some(Value::Array(xs)) => {
            for x in xs {
                if let Some(r) = render(item, &mk(BTreeMap::from([("item", x)]))) {
                    out.push(r);
                }
            }
        }
        Some(Value::Object(m)) => {
            for (k, x) in m {
                let local = BTreeMap::from([("key", Value::String(k)), ("value", x)]);
                if let Some(r) = render(item, &mk(local)) {
                    out.push(r);
                }
            }
        }
        _ => {}
    }
}

fn render_str(s: &str, vars: &Vars<'_>) -> Option<Value> {
    if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
        && !name.contains('}')
        && !name.contains("${")
    {
        return vars.get(name).filter(|v| !v.is_null());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find('}')?;
        let v = vars.get(&after[..j])?;
        match v {
            Value::String(x) => out.push_str(&x),
            Value::Null => return None,
            other => out.push_str(&other.to_string()),
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Some(Value::String(out))
}

/// Serialise parameters as a query-protocol form body (`Action`, `Version` first).
pub fn query_body(
    protocol: Protocol,
    action: &str,
    version: &str,
    params: &Map<String, Value>,
) -> String {
    let mut pairs: Vec<(String, String)> = vec![
        ("Action".into(), action.into()),
        ("Version".into(), version.into()),
    ];
    for (k, v) in params {
        flatten(protocol, k, v, &mut pairs);
    }
    let mut ser = form_urlencoded_pairs(&pairs);
    ser.shrink_to_fit();
    ser
}

fn flatten(protocol: Protocol, prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                let p = match protocol {
                    Protocol::Ec2 => format!("{prefix}.{}", i + 1),
                    _ => format!("{prefix}.member.{}", i + 1),
                };
                flatten(protocol, &p, it, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                flatten(protocol, &format!("{prefix}.{k}"), x, out);
            }
        }
    }
}

fn form_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(&encode(k));
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

/// Form encoding as botocore sends it: unreserved characters as they are, space as `+`,
/// everything else percent-encoded. (AWS hashes the body as sent, so `%20` would do as well;
/// the local endpoint re-encodes the parsed form before checking the signature, so matching
/// botocore's choice keeps signatures verifiable there too.)
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b' ' {
            out.push('+');
        } else if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A rest_xml path template filled with validated arguments, each value percent-encoded as
/// one path segment (the tool file's patterns already exclude `/`, `?` and the like).
pub fn rest_path(tmpl: &str, args: &Args, env: &Environment) -> String {
    let vars = Vars {
        args,
        env,
        local: BTreeMap::new(),
    };
    let mut out = String::with_capacity(tmpl.len() + 32);
    let mut rest = tmpl;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            break;
        };
        match vars.get(&after[..j]) {
            Some(Value::String(v)) => out.push_str(&uri_encode(&v)),
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            _ => {}
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

/// Rendered rest_xml parameters as a query string (`key=` for flags such as `?versioning`;
/// lists repeat the key).
pub fn rest_query(params: &Map<String, Value>) -> String {
    let mut pairs = Vec::new();
    for (k, v) in params {
        let vals: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for x in vals {
            let text = match x {
                Value::String(s) => s.clone(),
                Value::Null | Value::Object(_) | Value::Array(_) => continue,
                other => other.to_string(),
            };
            pairs.push(format!("{}={}", uri_encode(k), uri_encode(&text)));
        }
    }
    pairs.join("&")
}

/// RFC 3986 encoding as SigV4 expects: unreserved characters as they are, the rest `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An XML answer as JSON: elements become objects, `item`/`member` lists and repeated
/// elements become arrays, text becomes strings, empty elements become null.
pub fn xml_to_json(text: &str) -> Result<Value, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    Ok(node_to_json(doc.root_element()))
}

fn node_to_json(n: roxmltree::Node<'_, '_>) -> Value {
    let children: Vec<_> = n.children().filter(|c| c.is_element()).collect();
    if children.is_empty() {
        return match n.text() {
            Some(t) if !t.trim().is_empty() => Value::String(t.to_string()),
            _ => Value::Null,
        };
    }
    if children
        .iter()
        .all(|c| matches!(c.tag_name().name(), "item" | "member"))
    {
        return Value::Array(children.into_iter().map(node_to_json).collect());
    }
    let mut m = Map::new();
    for c in children {
        let k = c.tag_name().name().to_string();
        let v = node_to_json(c);
        match m.get_mut(&k) {
            Some(Value::Array(a)) => a.push(v),
            Some(prev) => {
                let p = prev.take();
                *prev = Value::Array(vec![p, v]);
            }
            None => {
                m.insert(k, v);
            }
        }
    }
    Value::Object(m)
}

/// The error code and message in an XML error answer (EC2 `Response/Errors/Error`, awsQuery
/// `ErrorResponse/Error`).
pub fn xml_error(text: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let find = |tag: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    Some((find("Code")?, find("Message").unwrap_or_default()))
}

/// The error code and message in a JSON error answer.
pub fn json_error(v: &Value) -> Option<(String, String)> {
    let t = v.get("__type").and_then(Value::as_str)?;
    let code = t.rsplit('#').next().unwrap_or(t).to_string();
    let msg = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some((code, msg))
}

/// The error code and message of a failed awsJson answer: the body's `__type`, else the
/// `x-amzn-ErrorType` header real AWS also sends, else an XML error body (what moto answers
/// for a request IAM enforcement denied); `None` when none of them names a code.
pub fn json_protocol_error(
    error_type_header: Option<&str>,
    text: &str,
) -> Option<(String, String)> {
    let body: Option<Value> = serde_json::from_str(text).ok();
    if let Some(e) = body.as_ref().and_then(json_error) {
        return Some(e);
    }
    if let Some(h) = error_type_header.map(str::trim).filter(|h| !h.is_empty()) {
        // "AccessDeniedException:http://internal.amazon.com/coral/..." -> the part before ':'
        let code = h.split(':').next().unwrap_or(h);
        let code = code.rsplit('#').next().unwrap_or(code).to_string();
        let message = body
            .as_ref()
            .and_then(|v| v.get("message").or_else(|| v.get("Message")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Some((code, message));
    }
    xml_error(text)
}

/// Look up a dot-separated path in a JSON value.
pub fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() || path == "." {
        return Some(v);
    }
    path.split('.').try_fold(v, |cur, seg| cur.get(seg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Environment {
        Environment::for_tests("us-east-1")
    }

    #[test]
    fn templates_expand_each_and_skip_absent() {
        let tmpl = json!({
            "MaxResults": 500,
            "Filter": [
                {"$each": "tags", "$item": {"Name": "tag:${key}", "Value": ["${value}"]}},
                {"$when": "states", "Name": "status", "Value": "${states}"}
            ],
            "VolumeId": "${volume_ids}"
        });
        let mut args = Args::new();
        args.insert("tags".into(), json!({"env": "staging", "team": "web"}));
        let out = render_request(tmpl.as_object().unwrap(), &args, &env());
        assert_eq!(
            Value::Object(out.clone()),
            json!({"MaxResults": 500, "Filter": [
                {"Name": "tag:env", "Value": ["staging"]},
                {"Name": "tag:team", "Value": ["web"]}
            ]})
        );
        let body = query_body(Protocol::Ec2, "DescribeVolumes", "2016-11-15", &out);
        assert_eq!(
            body,
            "Action=DescribeVolumes&Version=2016-11-15&MaxResults=500&Filter.1.Name=tag%3Aenv&Filter.1.Value.1=staging&Filter.2.Name=tag%3Ateam&Filter.2.Value.1=web"
        );
        let q = query_body(
            Protocol::Query,
            "X",
            "1",
            &json!({"Ids": ["a"]}).as_object().unwrap().clone(),
        );
        assert_eq!(q, "Action=X&Version=1&Ids.member.1=a");
    }

    #[test]
    fn rest_paths_and_queries_are_encoded() {
        let mut args = Args::new();
        args.insert("bucket".into(), json!("my.bucket-1"));
        args.insert("odd".into(), json!("a b/c"));
        assert_eq!(rest_path("/${bucket}", &args, &env()), "/my.bucket-1");
        assert_eq!(rest_path("/${odd}/x", &args, &env()), "/a%20b%2Fc/x");
        let q = json!({"versioning": "", "max-keys": 5, "prefix": "a b", "list": ["x", "y"]});
        assert_eq!(
            rest_query(q.as_object().unwrap()),
            "versioning=&max-keys=5&prefix=a%20b&list=x&list=y"
        );
    }

    #[test]
    fn s3_lists_of_one_and_many() {
        let one = "<ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name></Bucket></Buckets></ListAllMyBucketsResult>";
        let v = xml_to_json(one).unwrap();
        assert_eq!(lookup(&v, "Buckets.Bucket.Name"), Some(&json!("a")));
        let two = "<ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name></Bucket><Bucket><Name>b</Name></Bucket></Buckets></ListAllMyBucketsResult>";
        let v = xml_to_json(two).unwrap();
        assert_eq!(v["Buckets"]["Bucket"][1]["Name"], json!("b"));
        let err = "<Error><Code>NoSuchLifecycleConfiguration</Code><Message>none</Message></Error>";
        assert_eq!(
            xml_error(err),
            Some(("NoSuchLifecycleConfiguration".into(), "none".into()))
        );
    }

    #[test]
    fn absent_interpolation_drops_the_key() {
        let tmpl = json!({"a": "x-${missing}", "b": "${region}"});
        let out = render_request(tmpl.as_object().unwrap(), &Args::new(), &env());
        assert_eq!(Value::Object(out), json!({"b": "us-east-1"}));
    }

    #[test]
    fn json_protocol_errors_come_from_the_body_the_header_or_an_xml_body() {
        let c = |h: Option<&str>, t: &str| json_protocol_error(h, t).unwrap().0;
        assert_eq!(
            c(
                None,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"m"}"#
            ),
            "ResourceNotFoundException"
        );
        assert_eq!(
            c(
                Some(
                    "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/"
                ),
                "{}"
            ),
            "AccessDeniedException"
        );
        assert_eq!(
            c(
                None,
                "<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>"
            ),
            "AccessDenied"
        );
        assert_eq!(
            json_protocol_error(None, "<html>Page Not Found</html>"),
            None
        );
    }

    #[test]
    fn xml_lists_and_errors() {
        let xml = r#"<DescribeVolumesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>r</requestId>
            <volumeSet><item><volumeId>vol-1</volumeId><tagSet/></item><item><volumeId>vol-2</volumeId></item></volumeSet>
            <nextToken>t</nextToken></DescribeVolumesResponse>"#;
        let v = xml_to_json(xml).unwrap();
        assert_eq!(
            lookup(&v, "volumeSet").unwrap().as_array().unwrap().len(),
            2
        );
        assert_eq!(lookup(&v, "nextToken"), Some(&json!("t")));
        assert_eq!(v["volumeSet"][0]["tagSet"], Value::Null);
        let err = "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>no</Message></Error></Errors></Response>";
        assert_eq!(
            xml_error(err),
            Some(("UnauthorizedOperation".into(), "no".into()))
        );
        assert_eq!(
            json_error(&json!({"__type": "com.amazon#AccessDeniedException", "message": "m"})),
            Some(("AccessDeniedException".into(), "m".into()))
        );
    }
}
