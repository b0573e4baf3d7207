//! The catalogue refuses unsafe tool files, each with file:line:col.

use super::*;

/// The built-in tools, by name in catalogue order: the one hand-written list every test pins
/// (tests/fixtures/builtin-tools.txt; adding a built-in tool means adding it there).
pub(crate) fn builtin_tools() -> Vec<&'static str> {
    include_str!("../../tests/fixtures/builtin-tools.txt")
        .lines()
        .collect()
}

/// A valid read tool to mutate in the tests below.
const GOOD: &str = r#"
name = "get_thing"
description = "Get one thing."
risk = "read"

[[arguments]]
name = "environment"
type = "environment"
required = true
description = "env"

[[arguments]]
name = "thing"
type = "string"
required = true
description = "thing id"
pattern = "^t-[0-9a-f]{8}$"
resource = true

[aws]
service = "ec2"
protocol = "ec2"
action = "DescribeThings"
version = "2016-11-15"
iam_actions = ["ec2:DescribeThings"]
resources = ["arn:${partition}:ec2:${region}:${account}:thing/${thing}"]
"#;

fn parse(text: &str) -> Result<ToolSpec, SourceErrors> {
    parse_tool(&SourceFile::new("tools/t.toml", text))
}

/// The one error for `text`, with its line and column checked against `needle`'s position.
fn refused(text: &str, needle: &str, expect: &str) {
    let errs = parse(text).expect_err("the tool file must be refused");
    let e = errs
        .0
        .iter()
        .find(|e| e.message.contains(expect))
        .unwrap_or_else(|| panic!("no error mentions {expect:?}: {errs}"));
    let offset = text.find(needle).expect("needle in text");
    let want = SourceFile::new("x", text).line_col(offset);
    assert_eq!((e.line, e.col), want, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("tools/t.toml:{}:{}: ", want.0, want.1))
    );
}

#[test]
fn builtin_catalogue_loads() {
    let c = Catalogue::builtin().expect("built-in tools are valid");
    let names: Vec<&str> = c.names().collect();
    assert_eq!(names, builtin_tools());
    for t in c.tools() {
        assert_eq!(
            t.input_schema["additionalProperties"],
            json!(false),
            "{}",
            t.name
        );
    }
}

#[test]
fn the_tools_folder_is_the_builtin_catalogue() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let from_dir = Catalogue::load_dir(&dir).expect("tools/ loads");
    let builtin = Catalogue::builtin().unwrap();
    assert_eq!(
        from_dir.names().collect::<Vec<_>>(),
        builtin.names().collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        BUILTIN.len(),
        "every file in tools/ is embedded"
    );
}

#[test]
fn good_tool_parses() {
    let t = parse(GOOD).expect("valid");
    assert_eq!(t.resource_arguments().count(), 1);
}

