//! stdio with a guard in front of the protocol library. Every line the client sends is checked
//! before rmcp sees it: a line larger than [`MAX_MESSAGE`], a line that is not JSON, or a message
//! rmcp cannot decode (wrong types, a batch) is answered here with a JSON-RPC error carrying the
//! request's id when it has one, so a client never waits forever on a message that was silently
//! dropped, and memory stays bounded whatever a client writes. Valid lines pass through
//! unchanged. Everything written to stdout, by rmcp or by this guard, goes through one writer, a
//! whole line at a time.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;

/// The largest message accepted from a client (tool calls are small; this bounds memory).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The (reader, writer) pair to hand to rmcp instead of raw stdin/stdout.
pub fn guarded_stdio() -> (DuplexStream, DuplexStream) {
    guarded(tokio::io::stdin(), tokio::io::stdout())
}

/// The same guard over any byte streams (tests drive it with in-memory pipes).
pub fn guarded<I, O>(input: I, output: O) -> (DuplexStream, DuplexStream)
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (rmcp_in, feed) = tokio::io::duplex(1 << 16);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(1 << 16);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
    tokio::spawn(write_lines(rx, output));
    let to_writer = tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(from_rmcp).split(b'\n');
        while let Ok(Some(mut line)) = lines.next_segment().await {
            line.push(b'\n');
            if to_writer.send(line).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(read_lines(input, feed, tx));
    (rmcp_in, rmcp_out)
}

async fn write_lines<O: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Vec<u8>>, mut out: O) {
    while let Some(line) = rx.recv().await {
        if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
            break;
        }
    }
}

async fn read_lines<I: AsyncRead + Unpin>(
    mut input: I,
    mut feed: DuplexStream,
    errors: mpsc::Sender<Vec<u8>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut oversized = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            match rest.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    if oversized {
                        oversized = false;
                    } else if buf.len() + i > MAX_MESSAGE {
                        // The end of an oversized line arrived with the bytes that made it
                        // too large: refused like any other oversized line.
                        refuse_oversized(&errors).await;
                    } else {
                        buf.extend_from_slice(&rest[..i]);
                        if !handle(&buf, &mut feed, &errors).await {
                            return;
                        }
                    }
                    buf.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    if !oversized {
                        buf.extend_from_slice(rest);
                        if buf.len() > MAX_MESSAGE {
                            oversized = true;
                            buf = Vec::new();
                            refuse_oversized(&errors).await;
                        }
                    }
                    rest = &[];
                }
            }
        }
    }
    if !buf.is_empty() && !oversized {
        let _ = handle(&buf, &mut feed, &errors).await;
    }
    // Dropping `feed` closes rmcp's input: the session ends cleanly.
}

/// Answer a message larger than [`MAX_MESSAGE`] (it is discarded, not parsed).
async fn refuse_oversized(errors: &mpsc::Sender<Vec<u8>>) {
    tracing::warn!("a client message exceeded {MAX_MESSAGE} bytes and was discarded");
    let _ = errors
        .send(error_line(
            &Value::Null,
            -32600,
            format!("message larger than {MAX_MESSAGE} bytes; it was discarded"),
        ))
        .await;
}

/// Forward a valid message; answer an invalid one. Returns false when rmcp has gone.
async fn handle(line: &[u8], feed: &mut DuplexStream, errors: &mpsc::Sender<Vec<u8>>) -> bool {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return true;
    }
    match serde_json::from_slice::<ClientJsonRpcMessage>(trimmed) {
        Ok(_) => {
            let mut l = trimmed.to_vec();
            l.push(b'\n');
            feed.write_all(&l).await.is_ok()
        }
        Err(e) => {
            let parsed: Option<Value> = serde_json::from_slice(trimmed).ok();
            let id = parsed
                .as_ref()
                .and_then(|v| v.get("id"))
                .filter(|id| id.is_string() || id.is_number())
                .cloned()
                .unwrap_or(Value::Null);
            let (code, message) = match &parsed {
                None => (-32700, "parse error: not JSON".to_string()),
                Some(Value::Array(_)) => (
                    -32600,
                    "batches are not supported; send one message per line".to_string(),
                ),
                Some(v) if v.get("method").is_some() && !id.is_null() => {
                    (-32602, format!("invalid request: {}", clip(&e.to_string())))
                }
                Some(_) => (-32600, format!("invalid request: {}", clip(&e.to_string()))),
            };
            // A notification (no id) gets no answer, as JSON-RPC requires; it is only logged.
            let is_notification = parsed
                .as_ref()
                .is_some_and(|v| v.get("method").is_some() && v.get("id").is_none());
            tracing::warn!(code, %message, "rejected a malformed client message");
            if !is_notification {
                let _ = errors.send(error_line(&id, code, message)).await;
            }
            true
        }
    }
}

fn error_line(id: &Value, code: i64, message: String) -> Vec<u8> {
    let mut l = serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
    .unwrap_or_default();
    l.push(b'\n');
    l
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    //! The guard over in-memory pipes: every malformed line is answered (with its id when it
    //! has one), notifications are not, valid lines reach rmcp unchanged, and an oversized line
    //! is discarded as it streams.

    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// Feeds `lines` to the guard; returns (the answers the client got, the lines rmcp got).
    async fn run(input: Vec<u8>) -> (Vec<Value>, Vec<String>) {
        let (mut client, guard_in) = tokio::io::duplex(1 << 20);
        let (guard_out, client_out) = tokio::io::duplex(1 << 20);
        let (rmcp_in, rmcp_out) = guarded(guard_in, guard_out);
        client.write_all(&input).await.unwrap();
        drop(client);
        let mut forwarded = Vec::new();
        let mut lines = BufReader::new(rmcp_in).lines();
        while let Some(l) = lines.next_line().await.unwrap() {
            forwarded.push(l);
        }
        // rmcp is done: closing its output ends the writer, and with it the client's stream.
        drop(rmcp_out);
        let mut answers = Vec::new();
        let mut out = BufReader::new(client_out).lines();
        while let Some(l) = out.next_line().await.unwrap() {
            answers.push(serde_json::from_str(&l).unwrap());
        }
        (answers, forwarded)
    }

    #[tokio::test]
    async fn every_malformed_line_is_answered_and_valid_ones_pass() {
        let valid = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let input = [
            "this is not json",
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"nope"}"#,
            r#"{"jsonrpc":"2.0","id":"four","method":"tools/call","params":"nope"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":"nope"}"#,
            r#"{"id":6}"#,
            "",
            valid,
        ]
        .join("\n");
        let (answers, forwarded) = run(input.into_bytes()).await;
        assert_eq!(forwarded, [valid], "only the valid line reaches rmcp");
        let got: Vec<(Value, i64)> = answers
            .iter()
            .map(|a| (a["id"].clone(), a["error"]["code"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (Value::Null, -32700),
                (Value::Null, -32600),
                (json!(3), -32602),
                (json!("four"), -32602),
                (json!(6), -32600),
            ],
            "{answers:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_line_is_refused_and_the_next_one_still_passes() {
        let mut input = vec![b'x'; MAX_MESSAGE + 10];
        input.push(b'\n');
        input.extend_from_slice(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
        input.push(b'\n');
        let (answers, forwarded) = run(input).await;
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0]["error"]["code"], -32600);
        assert_eq!(forwarded, [r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#]);
    }
}
