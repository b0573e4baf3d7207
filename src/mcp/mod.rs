//! The MCP face of airlock: an rmcp `ServerHandler` whose tools are the catalogue. Calls go to
//! the [`Engine`]; a refused or failed call is a tool result with `is_error` and a reason the
//! model can act on. Protocol errors are kept for malformed requests (an argument payload that
//! is not an object).
//!
//! stdout belongs to the protocol: nothing in this module prints.

pub mod transport;
pub mod wire;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value};

use crate::catalogue::Risk;
use crate::engine::{CallContext, Engine};

pub const INSTRUCTIONS: &str = "airlock gives you typed, scoped infrastructure tools. You never hold a cloud credential and must not look for one (in files, environment variables, or elsewhere): every call here runs under credentials minted for that one call. If a call is refused, the result says why and what you may do instead; call describe_access to see what you may do where. Destructive changes are requests that a human approves.";

/// At most this many tool calls run at once per session; more wait their turn. It bounds memory
/// under a burst and the load one agent can put on the AWS endpoints.
pub const MAX_CONCURRENT_CALLS: usize = 32;

#[derive(Clone)]
pub struct AirlockServer {
    engine: Arc<Engine>,
    tools: Arc<Vec<Tool>>,
    session_id: String,
    permits: Arc<tokio::sync::Semaphore>,
}

impl AirlockServer {
    pub fn new(engine: Arc<Engine>) -> Self {
        let tools = engine
            .catalogue
            .tools()
            .map(|t| {
                let ann = ToolAnnotations::new()
                    .read_only(t.risk == Risk::Read)
                    .destructive(t.risk == Risk::Destructive)
                    .idempotent(t.risk == Risk::Read)
                    .open_world(false);
                let mut tool = Tool::new(
                    t.name.clone(),
                    t.description.clone(),
                    t.input_schema.clone(),
                )
                .with_annotations(ann);
                if let Some(title) = &t.title {
                    tool = tool.with_title(title.clone());
                }
                tool
            })
            .collect();
        Self {
            engine,
            tools: Arc::new(tools),
            session_id: uuid::Uuid::new_v4().simple().to_string(),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS)),
        }
    }

    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Serve MCP over stdin/stdout until the client goes away.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        use rmcp::service::ServerInitializeError as E;
        let running = match self.serve(transport::guarded_stdio()).await {
            Ok(r) => r,
            // The client went away before the handshake: nothing to do, not an error.
            Err(E::ConnectionClosed(_)) => {
                tracing::info!("the client closed stdin before initialize");
                return Ok(());
            }
            // Never echo the client's message back: it can be arbitrarily large.
            Err(E::ExpectedInitializeRequest(_)) => {
                anyhow::bail!(
                    "the client's first message was not `initialize`; MCP starts with initialize"
                )
            }
            Err(e) => {
                let mut msg = e.to_string();
                msg.truncate(500);
                anyhow::bail!("MCP handshake failed: {msg}")
            }
        };
        let reason = running.waiting().await?;
        tracing::info!(?reason, "MCP session ended");
        Ok(())
    }
}

impl ServerHandler for AirlockServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let client = context.client_info();
        let ctx = CallContext {
            client_name: client.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            client_version: client
                .as_ref()
                .map(|c| c.version.clone())
                .unwrap_or_default(),
            session_id: self.session_id.clone(),
        };
        if self.engine.catalogue.get(&request.name).is_none() {
            // MCP: an unknown tool is a protocol error (-32602), not a tool result.
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{}`; tools/list shows the tools airlock serves",
                    request.name
                ),
                None,
            ));
        }
        let args: Map<String, Value> = request.arguments.clone().unwrap_or_default();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ErrorData::internal_error("shutting down", None))?;
        let answer = self.engine.call(&request.name, &args, &ctx).await;
        tracing::info!(tool = %request.name, is_error = answer.is_err(), client = %ctx.client_name, "tool call");
        Ok(wire::tool_result(&answer).into())
    }
}
