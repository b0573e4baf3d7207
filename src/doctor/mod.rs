//! `airlock doctor`: a check-list in the order of airlock's five controls, each line pass, warn,
//! fail or skip, with the fix. See docs/doctor.md.
//!
//! 1. Credentials in the workspace (and the process environment) that an agent could read.
//! 2. What the broker credential can do: it must not be able to delete.
//! 3. The executor: the broker cannot assume its role, its credential is not readable by this
//!    user, and the trust file is not writable by this user.
//! 4. Backups go to another region (or account).
//! 5. The policy is signed by a trusted approver, and the queue file is outside the workspace.

pub mod scan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_credential_types::Credentials;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::approval::trust::TrustFile;
use crate::aws::{endpoint, protocol, sign};
use crate::catalogue::{Catalogue, Protocol, Risk};
use crate::credentials;
use crate::policy::signature::{Manifest, signature_path, status};
use crate::policy::{Environment, Policy};

/// The five controls, in order.
pub const CONTROLS: [&str; 5] = [
    "Credentials in the workspace",
    "What the broker credential can do",
    "The executor",
    "Backups",
    "Policy integrity and the queue",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Pass => "pass",
            Level::Skip => "skip",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One line of the check-list.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// 1 to 5, see [`CONTROLS`].
    pub control: u8,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<scan::Finding>,
}

fn line(control: u8, level: Level, message: impl Into<String>, fix: Option<&str>) -> Line {
    Line {
        control,
        level,
        message: message.into(),
        fix: fix.map(str::to_string),
        finding: None,
    }
}

/// What the doctor looks at.
pub struct Inputs {
    /// The project directory the agent works in.
    pub workspace: PathBuf,
    /// The loaded policy and catalogue, or why they could not be loaded.
    pub config: Result<(Arc<Policy>, Arc<Catalogue>), String>,
    pub trust_path: PathBuf,
    pub db_path: PathBuf,
    /// The process environment to scan (the agent's, when run from its shell).
    pub env: Vec<(String, String)>,
    /// Whether to ask AWS (controls 2 and 3); off, those lines are `skip`.
    pub aws: bool,
}

/// Runs every check; the lines come in control order.
pub async fn run(i: &Inputs) -> Vec<Line> {
    let mut out = credentials(i);
    match &i.config {
        Err(e) => {
            for c in 2..=5 {
                out.push(line(
                    c,
                    Level::Fail,
                    format!("the policy cannot be loaded: {e}"),
                    Some("fix the policy (`airlock check` shows every problem as file:line:col), or point --policy at it"),
                ));
            }
        }
        Ok((policy, catalogue)) => {
            out.extend(broker(i, policy, catalogue).await);
            out.extend(executor(i, policy).await);
            out.extend(backups(i, policy).await);
            out.extend(integrity(i, policy, catalogue).await);
        }
    }
    out
}

const CRED_FIX: &str = "remove it from the workspace and the agent's environment (rotate it if it was ever committed or shared); airlock serve needs only the broker's base credential, from a profile or SSO outside the workspace";

