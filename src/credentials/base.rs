//! The base credential (the broker's, or the executor's) that AssumeRole is signed with:
//!
//! - **A named profile is that profile and nothing else.** With `profile = "broker"`, keys
//!   exported in the shell that starts the MCP client never become the broker: the profile's
//!   own provider replaces the default chain (static keys, `role_arn` chains, SSO and
//!   `credential_process` all still work).
//! - **Every STS call goes to the configured endpoint,** including the AssumeRole a
//!   `role_arn` + `source_profile` profile makes for itself: an in-memory config file gives the
//!   profile an STS-only `endpoint_url` (`services` section), which the chain's own STS client
//!   reads. (SSO keeps talking to its real portal; a credential process makes no call.)
//! - **Failures say whose they are:** a profile that does not exist is our configuration; a
//!   credential process that fails, an expired SSO login or a chain's refused AssumeRole is the
//!   base credential; connection problems are the network. See [`classify_base`].

use std::error::Error as StdError;

use aws_config::ConfigLoader;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_types::os_shim_internal::{Env, Fs};

use super::CredentialError;
use crate::aws::endpoint;
use crate::policy::Environment;

/// The profiles in the AWS config and credentials files (`AWS_CONFIG_FILE`,
/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/config` and `~/.aws/credentials`).
pub async fn profile_names() -> Result<Vec<String>, String> {
    let set = aws_config::profile::load(&Fs::real(), &Env::real(), &Default::default(), None)
        .await
        .map_err(|e| format!("the AWS config files cannot be read: {e}"))?;
    let mut names: Vec<String> = set.profiles().map(str::to_string).collect();
    names.sort();
    Ok(names)
}

/// Why `profile` cannot be used, when it is not in the AWS config files.
pub async fn missing_profile(profile: &str) -> Option<String> {
    match profile_names().await {
        Ok(names) if names.iter().any(|n| n == profile) => None,
        Ok(names) => Some(format!(
            "there is no profile `{profile}` in the AWS config files ({}){}",
            config_files(),
            if names.is_empty() {
                "; they define no profile".to_string()
            } else {
                format!("; they define: {}", names.join(", "))
            }
        )),
        Err(e) => Some(e),
    }
}

/// Where the AWS config files are looked for, for messages.
fn config_files() -> String {
    let or =
        |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| format!("~/{default}"));
    format!(
        "{} and {}",
        or("AWS_CONFIG_FILE", ".aws/config"),
        or("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")
    )
}

/// The config files, plus (when STS is sent elsewhere) an in-memory config file that points the
/// profile's own STS calls at `sts_url`.
fn profile_files(profile: &str, sts_url: Option<&str>) -> EnvConfigFiles {
    let mut b = EnvConfigFiles::builder()
        .include_default_config_file(true)
        .include_default_credentials_file(true);
    if let Some(url) = sts_url.filter(|u| !u.contains(['\n', '[', ' ', '\t'])) {
        b = b.with_contents(
            EnvConfigFileKind::Config,
            format!(
                "[profile {profile}]\nservices = airlock-sts-endpoint\n\n[services airlock-sts-endpoint]\nsts =\n  endpoint_url = {url}\n"
            ),
        );
    }
    b.build()
}

/// A config loader for `env` whose base credential is `profile` and nothing else (or the
/// standard chain when `profile` is `None`), with every STS call sent to the environment's
/// endpoint. A profile that does not exist is refused here, as our configuration.
pub async fn loader(
    env: &Environment,
    profile: Option<&str>,
) -> Result<ConfigLoader, CredentialError> {
    let region = aws_config::Region::new(env.region.clone());
    let sts_url = endpoint::override_for("sts", env);
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region.clone());
    match profile {
        Some(p) => {
            if let Some(why) = missing_profile(p).await {
                return Err(CredentialError::Config {
                    env: env.name.clone(),
                    message: why,
                });
            }
            let files = profile_files(p, sts_url.as_deref());
            let provider = ProfileFileCredentialsProvider::builder()
                .configure(&ProviderConfig::without_region().with_region(Some(region)))
                .profile_name(p)
                .profile_files(files.clone())
                .build();
            loader = loader
                .profile_name(p)
                .profile_files(files)
                .credentials_provider(provider);
        }
        None => {
            // The standard chain's profile (AWS_PROFILE, else `default`) gets the overlay too.
            if let Some(url) = &sts_url {
                let selected = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
                if missing_profile(&selected).await.is_none() {
                    loader = loader.profile_files(profile_files(&selected, Some(url)));
                }
            }
        }
    }
    if let Some(url) = sts_url {
        loader = loader.endpoint_url(url);
    }
    Ok(loader)
}

/// Resolve the base credential of `profile` in `env` (what `airlock doctor` reports), with a
/// description of where it came from.
pub async fn resolve(
    env: &Environment,
    profile: Option<&str>,
) -> Result<(Credentials, String), CredentialError> {
    let conf = loader(env, profile).await?.load().await;
    let provider = conf
        .credentials_provider()
        .ok_or_else(|| CredentialError::Config {
            env: env.name.clone(),
            message: "no AWS credential provider is configured".into(),
        })?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| classify_base(&e, env, profile))?;
    let name = provider_name(&creds);
    let source = source_label(&name);
    let from_profile = matches!(
        name.as_str(),
        "ProfileFile" | "AssumeRoleProvider" | "CredentialProcess" | "SSO"
    );
    let what = match profile {
        Some(p) => format!("profile `{p}`: {source}"),
        None if from_profile => format!(
            "the standard AWS chain, profile `{}`: {source}",
            std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into())
        ),
        None => format!("the standard AWS chain: {source}"),
    };
    Ok((creds, what))
}

/// The `provider_name` of resolved credentials (only `Debug` shows it). The Debug text itself
/// holds the access key id and is never logged.
fn provider_name(c: &Credentials) -> String {
    let d = format!("{c:?}");
    d.split_once("provider_name: \"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn source_label(name: &str) -> String {
    match name {
        "EnvironmentVariable" => "keys from environment variables (AWS_ACCESS_KEY_ID)".into(),
        "ProfileFile" => "static keys in a profile".into(),
        "AssumeRoleProvider" => "a role the profile assumes (role_arn)".into(),
        "CredentialProcess" => "the profile's credential_process".into(),
        "SSO" => "AWS IAM Identity Center (SSO)".into(),
        "WebIdentityToken" => "a web identity token".into(),
        "EcsContainer" => "the ECS/EKS container credential endpoint".into(),
        "IMDSv2" => "the EC2 instance metadata service".into(),
        other => format!("the `{other}` provider"),
    }
}

fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e| e.source())
}

/// The first error of type `T` in `e`'s source chain.
pub fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    chain(e).find_map(|e| e.downcast_ref::<T>())
}

/// The innermost message of `e`'s source chain (the detail; never a Debug dump).
pub fn innermost(e: &(dyn StdError + 'static)) -> String {
    chain(e).last().map(|e| e.to_string()).unwrap_or_default()
}

/// A base credential that could not be resolved, as our configuration or as its source's
/// failure.
pub fn classify_base(
    e: &CredentialsError,
    env: &Environment,
    profile: Option<&str>,
) -> CredentialError {
    let detail = innermost(e);
    let env = env.name.clone();
    match e {
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
            CredentialError::Config {
                env,
                message: match profile {
                    Some(p) if detail.contains("was not defined") => {
                        format!(
                            "profile `{p}` (or a source_profile it names) is not defined: {detail}"
                        )
                    }
                    Some(p) => format!("profile `{p}` gives no credential: {detail}"),
                    None => format!("the standard AWS chain found no credential: {detail}"),
                },
            }
        }
        _ => {
            use aws_sdk_sts::error::ProvideErrorMetadata;
            type AssumeRoleFailure =
                aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>;
            let message = match find::<AssumeRoleFailure>(e) {
                Some(sts) => format!(
                    "the profile's own AssumeRole failed ({})",
                    sts.code().unwrap_or("no error code")
                ),
                None if detail.contains("external process") => {
                    format!("the credential_process failed: {detail}")
                }
                None => detail,
            };
            CredentialError::BaseCredentials { env, message }
        }
    }
}
