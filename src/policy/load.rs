//! The one loader: policy.toml read and parsed once, its catalogue (the tools folder it names,
//! or the built-in tools) loaded, and the policy validated against it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Policy;
use super::raw::RawPolicy;
use crate::catalogue::Catalogue;
use crate::config::source::{SourceError, SourceErrors, SourceFile};

/// A policy with the catalogue its rules were checked against.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Arc<Policy>,
    pub catalogue: Arc<Catalogue>,
}

/// The policy file at `path`, read and parsed (not yet validated).
pub(super) fn read(path: &Path) -> Result<(SourceFile, RawPolicy), SourceErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                " (looked for {}{}); give the policy's path with --policy PATH or the AIRLOCK_POLICY environment variable",
                path.display(),
                std::env::current_dir()
                    .ok()
                    .filter(|_| path.is_relative())
                    .map(|d| format!(" in {}", d.display()))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        SourceErrors::from(SourceError::whole_file(
            path,
            format!("cannot read the policy: {e}{hint}"),
        ))
    })?;
    let file = SourceFile::new(path, text);
    let raw: RawPolicy = file.parse_toml()?;
    Ok((file, raw))
}

/// The catalogue in `dir`, or the built-in tools.
pub fn catalogue(dir: Option<&Path>) -> Result<Catalogue, SourceErrors> {
    match dir {
        Some(d) => Catalogue::load_dir(d),
        None => Catalogue::builtin(),
    }
}

/// Load the policy at `path` and the catalogue it is checked against: the tools folder
/// `tools` when given, else the policy's `settings.tools_dir`, else the built-in tools. The
/// file is read and parsed once.
pub fn load(path: &Path, tools: Option<&Path>) -> Result<Config, SourceErrors> {
    let (file, raw) = read(path)?;
    let dir = tools
        .map(Path::to_path_buf)
        .or_else(|| super::tools_dir(&file, &raw));
    let catalogue = catalogue(dir.as_deref())?;
    let policy = Policy::from_raw(&file, &raw, Some(&catalogue))?;
    Ok(Config {
        policy: Arc::new(policy),
        catalogue: Arc::new(catalogue),
    })
}

/// The tools folder the policy at `path` names (`settings.tools_dir`); the policy must be valid
/// apart from the checks that need the catalogue.
pub fn tools_dir(path: &Path) -> Result<Option<PathBuf>, SourceErrors> {
    let (file, raw) = read(path)?;
    Ok(Policy::from_raw(&file, &raw, None)?.tools_dir)
}

/// A named AWS profile the policy uses, with where it is written.
#[derive(Debug, Clone)]
pub struct ProfileUse {
    pub env: String,
    /// `profile` or `executor_profile`.
    pub key: &'static str,
    pub name: String,
    at: SourceError,
}

impl ProfileUse {
    /// An error at the place the profile is named.
    pub fn error(&self, message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            ..self.at.clone()
        }
    }
}

/// Every `profile` and `executor_profile` the policy at `path` names, in file order.
pub fn profile_uses(path: &Path) -> Result<Vec<ProfileUse>, SourceErrors> {
    let (file, raw) = read(path)?;
    let mut uses = Vec::new();
    for (name, env) in &raw.environments {
        let env = env.get_ref();
        for (key, p) in [
            ("profile", &env.profile),
            ("executor_profile", &env.executor_profile),
        ] {
            if let Some(p) = p {
                uses.push(ProfileUse {
                    env: name.get_ref().clone(),
                    key,
                    name: p.get_ref().clone(),
                    at: file.error(Some(p.span()), ""),
                });
            }
        }
    }
    uses.sort_by_key(|u| (u.at.line, u.at.col));
    Ok(uses)
}