fn credentials(i: &Inputs) -> Vec<Line> {
    let s = scan::scan_dir(&i.workspace);
    let mut findings = s.findings.clone();
    findings.extend(scan::scan_env(&i.env));
    let mut out = Vec::new();
    for f in &findings {
        let at = match &f.variable {
            Some(v) => format!("environment variable {v}"),
            None => format!(
                "{}:{}{}{}",
                f.path,
                f.line,
                match &f.via_symlink {
                    Some(t) => format!(" (via symlink to {t})"),
                    None => String::new(),
                },
                if f.git_ignored { " (git-ignored)" } else { "" }
            ),
        };
        let l = if f.example {
            Line {
                control: 1,
                level: Level::Pass,
                message: format!(
                    "{at}: {}: a documentation example or placeholder, not a secret",
                    f.kind
                ),
                fix: None,
                finding: Some(f.clone()),
            }
        } else if f.kind == "encrypted_private_key" {
            Line {
                control: 1,
                level: Level::Warn,
                message: format!(
                    "{at}: a passphrase-encrypted private key (an approver key?) the agent can read"
                ),
                fix: Some("keep approver keys in ~/.config/airlock, outside the workspace".into()),
                finding: Some(f.clone()),
            }
        } else {
            Line {
                control: 1,
                level: Level::Fail,
                message: format!("{at}: {}", f.kind),
                fix: Some(CRED_FIX.into()),
                finding: Some(f.clone()),
            }
        };
        out.push(l);
    }
    if !findings.iter().any(|f| !f.example) {
        out.push(line(
            1,
            Level::Pass,
            format!(
                "no cloud or platform credential in {} ({} files read, {} of them git-ignored) or in the environment",
                i.workspace.display(),
                s.files_scanned,
                s.git_ignored_files
            ),
            None,
        ));
    }
    out
}

/// The broker's base credential for `env`, exactly as `airlock serve` resolves it (the named
/// profile and nothing else, or the standard chain), and where it came from.
async fn base_credentials(env: &Environment) -> Result<Credentials, String> {
    credentials::base::resolve(env, env.profile.as_deref())
        .await
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}

async fn sts(env: &Environment, creds: &Credentials) -> aws_sdk_sts::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(env.region.clone()))
        .credentials_provider(creds.clone());
    if let Some(url) = endpoint::override_for("sts", env) {
        loader = loader.endpoint_url(url);
    }
    aws_sdk_sts::Client::new(&loader.load().await)
}

