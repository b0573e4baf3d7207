//! The JSON Schema of a tool file, generated from the types in [`super::raw`] and committed as
//! `schemas/tool.schema.json` so editors validate tool files as they are typed (Taplo / Even
//! Better TOML: `.taplo.toml`, or a `#:schema` comment on a file's first line).
//!
//! Regenerate after changing the format: `cargo run -q -- tools schema >
//! schemas/tool.schema.json` (or `AIRLOCK_REGENERATE=1 cargo test --lib generated_files`).
//! A unit test fails while the committed file differs from what the code generates.

use schemars::generate::SchemaSettings;

use super::raw::RawTool;

/// Where the schema is committed, relative to the repository root.
pub const SCHEMA_PATH: &str = "schemas/tool.schema.json";

/// The schema as pretty JSON with a final newline. Draft 7, which every TOML editor plugin
/// understands.
pub fn tool_schema() -> String {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RawTool>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
