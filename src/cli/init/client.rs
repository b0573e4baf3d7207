//! The MCP client configuration `airlock init` prints (Cursor, Claude Code, VS Code).

use std::path::Path;

use super::Client;

/// The exact configuration for each MCP client.
/// `trust` is passed as `serve --trust PATH` when given.
pub fn client_config(client: Client, binary: &Path, policy: &Path, trust: Option<&Path>) -> String {
    let bin = binary.display().to_string();
    let pol = policy.display().to_string();
    let mut argv = vec!["serve".to_string(), "--policy".into(), pol.clone()];
    if let Some(t) = trust {
        argv.push("--trust".into());
        argv.push(t.display().to_string());
    }
    let args = serde_json::json!(argv);
    match client {
        Client::Cursor => format!(
            "# Cursor: ~/.cursor/mcp.json (user-level). Not .cursor/mcp.json in the project: the agent can edit that file and point serve at a policy of its own\n{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "mcpServers": {"airlock": {"command": bin, "args": args}}
            }))
            .unwrap_or_default()
        ),
        Client::ClaudeCode => format!(
            "# Claude Code: run once\nclaude mcp add airlock --scope user -- {} {}\n",
            shell_quote(&bin),
            argv.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Client::Vscode => format!(
            "# VS Code: the user configuration (\"MCP: Open User Configuration\"). Not .vscode/mcp.json in the project: the agent can edit that file and point serve at a policy of its own\n{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "servers": {"airlock": {"type": "stdio", "command": bin, "args": args}}
            }))
            .unwrap_or_default()
        ),
        Client::All => [Client::Cursor, Client::ClaudeCode, Client::Vscode]
            .iter()
            .map(|c| client_config(*c, binary, policy, trust))
            .collect::<Vec<_>>()
            .join("\n"),
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