/// A signed query-protocol request; returns (HTTP status, body).
async fn query(
    url: &str,
    service: &str,
    region: &str,
    body: String,
    creds: &Credentials,
) -> Result<(u16, String), String> {
    let http = crate::aws::call::http_client();
    let mut req = http
        .post(format!("{url}/"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .build()
        .map_err(|e| e.to_string())?;
    sign::sign_request(&mut req, creds, region, service).map_err(|e| e.to_string())?;
    let resp = http
        .execute(req)
        .await
        .map_err(|e| format!("cannot reach {service} at {url}: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// The ARN the policy simulator takes for a caller: an assumed-role session
/// (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`) is asked about as its role
/// (`arn:aws:iam::ACCOUNT:role/NAME`; a role with a path is not named in the session ARN, so
/// the simulator will not find it and the dry run answers instead); users and roots as they are.
fn simulator_arn(caller: &str) -> String {
    if let Some((head, rest)) = caller.split_once(":assumed-role/")
        && let Some((name, _session)) = rest.split_once('/')
        && let Some((prefix, account)) = head.rsplit_once(':')
        && let Some(partition) = prefix
            .strip_prefix("arn:")
            .and_then(|p| p.strip_suffix(":sts:"))
    {
        return format!("arn:{partition}:iam::{account}:role/{name}");
    }
    caller.to_string()
}

fn eval_results(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let (Some(a), Some(d)) = (
                m.get("EvalActionName").and_then(Value::as_str),
                m.get("EvalDecision").and_then(Value::as_str),
            ) {
                out.push((a.to_string(), d.to_string()));
            }
            m.values().for_each(|x| eval_results(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| eval_results(x, out)),
        _ => {}
    }
}

const BROKER_FIX: &str = "give the broker principal only sts:AssumeRole (and sts:SetSourceIdentity) on the agent roles: `airlock iam` writes that policy (broker-policy.json)";

async fn broker(i: &Inputs, policy: &Policy, catalogue: &Catalogue) -> Vec<Line> {
    let mut out = Vec::new();
    if !i.aws {
        out.push(line(2, Level::Skip, "not checked (--skip-aws)", None));
        return out;
    }
    let mut actions: Vec<String> = catalogue
        .tools()
        .filter(|t| t.risk == Risk::Destructive)
        .filter_map(|t| t.aws())
        .flat_map(|a| a.iam_actions.clone())
        .collect();
    actions.sort();
    actions.dedup();
    for env in policy.environments.values() {
        let creds = match credentials::base::resolve(env, env.profile.as_deref()).await {
            Ok((c, source)) => {
                out.push(line(
                    2,
                    Level::Pass,
                    format!("{}: the broker's credential comes from {source}", env.name),
                    None,
                ));
                c
            }
            Err(e) => {
                out.push(line(2, Level::Warn, format!("{}: {e}", env.name), Some("run doctor with the same AWS environment (AWS_PROFILE, ...) as the MCP client gives `airlock serve`")));
                continue;
            }
        };
        let who = match sts(env, &creds).await.get_caller_identity().send().await {
            Ok(o) => o.arn().unwrap_or("?").to_string(),
            Err(e) => {
                out.push(line(
                    2,
                    Level::Warn,
                    format!(
                        "{}: the broker credential does not work: {}",
                        env.name,
                        e.into_service_error()
                    ),
                    Some("check the broker's profile and that it is not expired"),
                ));
                continue;
            }
        };
        // The IAM policy simulator, where the credential may call it.
        let iam_url =
            endpoint::override_for("iam", env).unwrap_or_else(|| match env.partition.as_str() {
                "aws-cn" => "https://iam.cn-north-1.amazonaws.com.cn".into(),
                "aws-us-gov" => "https://iam.us-gov.amazonaws.com".into(),
                _ => "https://iam.amazonaws.com".into(),
            });
        let sign_region = match env.partition.as_str() {
            "aws-cn" => "cn-north-1",
            "aws-us-gov" => "us-gov-west-1",
            _ => "us-east-1",
        };
        let mut params = Map::new();
        params.insert("PolicySourceArn".into(), json!(simulator_arn(&who)));
        params.insert("ActionNames".into(), json!(actions));
        let body = protocol::query_body(
            Protocol::Query,
            "SimulatePrincipalPolicy",
            "2010-05-08",
            &params,
        );
        let simulated = match query(&iam_url, "iam", sign_region, body, &creds).await {
            Ok((200, text)) => protocol::xml_to_json(&text).ok().map(|v| {
                let mut r = Vec::new();
                eval_results(&v, &mut r);
                r
            }),
            _ => None,
        };
        if let Some(results) = simulated.filter(|r| !r.is_empty()) {
            let allowed: Vec<String> = results
                .iter()
                .filter(|(_, d)| d == "allowed")
                .map(|(a, _)| a.clone())
                .collect();
            out.push(if allowed.is_empty() {
                line(
                    2,
                    Level::Pass,
                    format!(
                        "{}: the broker ({who}) cannot delete: the IAM policy simulator denies {}",
                        env.name,
                        actions.join(", ")
                    ),
                    None,
                )
            } else {
                line(
                    2,
                    Level::Fail,
                    format!(
                        "{}: the broker ({who}) may {}: the IAM policy simulator allows it",
                        env.name,
                        allowed.join(", ")
                    ),
                    Some(BROKER_FIX),
                )
            });
            continue;
        }
        // No simulator: a dry run of the delete the built-in tools make.
        let mut params = Map::new();
        params.insert("VolumeId".into(), json!("vol-00000000000000000"));
        params.insert("DryRun".into(), json!("true"));
        let body = protocol::query_body(Protocol::Ec2, "DeleteVolume", "2016-11-15", &params);
        let url = endpoint::resolve("ec2", env);
        match query(&url, "ec2", &env.region, body, &creds).await {
            Err(e) => out.push(line(2, Level::Warn, format!("{}: {e}", env.name), None)),
            Ok((status, text)) => {
                let code = protocol::xml_error(&text)
                    .map(|(c, _)| c)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                out.push(match code.as_str() {
                    "DryRunOperation" => line(2, Level::Fail, format!("{}: the broker ({who}) may delete volumes: ec2:DeleteVolume with DryRun answered DryRunOperation (the IAM policy simulator was not available to it)", env.name), Some(BROKER_FIX)),
                    c if c.contains("UnauthorizedOperation") || c.contains("AccessDenied") => line(2, Level::Pass, format!("{}: the broker ({who}) cannot delete: ec2:DeleteVolume with DryRun was refused ({c}); the IAM policy simulator was not available to it", env.name), None),
                    c => line(2, Level::Warn, format!("{}: could not tell whether the broker ({who}) may delete: ec2:DeleteVolume with DryRun answered {c}", env.name), Some("check the broker's IAM policy by hand: it should allow only sts:AssumeRole on the agent roles")),
                });
            }
        }
    }
    out
}

/// Whether this process's user may write `p` (the agent's user, when run from its shell).
fn writable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn inside(workspace: &Path, p: &Path) -> bool {
    let abs = |x: &Path| {
        std::fs::canonicalize(x).unwrap_or_else(|_| {
            // A file that does not exist yet: its folder's real path.
            x.parent()
                .and_then(|d| std::fs::canonicalize(d).ok())
                .map(|d| d.join(x.file_name().unwrap_or_default()))
                .unwrap_or_else(|| x.to_path_buf())
        })
    };
    abs(p).starts_with(abs(workspace))
}

async fn executor(i: &Inputs, policy: &Policy) -> Vec<Line> {
    let mut out = Vec::new();
    let execs: Vec<&Arc<Environment>> = policy
        .environments
        .values()
        .filter(|e| e.executor_role.is_some())
        .collect();
    if execs.is_empty() {
        out.push(line(
            3,
            Level::Pass,
            "no environment has an executor_role: nothing destructive can run",
            None,
        ));
    }
    for env in &execs {
        let role = env.executor_role.clone().unwrap_or_default();
        out.push(broker_cannot_assume(i, env, &role).await);
        out.push(executor_credential(i, env));
    }
    out.extend(trust_file(i));
    out
}

/// The broker must not be able to assume the executor role `role`.
async fn broker_cannot_assume(i: &Inputs, env: &Environment, role: &str) -> Line {
    if !i.aws {
        return line(
            3,
            Level::Skip,
            format!(
                "{}: whether the broker can assume {role}: not checked (--skip-aws)",
                env.name
            ),
            None,
        );
    }
    let creds = match base_credentials(env).await {
        Err(e) => return line(3, Level::Warn, format!("{}: {e}", env.name), None),
        Ok(c) => c,
    };
    // A raw signed request, so the error code is read even when the endpoint labels its XML
    // answer as HTML (moto does).
    let mut params = Map::new();
    params.insert("RoleArn".into(), json!(role));
    params.insert("RoleSessionName".into(), json!("airlock-doctor"));
    params.insert("DurationSeconds".into(), json!("900"));
    let body = protocol::query_body(Protocol::Query, "AssumeRole", "2011-06-15", &params);
    let url = endpoint::override_for("sts", env).unwrap_or_else(|| endpoint::resolve("sts", env));
    match query(&url, "sts", &env.region, body, &creds).await {
        Ok((200, _)) => line(
            3,
            Level::Fail,
            format!(
                "{}: the broker credential can assume the executor role {role}",
                env.name
            ),
            Some(
                "the executor role's trust policy must name only the operator (`airlock iam` writes executor-ENV-trust.json), and the broker's policy must not allow sts:AssumeRole on it",
            ),
        ),
        Ok((status, text)) => {
            let code = protocol::xml_error(&text)
                .map(|(c, _)| c)
                .unwrap_or_else(|| format!("HTTP {status}"));
            if code.contains("AccessDenied") {
                line(
                    3,
                    Level::Pass,
                    format!(
                        "{}: the broker cannot assume the executor role {role} ({code})",
                        env.name
                    ),
                    None,
                )
            } else {
                line(
                    3,
                    Level::Warn,
                    format!(
                        "{}: AssumeRole of {role} with the broker credential answered {code}; could not confirm the broker is refused",
                        env.name
                    ),
                    None,
                )
            }
        }
        Err(e) => line(3, Level::Warn, format!("{}: {e}", env.name), None),
    }
}

/// The executor's credential must not be readable by this user.
fn executor_credential(i: &Inputs, env: &Environment) -> Line {
    let creds_file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".aws/credentials")
        });
    let Some(p) = &env.executor_profile else {
        return line(
            3,
            Level::Warn,
            format!(
                "{}: the executor uses the default AWS credential chain of whoever runs it",
                env.name
            ),
            Some(
                "set executor_profile and run `airlock executor` as its own OS user whose credential the agent's user cannot read (docs/deployment.md, \"A team\")",
            ),
        );
    };
    let text = std::fs::read_to_string(&creds_file).unwrap_or_default();
    let has_key = text.split("\n[").any(|sec| {
        sec.trim_start_matches('[').starts_with(&format!("{p}]"))
            && sec.contains("aws_secret_access_key")
    });
    if has_key {
        line(
            3,
            if inside(&i.workspace, &creds_file) {
                Level::Fail
            } else {
                Level::Warn
            },
            format!(
                "{}: the executor profile `{p}` has an access key in {}, which this user (the agent's) can read",
                env.name,
                creds_file.display()
            ),
            Some(
                "move the operator's credential to the executor's own OS user (docs/deployment.md, \"A team\"), or require MFA on the executor role so a stolen key alone cannot assume it",
            ),
        )
    } else {
        line(
            3,
            Level::Pass,
            format!(
                "{}: no access key for the executor profile `{p}` in {}",
                env.name,
                creds_file.display()
            ),
            None,
        )
    }
}

/// The trust file decides whose approvals and policy signatures count.
fn trust_file(i: &Inputs) -> Vec<Line> {
    let mut out = Vec::new();
    let t = &i.trust_path;
    if inside(&i.workspace, t) {
        out.push(line(
            3,
            Level::Fail,
            format!("the trust file {} is inside the workspace", t.display()),
            Some("keep it outside the workspace (default ~/.config/airlock/approvers.toml, or /etc/airlock/approvers.toml owned by root)"),
        ));
    }
    if !t.exists() {
        out.push(line(
            3,
            Level::Warn,
            format!(
                "there is no trust file at {}: no approval and no policy signature can count",
                t.display()
            ),
            Some("create it with the lines `airlock approver init` prints (docs/approvals.md)"),
        ));
    } else {
        let dir = t.parent().unwrap_or(Path::new("/"));
        let (file_w, dir_w) = (writable(t), writable(dir));
        if file_w || dir_w {
            out.push(line(
                3,
                Level::Warn,
                format!(
                    "the trust file {} is writable by this user{}: an agent running as this user could trust its own key",
                    t.display(),
                    if file_w { "" } else { " (through its folder)" }
                ),
                Some(&format!(
                    "sudo chown root:root {f} && sudo chmod 0644 {f} && sudo chown root:root {d} && sudo chmod 0755 {d}; or run the executor as a separate user with its own trust file (docs/deployment.md, \"A team\")",
                    f = t.display(),
                    d = dir.display()
                )),
            ));
        } else {
            out.push(line(
                3,
                Level::Pass,
                format!(
                    "the trust file {} is not writable by this user",
                    t.display()
                ),
                None,
            ));
        }
    }
    out
}

async fn backups(i: &Inputs, policy: &Policy) -> Vec<Line> {
    let mut out = Vec::new();
    for env in policy.environments.values() {
        if env.executor_role.is_none() {
            out.push(line(
                4,
                Level::Pass,
                format!(
                    "{}: no executor_role, so nothing is deleted there and no backup is needed",
                    env.name
                ),
                None,
            ));
            continue;
        }
        out.push(match (&env.backup_region, env.require_isolated_backup) {
            (Some(b), true) if *b != env.region => line(4, Level::Pass, format!("{}: snapshots are copied to {b}, another region than {}, and nothing is deleted without that copy", env.name, env.region), None),
            (Some(b), false) if *b != env.region => line(4, Level::Warn, format!("{}: snapshots are copied to {b}, but a failed copy does not stop the delete", env.name), Some("set require_isolated_backup = true")),
            _ => line(4, Level::Fail, format!("{}: backups stay in {} (no backup_region)", env.name, env.region), Some("set backup_region to another region and require_isolated_backup = true")),
        });
        if let Some(bucket) = &env.log_export_bucket {
            out.push(if i.aws {
                object_lock(env, bucket).await
            } else {
                line(4, Level::Skip, format!("{}: Object Lock on the log export bucket {bucket}: not checked (--skip-aws)", env.name), None)
            });
        }
    }
    if !policy
        .environments
        .values()
        .any(|e| e.executor_role.is_some() && e.log_export_bucket.is_some())
    {
        out.push(line(
            4,
            Level::Skip,
            "S3 Object Lock: no S3 backup bucket (log_export_bucket) is configured; not applicable",
            None,
        ));
    }
    out
}

/// The log export bucket sits in the environment's own region, so what keeps its copies safe
/// is S3 Object Lock in compliance mode (no one, not even the account's root, can delete a
/// locked object early). Read through the environment's agent role, as a read tool would.
async fn object_lock(env: &Environment, bucket: &str) -> Line {
    let fix = format!(
        "create the bucket with Object Lock and set a default retention in COMPLIANCE mode: aws s3api put-object-lock-configuration --bucket {bucket} --object-lock-configuration '{{\"ObjectLockEnabled\":\"Enabled\",\"Rule\":{{\"DefaultRetention\":{{\"Mode\":\"COMPLIANCE\",\"Days\":30}}}}}}'"
    );
    let cannot = |why: String| {
        line(
            4,
            Level::Warn,
            format!(
                "{}: could not read the Object Lock configuration of the log export bucket {bucket} ({why})",
                env.name
            ),
            Some(&format!(
                "check it with the operator's credential: aws s3api get-object-lock-configuration --bucket {bucket} (Mode must be COMPLIANCE)"
            )),
        )
    };
    let base = match base_credentials(env).await {
        Ok(c) => c,
        Err(e) => return cannot(e),
    };
    let session = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:GetBucketObjectLockConfiguration", "s3:ListBucket"],
        "Resource": [format!("arn:{}:s3:::{bucket}", env.partition)]}]})
    .to_string();
    let assumed = sts(env, &base)
        .await
        .assume_role()
        .role_arn(&env.agent_role)
        .role_session_name("airlock-doctor")
        .source_identity("airlock-doctor")
        .policy(session)
        .duration_seconds(900)
        .send()
        .await;
    let creds = match assumed.ok().and_then(|o| o.credentials) {
        Some(c) => Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "airlock-doctor",
        ),
        None => return cannot(format!("the broker could not assume {}", env.agent_role)),
    };
    let url = format!("{}/{bucket}?object-lock", endpoint::resolve("s3", env));
    let http = crate::aws::call::http_client();
    let mut req = match http.get(&url).build() {
        Ok(r) => r,
        Err(e) => return cannot(e.to_string()),
    };
    if let Err(e) = sign::sign_request(&mut req, &creds, &env.region, "s3") {
        return cannot(e.to_string());
    }
    let (status, text) = match http.execute(req).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => return cannot(e.without_url().to_string()),
    };
    let code = protocol::xml_error(&text).map(|(c, _)| c);
    match (status, code.as_deref()) {
        (200, _) if text.contains("<Mode>COMPLIANCE</Mode>") => line(
            4,
            Level::Pass,
            format!(
                "{}: the log export bucket {bucket} has Object Lock in COMPLIANCE mode",
                env.name
            ),
            None,
        ),
        (200, _) if text.contains("<Mode>GOVERNANCE</Mode>") => line(
            4,
            Level::Warn,
            format!(
                "{}: the log export bucket {bucket} has Object Lock in GOVERNANCE mode, which a privileged user can bypass",
                env.name
            ),
            Some(&fix),
        ),
        (200, _) => line(
            4,
            Level::Fail,
            format!(
                "{}: the log export bucket {bucket} has Object Lock without a default retention",
                env.name
            ),
            Some(&fix),
        ),
        (_, Some("ObjectLockConfigurationNotFoundError")) => line(
            4,
            Level::Fail,
            format!(
                "{}: the log export bucket {bucket} has no Object Lock: exported logs could be deleted with the group",
                env.name
            ),
            Some(&fix),
        ),
        (_, Some("NoSuchBucket")) => line(
            4,
            Level::Fail,
            format!(
                "{}: the log export bucket {bucket} does not exist",
                env.name
            ),
            Some(&fix),
        ),
        (_, c) => cannot(
            c.map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}")),
        ),
    }
}

