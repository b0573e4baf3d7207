//! Time and duration parsing shared by the policy, the tool arguments and the CLI.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parse a human duration such as `15m`, `1h`, `7d` or `90s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write it like \"15m\", \"1h\" or \"7d\"")
    })
}

/// Where "now" comes from for the parts whose decisions depend on it (the executor's due
/// times and leases): the system clock, or a clock a test moves by hand.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parse an instant given as RFC 3339 (`2026-11-25T08:00:00Z`) or as epoch milliseconds.
pub fn parse_instant_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is too large for epoch milliseconds"));
    }
    let at = humantime::parse_rfc3339_weak(t).map_err(|_| {
        format!(
            "`{s}` is not a time; give RFC 3339 like \"2026-11-25T08:00:00Z\" or epoch milliseconds"
        )
    })?;
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("`{s}` is before 1970"))
}

/// Format epoch milliseconds as RFC 3339 with millisecond precision.
pub fn format_ms(ms: i64) -> String {
    if ms < 0 {
        return ms.to_string();
    }
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip() {
        let ms = parse_instant_ms("2026-11-25T08:00:00Z").unwrap();
        assert_eq!(format_ms(ms), "2026-11-25T08:00:00.000Z");
        assert_eq!(parse_instant_ms("1000").unwrap(), 1000);
        assert!(parse_instant_ms("yesterday").is_err());
        assert!(parse_duration("fortnight").is_err());
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    }
}