#[test]
fn wildcard_action_is_refused() {
    let text = GOOD.replace(r#"["ec2:DescribeThings"]"#, r#"["ec2:Describe*"]"#);
    refused(&text, "\"ec2:Describe*\"", "wildcard action");
}

#[test]
fn write_action_in_a_read_tool_is_refused() {
    let text = GOOD.replace(
        r#"["ec2:DescribeThings"]"#,
        r#"["ec2:DescribeThings", "ec2:DeleteVolume"]"#,
    );
    refused(&text, "\"ec2:DeleteVolume\"", "not a read action");
}

#[test]
fn resource_template_without_a_validated_argument_is_refused() {
    let text = GOOD.replace("thing/${thing}", "thing/fixed");
    refused(
        &text,
        "\"arn:${partition}:ec2:${region}:${account}:thing/fixed\"",
        "does not use any validated argument",
    );
}

#[test]
fn resource_argument_without_a_pattern_is_refused() {
    let text = GOOD.replace("pattern = \"^t-[0-9a-f]{8}$\"\n", "");
    let errs = parse(&text).unwrap_err().to_string();
    assert!(errs.contains("needs a `pattern`"), "{errs}");
    assert!(
        errs.contains("must be a required string with a `pattern`"),
        "{errs}"
    );
}

#[test]
fn unanchored_pattern_is_refused() {
    let text = GOOD.replace("^t-[0-9a-f]{8}$", "t-[0-9a-f]{8}");
    refused(&text, "\"t-[0-9a-f]{8}\"", "must be anchored");
}

#[test]
fn wildcard_or_foreign_account_in_arn_is_refused() {
    let text = GOOD.replace("thing/${thing}", "thing/*");
    refused(&text, "\"arn:${partition}", "wildcard");
    let text = GOOD.replace(":${account}:thing", ":210987654321:thing");
    refused(
        &text,
        "\"arn:${partition}",
        "the account part must be ${account}",
    );
}

#[test]
fn star_resource_needs_a_reason_and_a_read_tool() {
    let text = GOOD.replace(
        r#"resources = ["arn:${partition}:ec2:${region}:${account}:thing/${thing}"]"#,
        r#"resources = ["*"]"#,
    );
    refused(&text, "\"*\"", "wildcard_reason");
}

#[test]
fn unknown_keys_are_refused_with_position() {
    let text = GOOD.replace("risk = \"read\"", "risk = \"read\"\nrisky = true");
    refused(&text, "risky", "unknown field `risky`");
}

#[test]
fn bad_risk_is_refused() {
    let text = GOOD.replace("risk = \"read\"", "risk = \"harmless\"");
    refused(&text, "\"harmless\"", "unknown variant `harmless`");
}

#[test]
fn duplicate_tool_names_are_refused() {
    let a = SourceFile::new("tools/a.toml", GOOD);
    let b = SourceFile::new("tools/b.toml", GOOD);
    let errs = Catalogue::from_files(vec![a, b]).unwrap_err().to_string();
    assert!(
        errs.starts_with(
            "tools/b.toml:1:1: a tool named `get_thing` is already defined in tools/a.toml"
        ),
        "{errs}"
    );
}

#[test]
fn aws_tool_needs_an_environment_argument() {
    let text = GOOD.replace("type = \"environment\"", "type = \"string\"");
    let errs = parse(&text).unwrap_err().to_string();
    assert!(
        errs.contains("needs a required argument named `environment`"),
        "{errs}"
    );
}

/// Found by fuzzing (tool_parse): a huge default_span overflowed the start-time arithmetic.
#[test]
fn oversized_time_spans_are_refused_and_validation_never_overflows() {
    let text = r#"
name = "t"
description = "d"
risk = "read"
handler = "describe_access"
[[arguments]]
name = "from"
type = "timestamp"
description = "s"
[[arguments]]
name = "to"
type = "timestamp"
description = "e"
[time_range]
start = "from"
end = "to"
max_span = "1d"
default_span = "9223372036854776s"
"#;
    let errs = parse(text).unwrap_err().to_string();
    assert!(errs.contains("default_span <= max_span <= 366d"), "{errs}");
    // A call ending at the epoch: the default start clamps to 1970 instead of going negative.
    let c = Catalogue::builtin().unwrap();
    let t = c.get("read_logs").unwrap();
    let input = json!({"environment": "staging", "log_group": "a", "end_time": 0});
    let r = args::validate(t, input.as_object().unwrap(), &["staging"]);
    assert!(r.is_err(), "an empty range at the epoch is refused: {r:?}");
    let input = json!({"environment": "staging", "log_group": "a", "end_time": 1000});
    let a = args::validate(t, input.as_object().unwrap(), &["staging"]).unwrap();
    assert_eq!(a["start_time"], json!(0));
}

#[test]
fn destructive_wire_action_in_a_read_tool_is_refused() {
    // The IAM actions look harmless, but the request that would be sent deletes.
    let text = GOOD.replace("action = \"DescribeThings\"", "action = \"DeleteThings\"");
    refused(
        &text,
        "\"DeleteThings\"",
        "`DeleteThings` is not a read action",
    );
    // A verb that only starts with the letters of a read verb is not one.
    let text = GOOD.replace(r#"["ec2:DescribeThings"]"#, r#"["ec2:Getaway"]"#);
    refused(&text, "\"ec2:Getaway\"", "not a read action");
}

#[test]
fn resource_argument_without_a_pattern_is_refused_where_it_reaches_the_arn() {
    let text = GOOD.replace("pattern = \"^t-[0-9a-f]{8}$\"\n", "");
    refused(
        &text,
        "\"arn:${partition}:ec2:${region}:${account}:thing/${thing}\"",
        "must be a required string with a `pattern` to reach an ARN",
    );
    refused(
        &text,
        "[[arguments]]\nname = \"thing\"",
        "needs a `pattern`",
    );
}

#[test]
fn optional_argument_in_an_arn_is_refused() {
    let text = GOOD.replace(
        "name = \"thing\"\ntype = \"string\"\nrequired = true",
        "name = \"thing\"\ntype = \"string\"\nrequired = false",
    );
    refused(
        &text,
        "\"arn:${partition}:ec2:${region}:${account}:thing/${thing}\"",
        "must be a required string with a `pattern`",
    );
}

#[test]
fn unbounded_pattern_in_an_arn_is_refused_unless_max_length_bounds_it() {
    let text = GOOD.replace("^t-[0-9a-f]{8}$", "^t-[0-9a-f]+$");
    refused(
        &text,
        "\"arn:${partition}:ec2:${region}:${account}:thing/${thing}\"",
        "accepts values of any length",
    );
    let bounded = text.replace(
        "pattern = \"^t-[0-9a-f]+$\"",
        "pattern = \"^t-[0-9a-f]+$\"\nmax_length = 20",
    );
    parse(&bounded).expect("max_length bounds the argument");
}

#[test]
fn pattern_admitting_a_wildcard_in_an_arn_is_refused() {
    for p in [
        "^t-[0-9a-f*]{8}$",
        "^t-.{8}$",
        "^t-[^/]{1,8}$",
        "^t-(x|\\\\?){8}$",
    ] {
        let text = GOOD.replace("^t-[0-9a-f]{8}$", p);
        refused(
            &text,
            "\"arn:${partition}:ec2:${region}:${account}:thing/${thing}\"",
            "accepts `*` or `?`",
        );
    }
}

#[test]
fn every_builtin_file_is_valid_and_reachable_arguments_are_safe() {
    // The stricter rules above hold for the shipped catalogue too.
    for (path, text) in BUILTIN {
        parse_tool(&SourceFile::new(path, *text)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_new_file_is_checked_against_the_catalogue_it_joins() {
    let delete = r#"
name = "request_delete_thing"
description = "Delete one thing."
risk = "destructive"
[[arguments]]
name = "environment"
type = "environment"
required = true
description = "env"
[[arguments]]
name = "volume_id"
type = "string"
required = true
description = "id"
pattern = "^vol-[0-9a-f]{8}$"
resource = true
[[arguments]]
name = "reason"
type = "string"
required = true
description = "why"
max_length = 100
[describe]
tool = "list_volumes"
arguments = { volume_ids = ["${volume_id}"] }
[backup]
kind = "none"
none_reason = "a test"
[aws]
service = "ec2"
protocol = "ec2"
action = "DeleteVolume"
version = "2016-11-15"
iam_actions = ["ec2:DeleteVolume"]
resources = ["arn:${partition}:ec2:${region}:${account}:volume/${volume_id}"]
"#;
    let f = || vec![SourceFile::new("team/request_delete_thing.toml", delete)];
    let alone = Catalogue::from_files(f()).unwrap_err().to_string();
    assert!(
        alone.contains("[describe] tool `list_volumes` must be a read tool"),
        "{alone}"
    );
    let builtin = Catalogue::builtin().unwrap();
    let c = Catalogue::from_files_with(f(), Some(&builtin)).expect("describe tool found");
    let t = c.get("request_delete_thing").unwrap();
    assert_eq!(t.backup, Some(BackupKind::None));
    assert_eq!(t.backup_note.as_deref(), Some("a test"));
}

/// The committed schema (schemas/tool.schema.json) and catalogue page (docs/catalogue.md) are
/// what the code and the files in tools/ generate. `AIRLOCK_REGENERATE=1 cargo test --lib
/// generated_files` rewrites them.
#[test]
fn generated_files_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let builtin = Catalogue::builtin().unwrap();
    let generated = [
        (
            schema::SCHEMA_PATH,
            schema::tool_schema(),
            "cargo run -q -- tools schema > schemas/tool.schema.json",
        ),
        (
            doc::CATALOGUE_PATH,
            doc::render(&builtin, doc::BUILTIN_SOURCE),
            "cargo run -q -- tools doc --builtin > docs/catalogue.md",
        ),
    ];
    let regenerate = std::env::var_os("AIRLOCK_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, want, command) in generated {
        let file = root.join(path);
        if regenerate {
            std::fs::write(&file, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        if have != want {
            stale.push(format!("{path} is stale; regenerate it: {command}"));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\n(or all at once: AIRLOCK_REGENERATE=1 cargo test --lib generated_files)",
        stale.join("\n")
    );
}

#[test]
fn the_catalogue_page_lists_every_tool_with_its_actions_resources_and_risk() {
    let c = Catalogue::builtin().unwrap();
    let page = doc::render(&c, doc::BUILTIN_SOURCE);
    for t in c.tools() {
        assert!(page.contains(&format!("\n## {}\n", t.name)), "{}", t.name);
        let row = page
            .lines()
            .find(|l| l.starts_with(&format!("| [`{}`]", t.name)))
            .unwrap_or_else(|| panic!("no summary row for {}", t.name));
        assert!(row.contains(&format!("| {} |", t.risk.as_str())), "{row}");
        for a in t.aws().map(|a| a.iam_actions.clone()).unwrap_or_default() {
            assert!(row.contains(&format!("`{a}`")), "{row}");
        }
        for r in t.aws().map(|a| a.resources.clone()).unwrap_or_default() {
            assert!(row.contains(&format!("`{r}`")), "{row}");
        }
    }
    assert!(page.contains("- backup before the action: `ebs_snapshot`"));
    // A tool made of several requests lists each one it sends.
    for t in c.tools() {
        let section = page
            .split(&format!("\n## {}\n", t.name))
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        for call in t.aws().map(|a| a.calls.clone()).unwrap_or_default() {
            assert!(
                section.contains(&format!("`{}` (`{} ", call.action, call.method)),
                "{}: {section}",
                t.name
            );
        }
    }
}
/// A rest_xml read tool with several calls, to mutate below.
const REST: &str = r#"
name = "get_bucket_thing"
description = "Get a bucket's settings."
risk = "read"

[[arguments]]
name = "environment"
type = "environment"
required = true
description = "env"

[[arguments]]
name = "bucket"
type = "string"
required = true
description = "bucket"
pattern = "^[a-z0-9.-]{3,63}$"
resource = true

[[arguments]]
name = "note"
type = "string"
description = "free text"

[aws]
service = "s3"
protocol = "rest_xml"
action = "GetBucketThing"
iam_actions = ["s3:GetBucketVersioning"]
resources = ["arn:${partition}:s3:::${bucket}"]

[[aws.calls]]
name = "versioning"
action = "GetBucketVersioning"
path = "/${bucket}"
request = { versioning = "" }
"#;

#[test]
fn rest_calls_parse() {
    let t = parse(REST).expect("valid");
    let a = t.aws().unwrap();
    assert_eq!(a.calls.len(), 1);
    assert_eq!(a.calls[0].method, "GET");
    assert_eq!(a.calls[0].path.as_deref(), Some("/${bucket}"));
}

#[test]
fn rest_paths_need_validated_arguments() {
    let t = REST.replace("path = \"/${bucket}\"", "path = \"/${note}\"");
    refused(
        &t,
        "\"/${note}\"",
        "must be a required string argument with a `pattern`",
    );
    let t = REST.replace("path = \"/${bucket}\"", "path = \"${bucket}\"");
    refused(&t, "\"${bucket}\"", "must start with \"/\"");
    let t = REST.replace("path = \"/${bucket}\"", "path = \"/${bucket}?acl\"");
    refused(&t, "\"/${bucket}?acl\"", "no query");
}

#[test]
fn rest_calls_are_checked() {
    let t = REST.replace("path = \"/${bucket}\"\n", "");
    refused(&t, "[[aws.calls]]\nname", "each rest_xml call needs `path`");
    let t = REST.replace("name = \"versioning\"", "name = \"Versioning!\"");
    refused(&t, "[[aws.calls]]\nname", "must be unique, lowercase");
    let t = REST.replace(
        "action = \"GetBucketVersioning\"\npath",
        "action = \"GetBucketVersioning\"\nmethod = \"PATCH\"\npath",
    );
    refused(&t, "[[aws.calls]]\nname", "method `PATCH`");
    let t = REST.replace("risk = \"read\"", "risk = \"write\"");
    refused(
        &t,
        "[aws]\nservice = \"s3\"",
        "[[aws.calls]] is for read tools",
    );
    let t = GOOD.replace(
        "version = \"2016-11-15\"",
        "version = \"2016-11-15\"\npath = \"/x\"",
    );
    refused(
        &t,
        "[aws]\nservice = \"ec2\"",
        "belong to the rest_xml protocol",
    );
}

/// What a rest_xml request does is its HTTP method: a read tool sending DELETE (or PUT, POST)
/// is refused whatever its action names say, at the [aws] table or the call that sends it.
#[test]
fn destructive_http_method_in_a_read_tool_is_refused() {
    for m in ["DELETE", "PUT", "POST"] {
        let t = REST.replace(
            "action = \"GetBucketVersioning\"\npath",
            &format!("action = \"GetBucketVersioning\"\nmethod = \"{m}\"\npath"),
        );
        refused(
            &t,
            "[[aws.calls]]\nname",
            &format!("method `{m}` can change things, but this tool's risk is \"read\""),
        );
    }
    let t = REST.replace(
        "action = \"GetBucketVersioning\"\npath",
        "action = \"GetBucketVersioning\"\nmethod = \"HEAD\"\npath",
    );
    parse(&t).expect("HEAD reads");
}

#[test]
fn a_backup_kind_must_fit_the_service() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/request_delete_snapshot.toml"),
    )
    .unwrap();
    parse(&text).expect("the built-in file is valid");
    let bad = text.replace("kind = \"snapshot_copy\"", "kind = \"rds_snapshot\"");
    refused(
        &bad,
        "[backup]",
        "this backup kind is for `rds` tools, but this tool calls `ec2`",
    );
    let bad = text.replace("kind = \"snapshot_copy\"", "kind = \"logs_export\"");
    refused(&bad, "[backup]", "this backup kind is for `logs` tools");
}

/// One mistake, one error: a bad resource pattern in a destructive tool makes [aws] fail to
/// validate, and that must not also produce "this backup kind is for ec2 tools, but this tool
/// calls ``" (the service is read from the file, not from the validated spec).
#[test]
fn a_bad_aws_section_yields_no_second_backup_error() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/request_delete_snapshot.toml"),
    )
    .unwrap();
    let bad = text.replace(
        "pattern = \"^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$\"",
        "pattern = \"^.+$\"",
    );
    assert_ne!(bad, text, "the test edits the resource pattern");
    let errs = parse(&bad).expect_err("an unbounded resource pattern is refused");
    assert_eq!(errs.0.len(), 1, "exactly one error: {errs}");
    assert!(!errs.to_string().contains("backup kind"), "{errs}");
    // The backup check still runs on the service as written.
    let worse = bad.replace("kind = \"snapshot_copy\"", "kind = \"rds_snapshot\"");
    let errs = parse(&worse).expect_err("refused");
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert!(
        errs.to_string()
            .contains("this backup kind is for `rds` tools, but this tool calls `ec2`"),
        "{errs}"
    );
}

/// The awsJson version is the request's Content-Type, and AWS refuses a wrong one (moto does
/// not): a known service with the wrong version, or DynamoDB with the 1.1 default, is refused.
#[test]
fn json_version_must_fit_the_service() {
    let dynamo = GOOD
        .replace("service = \"ec2\"", "service = \"dynamodb\"")
        .replace("protocol = \"ec2\"", "protocol = \"json\"")
        .replace(
            "version = \"2016-11-15\"",
            "target = \"DynamoDB_20120810.DescribeThings\"\njson_version = \"1.0\"",
        )
        .replace("ec2:DescribeThings", "dynamodb:DescribeThings")
        .replace(":ec2:", ":dynamodb:");
    let spec = parse(&dynamo).expect("dynamodb with 1.0 parses");
    match &spec.handler {
        Handler::Aws(a) => assert_eq!(a.json_version, JsonVersion::V1_0),
        _ => panic!("aws"),
    }
    refused(
        &dynamo.replace("json_version = \"1.0\"", "json_version = \"1.1\""),
        "\"1.1\"",
        "`dynamodb` speaks awsJson 1.0, not 1.1; set json_version = \"1.0\"",
    );
    refused(
        &dynamo.replace("json_version = \"1.0\"\n", ""),
        "[aws]",
        "add json_version = \"1.0\"",
    );
    let logs = dynamo
        .replace("dynamodb", "logs")
        .replace("DynamoDB_20120810", "Logs_20140328");
    refused(
        &logs,
        "\"1.0\"",
        "`logs` speaks awsJson 1.1, not 1.0; set json_version = \"1.1\"",
    );
    let spec = parse(&logs.replace("json_version = \"1.0\"\n", "")).expect("logs defaults");
    match &spec.handler {
        Handler::Aws(a) => assert_eq!(a.json_version, JsonVersion::V1_1),
        _ => panic!("aws"),
    }
    refused(
        &GOOD.replace(
            "version = \"2016-11-15\"",
            "version = \"2016-11-15\"\njson_version = \"1.1\"",
        ),
        "\"1.1\"",
        "`json_version` belongs to the json protocol",
    );
    assert!(
        parse(&GOOD.replace(
            "version = \"2016-11-15\"",
            "version = \"2016-11-15\"\njson_version = \"2.0\""
        ))
        .is_err()
    );
}