async fn integrity(i: &Inputs, policy: &Policy, catalogue: &Catalogue) -> Vec<Line> {
    let mut out = Vec::new();
    let trust = TrustFile::load(&i.trust_path).map_err(|e| e.to_string());
    let mut st = status(
        &Manifest::of(policy, catalogue),
        &signature_path(&policy.path),
        trust.as_ref().map_err(Clone::clone),
        &i.trust_path,
    );
    // A signature older than one serve or the executor already honoured is a rollback (read
    // the queue's mark only if the queue exists; doctor records nothing).
    if st.signed
        && i.db_path.exists()
        && let Ok(q) = crate::queue::Queue::open(&i.db_path).await
    {
        let newest = q
            .newest_policy_signature(&crate::policy::signature::policy_key(&policy.path))
            .await
            .ok()
            .flatten();
        q.close().await;
        crate::policy::signature::refuse_rollback(&mut st, &policy.path, newest);
    }
    out.push(if st.signed {
        let by: Vec<String> = st.signed_by.iter().map(|s| s.name.clone()).collect();
        line(
            5,
            Level::Pass,
            format!("the policy is signed by {}", by.join(", ")),
            None,
        )
    } else {
        line(
            5,
            Level::Fail,
            format!(
                "the policy is not signed by a trusted approver: {}",
                st.problem.unwrap_or_default()
            ),
            Some("an approver reviews it and runs `airlock policy sign` (docs/signed-policy.md)"),
        )
    });
    if inside(&i.workspace, &policy.path) {
        out.push(line(5, Level::Warn, format!("the policy {} is inside the workspace: the agent can edit it (an edit only unsigns it, which stops destructive work)", policy.path.display()), Some("keep it outside, e.g. ~/.config/airlock/policy.toml or /etc/airlock/policy.toml")));
    }
    out.push(if inside(&i.workspace, &i.db_path) {
        line(5, Level::Fail, format!("the queue file {} is inside the workspace", i.db_path.display()), Some("set settings.db or AIRLOCK_DB to a path outside it (default ~/.local/state/airlock/queue.db)"))
    } else {
        line(5, Level::Pass, format!("the queue file {} is outside the workspace", i.db_path.display()), None)
    });
    out
}

#[cfg(test)]
mod simulator_tests {
    use super::simulator_arn;

    #[test]
    fn the_simulator_is_asked_about_the_role_of_an_assumed_role_session() {
        assert_eq!(
            simulator_arn("arn:aws:sts::123456789012:assumed-role/airlock-broker/alice"),
            "arn:aws:iam::123456789012:role/airlock-broker"
        );
        assert_eq!(
            simulator_arn("arn:aws-us-gov:sts::123456789012:assumed-role/b/s"),
            "arn:aws-us-gov:iam::123456789012:role/b"
        );
        for as_is in [
            "arn:aws:iam::123456789012:user/airlock-broker",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:assumed-role/no-session",
        ] {
            assert_eq!(simulator_arn(as_is), as_is);
        }
    }
}
