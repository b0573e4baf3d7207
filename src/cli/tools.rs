//! `airlock tools`: the catalogue for the people who write it. `list` shows what is served and
//! from where, `check` validates tool files (every problem as `FILE:LINE:COL:`), `schema`
//! prints the JSON Schema editors validate tool files with, `doc` prints the catalogue page.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock::catalogue::{self, Catalogue};
use airlock::config::source::SourceErrors;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::exit;

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// List the catalogue: each tool's risk class, IAM actions, session-policy resources and
    /// where it comes from (built-in, or a file of the tools folder).
    List(ListArgs),
    /// Validate tool files; every problem as FILE:LINE:COL. Without FILEs: the whole
    /// configured catalogue. Exit 0 when valid, 3 when not.
    Check(CheckArgs),
    /// Print the JSON Schema of a tool file (the committed copy is schemas/tool.schema.json).
    Schema,
    /// Print the catalogue page (markdown) generated from the tool files
    /// (`airlock tools doc --builtin > docs/catalogue.md` regenerates the repository's).
    Doc(DocArgs),
}

/// Which catalogue: `--tools DIR`, else the policy's `settings.tools_dir`, else the built-in
/// tools.
#[derive(Debug, Clone, Args)]
pub struct CatalogueArgs {
    /// The policy file whose `settings.tools_dir` names the tools folder (default:
    /// ./policy.toml when it exists).
    #[arg(long, env = "AIRLOCK_POLICY")]
    pub policy: Option<PathBuf>,
    /// A tools folder (replaces the built-in catalogue, as for `serve`).
    #[arg(long, env = "AIRLOCK_TOOLS", conflicts_with = "builtin")]
    pub tools: Option<PathBuf>,
    /// The built-in tools, whatever the policy says.
    #[arg(long)]
    pub builtin: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Tool files to check (against the configured catalogue, for `[describe]` tools they
    /// name). Default: every file of the configured catalogue.
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DocArgs {
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Where a catalogue's files are.
enum Source {
    Builtin,
    Dir(PathBuf),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Builtin => catalogue::doc::BUILTIN_SOURCE.into(),
            Source::Dir(d) => format!("the tools folder `{}`", d.display()),
        }
    }
}

impl CatalogueArgs {
    fn source(&self) -> Result<Source, SourceErrors> {
        if self.builtin {
            return Ok(Source::Builtin);
        }
        if let Some(t) = &self.tools {
            return Ok(Source::Dir(t.clone()));
        }
        let path = match &self.policy {
            Some(p) => p.clone(),
            None => {
                let p = PathBuf::from("policy.toml");
                if !p.exists() {
                    return Ok(Source::Builtin);
                }
                p
            }
        };
        let dir = airlock::policy::load::tools_dir(&path)?;
        Ok(dir.map_or(Source::Builtin, Source::Dir))
    }

    fn load(&self) -> Result<(Catalogue, Source), SourceErrors> {
        let source = self.source()?;
        let c = match &source {
            Source::Builtin => airlock::policy::load::catalogue(None)?,
            Source::Dir(d) => airlock::policy::load::catalogue(Some(d))?,
        };
        Ok((c, source))
    }
}

pub fn run(c: ToolsCommand) -> anyhow::Result<ExitCode> {
    match c {
        ToolsCommand::List(a) => list(a),
        ToolsCommand::Check(a) => check(a),
        ToolsCommand::Schema => {
            print!("{}", catalogue::schema::tool_schema());
            Ok(ExitCode::SUCCESS)
        }
        ToolsCommand::Doc(a) => {
            let (c, source) = a.catalogue.load().map_err(exit::Failure::config)?;
            print!("{}", catalogue::doc::render(&c, &source.describe()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn entries(c: &Catalogue, builtin: bool) -> Vec<Value> {
    c.tools()
        .map(|t| {
            let mut v = catalogue::summary(t);
            v["source"] = json!(if builtin {
                "built-in".to_string()
            } else {
                t.path.display().to_string()
            });
            v
        })
        .collect()
}

#[allow(clippy::print_stdout)]
fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let (c, source) = a.catalogue.load().map_err(exit::Failure::config)?;
    let rows = entries(&c, matches!(source, Source::Builtin));
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let joined = |v: &Value| {
        let list: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if list.is_empty() {
            "-".to_string()
        } else {
            list.join(" ")
        }
    };
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r["name"].as_str().unwrap_or_default().to_string(),
                r["risk"].as_str().unwrap_or_default().to_string(),
                joined(&r["actions"]),
                joined(&r["resources"]),
                r["source"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    let header = ["TOOL", "RISK", "ACTIONS", "RESOURCES", "SOURCE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&table) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let result = if a.files.is_empty() {
        a.catalogue
            .load()
            .map(|(c, s)| (c, s.describe(), matches!(s, Source::Builtin)))
    } else {
        check_files(&a)
    };
    match result {
        Ok((c, what, builtin)) => {
            let names: Vec<&str> = c.names().collect();
            if a.json {
                println!(
                    "{}",
                    json!({"ok": true, "tools": entries(&c, builtin), "errors": []})
                );
            } else {
                println!(
                    "ok: {} tool(s) in {what} are valid: {}",
                    names.len(),
                    names.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            if a.json {
                let list = super::errors_json(&errs);
                println!("{}", json!({"ok": false, "tools": [], "errors": list}));
                Ok(ExitCode::from(exit::CONFIG))
            } else {
                Err(exit::Failure::config(errs))
            }
        }
    }
}

/// The named files, checked as a set; a `[describe]` tool they name may also come from the
/// configured catalogue (when it loads).
fn check_files(a: &CheckArgs) -> Result<(Catalogue, String, bool), SourceErrors> {
    let files = airlock::catalogue::read_tool_files(&a.files)?;
    let context = a.catalogue.load().ok().map(|(c, _)| c);
    let c = Catalogue::from_files_with(files, context.as_ref())?;
    let what = if a.files.len() == 1 {
        format!("`{}`", a.files[0].display())
    } else {
        format!("{} files", a.files.len())
    };
    Ok((c, what, false))
}
