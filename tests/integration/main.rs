//! One integration binary (one link, shared helpers): the real `airlock` binary over stdio with
//! real MCP clients, against a real moto server with IAM enforcement on.

mod support;

mod adding_a_tool;
mod architecture;
mod broker;
mod catalogue_tools;
mod cli;
mod delete_flows;
mod doctor;
mod init_iam;
mod leaks;
mod mcp_stdio;
mod new_user;
mod protocol;
mod python_client;
mod queue_flow;
mod scope_proofs;
mod signed_policy;
mod team_tools;
