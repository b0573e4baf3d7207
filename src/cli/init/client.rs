//! The MCP client configuration `airlock init` prints (Cursor, Claude Code, VS Code).

use std::path::Path;

use super::Client;

/// One client's configuration: where it goes and what to do with it (for the person), and the
/// text itself (for the file or the shell: nothing else is in it).
pub struct ClientConfig {
    pub note: String,
    pub body: String,
}

/// The exact configuration for each MCP client (`all`: every one).
/// `trust` is passed as `serve --trust PATH` when given.
pub fn client_config(
    client: Client,
    binary: &Path,
    policy: &Path,
    trust: Option<&Path>,
) -> Vec<ClientConfig> {
    let bin = binary.display().to_string();
    let mut argv = vec![
        "serve".to_string(),
        "--policy".into(),
        policy.display().to_string(),
    ];
    if let Some(t) = trust {
        argv.push("--trust".into());
        argv.push(t.display().to_string());
    }
    let args = serde_json::json!(argv);
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    match client {
        Client::Cursor => vec![ClientConfig {
            note: "Cursor: ~/.cursor/mcp.json (user-level). Not .cursor/mcp.json in the project: the agent can edit that file and point serve at a policy of its own".into(),
            body: json(serde_json::json!({"mcpServers": {"airlock": {"command": bin, "args": args}}})),
        }],
        Client::ClaudeCode => vec![ClientConfig {
            note: "Claude Code: run once (options before the server's name, the command after --)".into(),
            body: format!(
                "claude mcp add --transport stdio --scope user airlock -- {} {}\n",
                shell_quote(&bin),
                argv.iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }],
        Client::Vscode => vec![ClientConfig {
            note: "VS Code: the user configuration (\"MCP: Open User Configuration\"). Not .vscode/mcp.json in the project: the agent can edit that file and point serve at a policy of its own".into(),
            body: json(serde_json::json!({"servers": {"airlock": {"type": "stdio", "command": bin, "args": args}}})),
        }],
        Client::All => [Client::Cursor, Client::ClaudeCode, Client::Vscode]
            .iter()
            .flat_map(|c| client_config(*c, binary, policy, trust))
            .collect(),
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
