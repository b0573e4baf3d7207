//! docs/adding-a-tool.md, tested as written: the blocks tagged with a file name are written to
//! a team folder exactly as they appear, the console transcripts are run with the real binary
//! and must print what the page shows, and the two tools (which exist only as files of that
//! folder) are served over stdio against moto with IAM enforcement on: the read tool answers,
//! the session policies airlock sends are proven with iam-rs, and the destructive tool queues a
//! request that a person approves and the executor carries out.

use std::path::Path;

use iam_rs::Decision;
use serde_json::{Value, json};

use crate::support::proofs::eval;
use crate::support::*;

/// What the page holds: files (path, text) and console transcripts (argv, expected stdout,
/// expected exit code).
struct Page {
    files: Vec<(String, String)>,
    commands: Vec<(Vec<String>, String, i32)>,
    text: String,
}

fn page() -> Page {
    let text = std::fs::read_to_string(repo().join("docs/adding-a-tool.md")).unwrap();
    let mut files = Vec::new();
    let mut commands: Vec<(Vec<String>, String, i32)> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            body.push(l);
        }
        if let Some(path) = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        {
            files.push((path.to_string(), format!("{}\n", body.join("\n"))));
        } else if info == "console" {
            for l in body {
                if let Some(cmd) = l.strip_prefix("$ ") {
                    commands.push((split(cmd), String::new(), 0));
                } else if let Some(code) = l.strip_prefix("# exit ") {
                    commands.last_mut().unwrap().2 = code.parse().unwrap();
                } else {
                    let c = commands.last_mut().expect("output after a command");
                    c.1.push_str(l);
                    c.1.push('\n');
                }
            }
        }
    }
    Page {
        files,
        commands,
        text,
    }
}

