//! `airlock iam`: the AWS IAM documents for an existing policy (see `airlock::iam`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock::catalogue::Catalogue;
use airlock::iam::{self, Document, Principals};
use airlock::policy::Policy;
use clap::Args;
use serde_json::{Map, Value, json};

use super::{ConfigArgs, exit};

/// Who assumes the roles (shared by `init` and `iam`).
#[derive(Debug, Clone, Args)]
pub struct PrincipalArgs {
    /// The IAM user or role whose credential `airlock serve` runs with, e.g.
    /// arn:aws:iam::123456789012:user/airlock-broker (default: that user in the first
    /// environment's account).
    #[arg(long, env = "AIRLOCK_BROKER_PRINCIPAL", value_name = "ARN")]
    pub broker_principal: Option<String>,
    /// The IAM user or role whose credential `airlock executor` runs with (default:
    /// user/airlock-operator in the first environment's account).
    #[arg(long, env = "AIRLOCK_OPERATOR_PRINCIPAL", value_name = "ARN")]
    pub operator_principal: Option<String>,
    /// Require MFA (aws:MultiFactorAuthPresent) to assume the executor roles.
    #[arg(long)]
    pub require_mfa: bool,
}

impl PrincipalArgs {
    pub fn resolve(&self, policy: &Policy) -> Principals {
        let (partition, account) = policy
            .environments
            .values()
            .next()
            .map(|e| (e.partition.clone(), e.account.clone()))
            .unwrap_or_default();
        Principals {
            broker: self
                .broker_principal
                .clone()
                .unwrap_or_else(|| default_principal(&partition, &account, "airlock-broker")),
            operator: Some(
                self.operator_principal
                    .clone()
                    .unwrap_or_else(|| default_principal(&partition, &account, "airlock-operator")),
            ),
            require_mfa: self.require_mfa,
        }
    }

    /// The flags that reproduce these principals, for the "regenerate with" hint.
    pub fn flags(p: &Principals) -> String {
        let mut s = format!("--broker-principal {}", p.broker);
        if let Some(o) = &p.operator {
            s.push_str(&format!(" --operator-principal {o}"));
        }
        if p.require_mfa {
            s.push_str(" --require-mfa");
        }
        s
    }
}

pub fn default_principal(partition: &str, account: &str, user: &str) -> String {
    format!("arn:{partition}:iam::{account}:user/{user}")
}

#[derive(Debug, Args)]
pub struct IamArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub principals: PrincipalArgs,
    /// Write one file per document into this folder (created if missing; files of the same
    /// name are replaced). Without it, the documents are printed.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Print one JSON object: `documents` (file name -> document), `notes` (limits of the
    /// policy that IAM cannot express, which airlock alone enforces) and, with --out-dir,
    /// `out_dir` and `commands`.
    #[arg(long)]
    pub json: bool,
}

/// Write the documents into `dir`.
pub fn write_documents(dir: &Path, docs: &[Document]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    for d in docs {
        let p = dir.join(&d.file);
        std::fs::write(&p, d.text())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

pub fn generate(
    policy: &Policy,
    catalogue: &Catalogue,
    principals: &Principals,
) -> anyhow::Result<Vec<Document>> {
    iam::documents(policy, catalogue, principals).map_err(|e| {
        anyhow::Error::new(exit::Failure {
            code: exit::CONFIG,
            message: e.to_string(),
        })
    })
}

#[allow(clippy::print_stdout)]
pub fn run(a: IamArgs) -> anyhow::Result<ExitCode> {
    let c = a.config.load().map_err(exit::Failure::config)?;
    let principals = a.principals.resolve(&c.policy);
    let docs = generate(&c.policy, &c.catalogue, &principals)?;
    if let Some(dir) = &a.out_dir {
        write_documents(dir, &docs)?;
    }
    if a.json {
        let mut m = Map::new();
        for d in &docs {
            m.insert(d.file.clone(), d.json.clone());
        }
        let notes: Vec<&String> = docs.iter().flat_map(|d| &d.notes).collect();
        let mut out = json!({"documents": Value::Object(m), "notes": notes});
        if let Some(dir) = &a.out_dir {
            out["out_dir"] = json!(super::display(dir));
            out["commands"] = json!(iam::setup_commands(
                &c.policy,
                &docs,
                &principals,
                &super::display(dir)
            ));
        }
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    match &a.out_dir {
        Some(dir) => {
            println!("wrote {} document(s) to {}:", docs.len(), dir.display());
            for d in &docs {
                println!("  {:<34} {}", d.file, d.title);
                for n in &d.notes {
                    println!("  {:<34}   note: {n}", "");
                }
            }
            println!(
                "\nto create the roles and attach them (AWS CLI, with an administrator's credential):"
            );
            for cmd in iam::setup_commands(&c.policy, &docs, &principals, &super::display(dir)) {
                println!("  {cmd}");
            }
        }
        None => {
            for d in &docs {
                println!("# {}: {}", d.file, d.title);
                for n in &d.notes {
                    println!("#   note: {n}");
                }
                print!("{}", d.text());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