/// Words of a command line; single quotes group (as the page's JSON arguments use them).
fn split(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmd.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Run one of the page's commands in `dir` (no AWS credential): `mkdir`, or `airlock ...`
/// with an optional `> FILE`.
fn run(dir: &Path, argv: &[String], env: &[(String, String)]) -> Run {
    match argv[0].as_str() {
        "mkdir" => {
            std::fs::create_dir_all(dir.join(&argv[1])).unwrap();
            Run {
                code: 0,
                out: String::new(),
                err: String::new(),
            }
        }
        "airlock" => {
            let (args, to) = match argv.iter().position(|a| a == ">") {
                Some(i) => (&argv[1..i], Some(&argv[i + 1])),
                None => (&argv[1..], None),
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut r = airlock_in(Some(dir), &args, env);
            if let Some(f) = to {
                std::fs::write(dir.join(f), std::mem::take(&mut r.out)).unwrap();
            }
            r
        }
        other => panic!("the page runs `{other}`, which this test does not know how to run"),
    }
}

/// The tests' own eyes on moto (boto3 with the seed's all-powerful inspector key, never
/// airlock's code).
const INSPECT: &str = r#"
import json, sys
import boto3
from botocore.exceptions import ClientError
seed = json.load(open(sys.argv[1]))
kw = dict(region_name="us-east-1", endpoint_url=seed["endpoint"],
          aws_access_key_id=seed["inspector_access_key_id"],
          aws_secret_access_key=seed["inspector_secret_access_key"])
ec2, iam = boto3.client("ec2", **kw), boto3.client("iam", **kw)
cmd, args = sys.argv[2], sys.argv[3:]
if cmd == "grant":
    iam.put_role_policy(RoleName=args[0], PolicyName=args[1], PolicyDocument=open(args[2]).read())
    out = {"ok": True}
elif cmd == "groups":
    ids = {}
    for name, tags, rule in [("team-old-build-agents", {"team": "build"}, True),
                             ("team-neighbour", {"team": "build"}, False),
                             ("team-prod-db", {"env": "prod"}, False)]:
        g = ec2.create_security_group(GroupName=name, Description=name + " group", TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
        if rule:
            ec2.authorize_security_group_ingress(GroupId=g["GroupId"], IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
        ids[name] = g["GroupId"]
    out = ids
elif cmd == "group":
    try:
        g = ec2.describe_security_groups(GroupIds=[args[0]])["SecurityGroups"][0]
        out = {"exists": True, "name": g["GroupName"]}
    except ClientError as e:
        out = {"exists": False, "error": e.response["Error"]["Code"]}
json.dump(out, sys.stdout)
"#;

fn inspect(rig: &Rig, args: &[&str]) -> Value {
    let seed = rig.dir.path().join("inspect-seed.json");
    std::fs::write(&seed, rig.moto.seed.to_string()).unwrap();
    python_json(|c| c.arg("-c").arg(INSPECT).arg(&seed).args(args))
}

/// The session policy `airlock explain` prints for a call, with its hash.
fn explained(rig: &Rig, tool: &str, args: &Value) -> (String, String) {
    let Run { code, out, err } = run(
        rig.dir.path(),
        &[
            "airlock".into(),
            "explain".into(),
            "--policy".into(),
            "policy.toml".into(),
            tool.into(),
            args.to_string(),
            "--json".into(),
        ],
        &rig.cli_env(),
    );
    assert!(code == 0 || code == 5, "{out}{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    (
        plan["session_policy"]["json"].as_str().unwrap().to_string(),
        plan["session_policy"]["hash"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_a_tool_as_documented() {
    let page = page();
    let rig = Rig::new(|t| t);
    let dir = rig.dir.path();

    // The page's files, byte for byte; the folder holds nothing else of airlock's.
    let names: Vec<&str> = page.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "team-tools/list_security_groups.toml",
            "team-tools/request_delete_security_group.toml",
            "policy.toml",
        ]
    );
    for (path, text) in &page.files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    assert_eq!(rig.policy, dir.join("policy.toml"));

    // Every console transcript prints what the page shows, with the exit code it shows.
    assert!(page.commands.len() >= 7, "{:?}", page.commands);
    for (argv, want, code) in &page.commands {
        let Run {
            code: got_code,
            out,
            err,
        } = run(dir, argv, &rig.cli_env());
        assert_eq!(got_code, *code, "{argv:?}: {out}{err}");
        assert_eq!(
            &out, want,
            "{argv:?} printed something else than the page shows"
        );
    }
    // The schema the page writes is the committed one; the folder's only TOML files are the
    // page's two tools.
    assert_eq!(
        std::fs::read_to_string(dir.join("team-tools/tool.schema.json")).unwrap(),
        std::fs::read_to_string(repo().join("schemas/tool.schema.json")).unwrap()
    );
    let mut tomls: Vec<String> = std::fs::read_dir(dir.join("team-tools"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    tomls.sort();
    assert_eq!(
        tomls,
        [
            "list_security_groups.toml",
            "request_delete_security_group.toml"
        ]
    );

    // The error the page quotes is the one the checker prints for that mistake.
    let quoted = page
        .text
        .lines()
        .find(|l| l.starts_with("team-tools/list_security_groups.toml:"))
        .expect("the page quotes an error");
    let read_file = dir.join("team-tools/list_security_groups.toml");
    let good = std::fs::read_to_string(&read_file).unwrap();
    std::fs::write(
        &read_file,
        good.replace("[\"ec2:DescribeSecurityGroups\"]", "[\"ec2:Describe*\"]"),
    )
    .unwrap();
    let Run { code, out: _, err } = run(
        dir,
        &split("airlock tools check team-tools/list_security_groups.toml"),
        &rig.cli_env(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.lines().any(|l| l == quoted), "{err}\nwanted: {quoted}");
    std::fs::write(&read_file, good).unwrap();

    // Live: a short cooldown instead of the page's 10m, nothing else changed.
    let policy = std::fs::read_to_string(&rig.policy).unwrap();
    assert!(policy.contains("cooldown = \"10m\""));
    std::fs::write(
        &rig.policy,
        policy.replace("cooldown = \"10m\"", "cooldown = \"1s\""),
    )
    .unwrap();
    let groups = inspect(&rig, &["groups"]);
    let old = groups["team-old-build-agents"]
        .as_str()
        .unwrap()
        .to_string();
    let neighbour = groups["team-neighbour"].as_str().unwrap().to_string();
    let prod = groups["team-prod-db"].as_str().unwrap().to_string();

    // The page's policy and tool files are new: an approver signs them, as the page says.
    let (code, screen) = rig.sign_policy(&rig.owner, None);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("request_delete_security_group destructive"),
        "{screen}"
    );
    let agent = rig.agent().await;
    let tools = agent.client.list_all_tools().await.unwrap();
    let served: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        served,
        ["list_security_groups", "request_delete_security_group"]
    );

    // Before the roles are granted the read action, moto (enforcing IAM) refuses it: the
    // page's role step is needed, and the call really goes to AWS under the agent role.
    // (The seed gave the demo roles the built-in tools' actions only.)
    let args = json!({"environment": "staging", "group_ids": [old]});
    let a = agent.call("list_security_groups", args.clone()).await;
    assert!(a.is_error, "{}", a.text);
    assert!(
        matches!(
            a.body["aws_code"].as_str(),
            Some("AccessDenied" | "UnauthorizedOperation")
        ),
        "{}",
        a.text
    );
    // The page's `put-role-policy` step, with the documents `airlock iam` wrote.
    inspect(
        &rig,
        &[
            "grant",
            "airlock-agent-staging",
            "airlock-agent",
            dir.join("iam/agent-staging-permissions.json")
                .to_str()
                .unwrap(),
        ],
    );
    // moto evaluates identity policies for EC2 against the resource "*" (it does not know
    // the ARN a call acts on), so a statement naming ARNs never matches there: moto gets the
    // executor document with its resources widened to "*". The document as written is proven
    // with iam-rs instead: this environment's groups, this action, nowhere else.
    let executor_doc =
        std::fs::read_to_string(dir.join("iam/executor-staging-permissions.json")).unwrap();
    let own_arn = format!("arn:aws:ec2:us-east-1:123456789012:security-group/{old}");
    assert_eq!(
        eval(
            &executor_doc,
            "ec2:DeleteSecurityGroup",
            &own_arn,
            "us-east-1"
        ),
        Decision::Allow
    );
    for (action, resource, region) in [
        (
            "ec2:DeleteSecurityGroup",
            format!("arn:aws:ec2:us-west-2:123456789012:security-group/{old}"),
            "us-west-2",
        ),
        (
            "ec2:DeleteSecurityGroup",
            format!("arn:aws:ec2:us-east-1:210987654321:security-group/{old}"),
            "us-east-1",
        ),
        ("ec2:DeleteVolume", "*".to_string(), "us-east-1"),
        ("ec2:TerminateInstances", "*".to_string(), "us-east-1"),
    ] {
        assert_eq!(
            eval(&executor_doc, action, &resource, region),
            Decision::NotApplicable,
            "{action} on {resource}"
        );
    }
    let mut for_moto: Value = serde_json::from_str(&executor_doc).unwrap();
    for st in for_moto["Statement"].as_array_mut().unwrap() {
        st["Resource"] = json!("*");
    }
    let for_moto_path = dir.join("executor-permissions-for-moto.json");
    std::fs::write(&for_moto_path, for_moto.to_string()).unwrap();
    inspect(
        &rig,
        &[
            "grant",
            "airlock-executor-staging",
            "airlock-executor",
            for_moto_path.to_str().unwrap(),
        ],
    );

    // The read tool answers from AWS.
    let a = agent.call("list_security_groups", args.clone()).await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(a.body["count"], 1, "{}", a.text);
    let item = &a.body["items"][0];
    assert_eq!(item["id"], json!(old));
    assert_eq!(item["name"], "team-old-build-agents");
    assert_eq!(item["protected"], false);
    assert_eq!(item["tags"], json!({"team": "build"}));
    assert_eq!(
        item["inbound"],
        json!([{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidrs": [{"cidr": "10.0.0.0/8"}]}])
    );
    let a_all = agent
        .call("list_security_groups", json!({"environment": "staging"}))
        .await;
    let ids: Vec<&str> = a_all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&neighbour.as_str()) && ids.contains(&prod.as_str()));
    let prod_item = a_all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == json!(prod))
        .unwrap();
    assert_eq!(prod_item["protected"], true, "env=prod is a protected tag");

    // The session policy sent is the one explain prints, and it allows this read in this
    // region only, and nothing that changes anything.
    let (doc, hash) = explained(&rig, "list_security_groups", &args);
    assert_eq!(a.body["scope"]["session_policy_sha256"], json!(hash));
    assert_eq!(
        a.body["scope"]["actions"],
        json!(["ec2:DescribeSecurityGroups"])
    );
    assert_eq!(
        eval(&doc, "ec2:DescribeSecurityGroups", "*", "us-east-1"),
        Decision::Allow
    );
    assert_eq!(
        eval(&doc, "ec2:DescribeSecurityGroups", "*", "us-west-2"),
        Decision::NotApplicable
    );
    for act in [
        "ec2:DeleteSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:DeleteVolume",
    ] {
        assert_eq!(
            eval(&doc, act, &own_arn, "us-east-1"),
            Decision::NotApplicable,
            "{act}"
        );
    }

    // The destructive tool: a protected group is refused and nothing is queued.
    let a = agent
        .call(
            "request_delete_security_group",
            json!({"environment": "staging", "group_id": prod, "reason": "looks unused"}),
        )
        .await;
    assert!(a.is_error, "{}", a.text);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("is a protected resource"),
        "{}",
        a.text
    );
    let Run {
        code: _,
        out,
        err: _,
    } = rig.cli(&["requests", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 0);

    // A request for the old group is queued, bound to it, with what airlock saw.
    let del_args = json!({"environment": "staging", "group_id": old, "reason": "build agents moved to the new VPC"});
    let a = agent
        .call("request_delete_security_group", del_args.clone())
        .await;
    assert!(!a.is_error, "{}", a.text);
    assert_eq!(a.body["state"], "pending");
    assert_eq!(a.body["resource_id"], json!(old));
    let id = a.body["request_id"].as_str().unwrap().to_string();
    // The tool declares no backup: the agent is told so, with the file's reason, not that a
    // snapshot will be taken; the approver sees the same reason (text and --json).
    let none_reason = "a security group holds only its rules, and the request keeps them as they were described when it was made (airlock requests show ID)";
    assert_eq!(a.body["backup"]["kind"], "none", "{}", a.text);
    let next = a.body["what_happens_next"].to_string();
    assert!(next.contains("takes no backup first"), "{next}");
    assert!(next.contains(none_reason), "{next}");
    assert!(!next.to_lowercase().contains("snapshot"), "{next}");
    let Run {
        code,
        out: text,
        err: _,
    } = rig.cli(&["requests", "show", &id]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "backup      none (the tool declares no backup: {none_reason})"
        )),
        "{text}"
    );
    let shown = rig.show(&id);
    assert_eq!(shown["backup_plan"]["kind"], "none", "{shown}");
    assert_eq!(shown["backup_plan"]["none_reason"], none_reason, "{shown}");
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["tool"], "request_delete_security_group");
    assert_eq!(
        shown["resource_arn"],
        json!(format!(
            "arn:aws:ec2:us-east-1:123456789012:security-group/{old}"
        ))
    );
    assert_eq!(
        shown["resource"]["name"], "team-old-build-agents",
        "{shown}"
    );
    assert!(inspect(&rig, &["group", &old])["exists"] == json!(true));

    // The executor's delete policy: this group, this action, nothing else.
    let (doc, hash) = explained(&rig, "request_delete_security_group", &del_args);
    assert_eq!(
        eval(&doc, "ec2:DeleteSecurityGroup", &own_arn, "us-east-1"),
        Decision::Allow
    );
    for other in [
        format!("arn:aws:ec2:us-east-1:123456789012:security-group/{neighbour}"),
        format!("arn:aws:ec2:us-east-1:123456789012:security-group/{prod}"),
        format!("arn:aws:ec2:us-east-1:210987654321:security-group/{old}"),
    ] {
        assert_eq!(
            eval(&doc, "ec2:DeleteSecurityGroup", &other, "us-east-1"),
            Decision::NotApplicable,
            "{other}"
        );
    }
    assert_eq!(
        eval(
            &doc,
            "ec2:DeleteSecurityGroup",
            &format!("arn:aws:ec2:us-west-2:123456789012:security-group/{old}"),
            "us-west-2"
        ),
        Decision::NotApplicable
    );
    for act in ["ec2:DeleteVolume", "ec2:AuthorizeSecurityGroupIngress"] {
        assert_eq!(
            eval(&doc, act, &own_arn, "us-east-1"),
            Decision::NotApplicable,
            "{act}"
        );
    }

    // A person approves; after the cooldown the executor deletes exactly that group, under
    // the policy proven above.
    let key = rig.approver("alice", true);
    let (code, screen) = rig.approve(&id, &key, &old, PASS, None);
    assert_eq!(code, 0, "{screen}");
    let done = rig.execute_when_due(&id);
    assert_eq!(done["state"], "executed", "{done}");
    assert_eq!(
        done["outcome"]["session_policy_sha256"],
        json!(hash),
        "{done}"
    );
    assert_eq!(
        inspect(&rig, &["group", &old]),
        json!({"exists": false, "error": "InvalidGroup.NotFound"})
    );
    assert_eq!(inspect(&rig, &["group", &neighbour])["exists"], true);
    assert_eq!(inspect(&rig, &["group", &prod])["exists"], true);
    let (code, out) = rig.audit_verify();
    assert_eq!(code, 0, "{out}");
}
