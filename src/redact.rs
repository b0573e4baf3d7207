//! Secret redaction: the last step before any text (log lines, error messages, tool output)
//! leaves the process. This module owns the secret patterns (AWS keys and session tokens,
//! bearer and API tokens, private key blocks, passwords) and the `[REDACTED:<kind>]` rewrite.
//! Text without secrets is returned borrowed and byte-identical.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// What a redacted span was. The declaration order is the order of [`Redaction::kinds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    AwsAccessKeyId,
    AwsSecretAccessKey,
    AwsSessionToken,
    BearerToken,
    /// A cloud or hosting platform's token (Railway, Vercel, Fly.io, Render, GitLab, ...).
    PlatformToken,
    ApiToken,
    PrivateKey,
    ConnectionStringPassword,
    GenericPassword,
}

impl SecretKind {
    /// The snake_case name used in the `[REDACTED:<kind>]` marker.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretKind::AwsAccessKeyId => "aws_access_key_id",
            SecretKind::AwsSecretAccessKey => "aws_secret_access_key",
            SecretKind::AwsSessionToken => "aws_session_token",
            SecretKind::BearerToken => "bearer_token",
            SecretKind::PlatformToken => "platform_token",
            SecretKind::ApiToken => "api_token",
            SecretKind::PrivateKey => "private_key",
            SecretKind::ConnectionStringPassword => "connection_string_password",
            SecretKind::GenericPassword => "generic_password",
        }
    }
}

/// The result of [`Redactor::redact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction<'a> {
    /// The scrubbed text; `Cow::Borrowed` (and identical to the input) when nothing was found.
    pub text: Cow<'a, str>,
    /// Distinct kinds replaced, in [`SecretKind`] declaration order.
    pub kinds: Vec<SecretKind>,
    /// Number of `[REDACTED:<kind>]` markers written.
    pub count: usize,
}

#[derive(Debug)]
struct Rule {
    kind: SecretKind,
    re: Regex,
    /// Extra check on the secret text, for patterns too loose to trust alone.
    accept: fn(&str) -> bool,
}

/// Compiled secret patterns. Build once ([`Redactor::global`]) and share.
#[derive(Debug)]
pub struct Redactor {
    /// One pattern per rule, same order: the fast "anything at all?" check.
    set: RegexSet,
    rules: Vec<Rule>,
}

const MARKER_OPEN: &str = "[REDACTED:";

fn any(_: &str) -> bool {
    true
}

/// `Bearer <token>`: reject prose such as "the bearer of".
fn token_like(s: &str) -> bool {
    s.len() >= 20
        || s.bytes()
            .any(|b| b.is_ascii_digit() || b"-._~+/".contains(&b))
}

/// A bare 40-character run that looks like an AWS secret access key rather than a hex hash,
/// a path or a word: mixed case, a digit, and base64's `/` or `+`.
fn standalone_aws_secret(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 40
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter().any(u8::is_ascii_lowercase)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(|&c| c == b'/' || c == b'+')
        && !s.starts_with('/')
        && b.iter().filter(|&&c| c == b'/').count() <= 3
}

/// A rule before compilation: the kind it reports, its pattern, and its extra check.
type Spec = (SecretKind, String, fn(&str) -> bool);

/// The rules in priority order: when spans overlap, the earliest rule names the marker.
/// In each pattern, the first capture group that takes part is the secret; with none, the
/// whole match is.
fn specs() -> Vec<Spec> {
    use SecretKind::*;
    // `key`, optional closing quote, `:` or `=`, then a base64 value that may be quoted.
    let b64_after =
        |keys| format!(r#"(?i)(?:{keys})["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9/+=]{{40,}})"#);
    // `key`, optional closing quote, `:` or `=`, then a double-quoted, single-quoted or bare value.
    let value_after = |keys, n| {
        format!(
            r#"(?i)(?:{keys})["']?[ \t]*[:=][ \t]*(?:"([^"\r\n]{{{n},}})"|'([^'\r\n]{{{n},}})'|([^\s"'&;,]{{{n},}}))"#
        )
    };
    let plain = |kind, p: &str| (kind, p.to_string(), any as fn(&str) -> bool);
    let api_keys = "api[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key|token";
    vec![
        plain(
            PrivateKey,
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\z)",
        ),
        plain(
            AwsSessionToken,
            &b64_after("aws_session_token|session_?token|x-amz-security-token"),
        ),
        plain(
            AwsSessionToken,
            r"(?:IQoJb3JpZ2luX2Vj[A-Za-z0-9/+=]{84,}|FwoGZXIvYXdzE[A-Za-z0-9/+=]{87,})",
        ),
        plain(AwsSecretAccessKey, &b64_after("secret_?access_?key|secret")),
        plain(
            AwsAccessKeyId,
            r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA)[A-Z2-7]{16}(?-u:\b)",
        ),
        (
            BearerToken,
            r"(?i)(?-u:\b)(?:bearer|authorization:[ \t]*basic)[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)"
                .into(),
            token_like,
        ),
        plain(
            ApiToken,
            r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
        ),
        // Platform tokens with a recognisable shape: Fly.io, Render, GitLab.
        plain(
            PlatformToken,
            r"(?:FlyV1 fm[0-9][a-z]?_[A-Za-z0-9_+/=,-]{20,}|fo1_[A-Za-z0-9_-]{20,}|rnd_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20,})",
        ),
        // Platform tokens known by their variable's name (Railway and Vercel tokens have no
        // prefix of their own).
        plain(
            PlatformToken,
            r#"(?i)(?-u:\b)(?:RAILWAY_(?:API_)?TOKEN|RAILWAY_PROJECT_TOKEN|VERCEL_(?:API_)?TOKEN|VERCEL_ACCESS_TOKEN|FLY_(?:API|ACCESS)_TOKEN|RENDER_API_(?:KEY|TOKEN)|NETLIFY_AUTH_TOKEN|HEROKU_API_KEY|DIGITALOCEAN_(?:ACCESS_)?TOKEN|CLOUDFLARE_API_TOKEN)["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9_\-.+/=]{16,})"#,
        ),
        plain(ApiToken, r"xox[abposr]-[A-Za-z0-9-]{10,}"),
        plain(ApiToken, r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        plain(
            ApiToken,
            r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        ),
        // Greedy up to the last `@` before the host, so a raw `@` in the password cannot leak.
        plain(
            ConnectionStringPassword,
            r#"(?i)[a-z][a-z0-9+.\-]*://[^:/@\s]*:([^\s/"'<>]+)@"#,
        ),
        plain(GenericPassword, &value_after("password|passwd|pwd", 1)),
        plain(ApiToken, &value_after(api_keys, 8)),
        (
            AwsSecretAccessKey,
            "[A-Za-z0-9/+]{40,}".into(),
            standalone_aws_secret,
        ),
    ]
}

/// Skip any `[REDACTED:<kind>]` markers at the start of `text[start..end]`, so that a value
/// that is already redacted is not redacted again.
fn skip_markers(text: &str, mut start: usize, end: usize) -> usize {
    while let Some(after) = text[start..end].strip_prefix(MARKER_OPEN) {
        let Some(close) = after.find(']') else { break };
        if close == 0
            || !after[..close]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            break;
        }
        start += MARKER_OPEN.len() + close + 1;
    }
    start
}

impl Redactor {
    /// Compile every pattern. Panics only if a built-in pattern is invalid.
    pub fn new() -> Self {
        let specs = specs();
        let set = RegexSet::new(specs.iter().map(|(_, p, _)| p.as_str()))
            .expect("redact: built-in secret patterns must compile as a set");
        let rules = specs
            .into_iter()
            .map(|(kind, p, accept)| Rule {
                kind,
                re: Regex::new(&p).expect("redact: built-in secret pattern must compile"),
                accept,
            })
            .collect();
        Redactor { set, rules }
    }

    /// The shared instance, compiled on first use.
    pub fn global() -> &'static Redactor {
        static GLOBAL: LazyLock<Redactor> = LazyLock::new(Redactor::new);
        &GLOBAL
    }

    /// Every secret in `input`: non-overlapping byte ranges in order, each with the kind of the
    /// highest-priority rule that matched there (overlapping matches merge into one).
    pub fn find(&self, input: &str) -> Vec<(std::ops::Range<usize>, SecretKind)> {
        self.spans(input)
            .into_iter()
            .map(|(start, end, rule)| (start..end, self.rules[rule].kind))
            .collect()
    }

    fn spans(&self, input: &str) -> Vec<(usize, usize, usize)> {
        let mut spans = Vec::new();
        for idx in self.set.matches(input).iter() {
            let rule = &self.rules[idx];
            for caps in rule.re.captures_iter(input) {
                let Some(m) = caps.iter().skip(1).flatten().next().or_else(|| caps.get(0)) else {
                    continue;
                };
                let start = skip_markers(input, m.start(), m.end());
                if start < m.end() && (rule.accept)(&input[start..m.end()]) {
                    spans.push((start, m.end(), idx));
                }
            }
        }
        // Overlapping spans merge into one (nothing matched is left behind); the
        // highest-priority rule among them names the marker.
        spans.sort_unstable_by_key(|&(start, end, rule)| (start, Reverse(end), rule));
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end, rule) in spans {
            match merged.last_mut() {
                Some(last) if start < last.1 => *last = (last.0, last.1.max(end), last.2.min(rule)),
                _ => merged.push((start, end, rule)),
            }
        }
        merged
    }

    /// Replace every secret in `input` with `[REDACTED:<kind>]`.
    pub fn redact<'a>(&self, input: &'a str) -> Redaction<'a> {
        let merged = self.spans(input);
        if merged.is_empty() {
            return Redaction {
                text: Cow::Borrowed(input),
                kinds: Vec::new(),
                count: 0,
            };
        }

        let mut out = String::with_capacity(input.len() + 16 * merged.len());
        let mut kinds = BTreeSet::new();
        let mut pos = 0;
        for &(start, end, rule) in &merged {
            let kind = self.rules[rule].kind;
            kinds.insert(kind);
            out.push_str(&input[pos..start]);
            out.push_str(MARKER_OPEN);
            out.push_str(kind.as_str());
            out.push(']');
            pos = end;
        }
        out.push_str(&input[pos..]);
        Redaction {
            text: Cow::Owned(out),
            kinds: kinds.into_iter().collect(),
            count: merged.len(),
        }
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

#[cfg(test)]
mod tests {
    use super::SecretKind::*;
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> Redaction<'_> {
        Redactor::global().redact(s)
    }

    /// For each template (`{s}` stands for `secret`): exactly the secret is replaced by one
    /// `kind` marker, the rest of the line is byte-identical, no 8-character fragment of the
    /// secret survives, and a second pass changes nothing.
    fn scrubbed(templates: &[&str], secret: &str, kind: SecretKind) {
        let marker = format!("[REDACTED:{}]", kind.as_str());
        for t in templates {
            let (input, expected) = (t.replace("{s}", secret), t.replace("{s}", &marker));
            let out = r(&input);
            assert_eq!(out.text, expected);
            assert_eq!((&out.kinds[..], out.count), (&[kind][..], 1), "{input:?}");
            let survives = |w: &[u8]| expected.as_bytes().windows(8).any(|x| x == w);
            assert!(secret.len() >= 8 && !secret.as_bytes().windows(8).any(survives));
            assert_eq!(r(&expected).count, 0, "second pass changed {expected:?}");
        }
    }

    fn aws_key_id() -> String {
        format!("AKIA{}", "Z2".repeat(8))
    }

    fn pem(body: &str, end: bool) -> String {
        let d = "-".repeat(5);
        let tail = format!("\n{d}END RSA PRIVATE KEY{d}");
        format!(
            "{d}BEGIN RSA PRIVATE KEY{d}\n{body}{}",
            if end { tail.as_str() } else { "" }
        )
    }

    #[test]
    fn aws_access_key_id() {
        let k = aws_key_id();
        scrubbed(
            &["using key {s} for s3", "id={s}", "\"{s}\","],
            &k,
            AwsAccessKeyId,
        );
        assert_eq!(r(&format!("X{k}")).count, 0, "inside a longer word");
    }

    #[test]
    fn aws_secret_access_key() {
        let keyed = [
            "aws_secret_access_key={s} x",
            r#"{"SecretAccessKey": "{s}"}"#,
            "AWS_SECRET: '{s}' ok",
        ];
        // Keyed: any 40-character base64 value. Bare: only with the look of a real key.
        scrubbed(
            &keyed,
            &format!("{}9876", "AbCd".repeat(9)),
            AwsSecretAccessKey,
        );
        scrubbed(
            &["creds {s} loaded", "x={s}"],
            &format!("Ab1/{}", "xY9+".repeat(9)),
            AwsSecretAccessKey,
        );
        assert_eq!(
            r(&format!("creds {}9876 loaded", "AbCd".repeat(9))).count,
            0
        );
        assert_eq!(
            r("commit 3f786850e387550fdab836ed7e6dc881de23001b merged").count,
            0
        );
    }

    #[test]
    fn aws_session_token() {
        let (iq, fwo) = ("IQoJb3JpZ2luX2Vj".to_owned(), "FwoGZXIvYXdzE".to_owned());
        scrubbed(
            &["tok {s} end"],
            &(iq + &"AbC9/x+z".repeat(14)),
            AwsSessionToken,
        );
        scrubbed(&["t={s}"], &(fwo + &"Qw3rTy+/".repeat(12)), AwsSessionToken);
        let keyed = [
            "AWS_SESSION_TOKEN={s}",
            r#""SessionToken": "{s}""#,
            "X-Amz-Security-Token: {s}",
        ];
        scrubbed(&keyed, &"Zm9vYmFy".repeat(6), AwsSessionToken);
    }

    #[test]
    fn bearer_token() {
        let lines = [
            "Authorization: Bearer {s}\r\nHost: x",
            "sent bearer {s} ok",
            "Authorization: Basic {s}",
        ];
        scrubbed(&lines, "abc123.def456-ghi789_jkl==", BearerToken);
        assert_eq!(r("the bearer of bad news").count, 0);
    }

    #[test]
    fn api_tokens() {
        for t in [
            format!("ghp_{}", "a1B2".repeat(9)),
            format!("github_pat_{}", "11AB_cd".repeat(8)),
            format!("xoxb-{}-{}", "1234567890", "AbCd".repeat(6)),
            format!("sk_live_{}", "4eC39HqLyjWD".repeat(2)),
            format!("rk_live_{}", "9xQ2".repeat(6)),
            format!(
                "eyJ{}.eyJ{}.{}",
                "hbGciOiJI", "zdWIiOiIx", "SflKxwRJ_adQssw5c"
            ),
        ] {
            scrubbed(&["cfg {s} set"], &t, ApiToken);
        }
        let keyed = [
            "api_key={s}&page=2",
            r#"{"access_token": "{s}", "n": 1}"#,
            "X-Api-Key: {s}",
            "token: '{s}'",
        ];
        scrubbed(&keyed, "s3cr3tVal_42", ApiToken);
    }

    #[test]
    fn private_key_blocks() {
        let body = "MIIEpAIBAAKCAQEA7bq9\nZm9vYmFyYmF6cXV4\n";
        scrubbed(
            &["before\n{s}\nafter", "key: {s}"],
            &pem(body, true),
            PrivateKey,
        );
        scrubbed(&["unterminated: {s}"], &pem(body, false), PrivateKey);
    }

    #[test]
    fn connection_string_passwords() {
        let urls = [
            "dsn postgres://app:{s}@db.internal:5432/main ok",
            "mongodb+srv://root:{s}@cluster0.mongodb.net/?w=1",
            "redis://:{s}@cache:6379",
            "https://bob:{s}@example.com/x",
        ];
        scrubbed(&urls, "Hunter2!xyz", ConnectionStringPassword);
        scrubbed(
            &["mysql://root:{s}@host/db"],
            "Hunter2!x@yz",
            ConnectionStringPassword,
        );
    }

    #[test]
    fn generic_passwords() {
        let lines = [
            "login password={s} user=alice",
            "Server=db;Uid=sa;Pwd={s};",
            "PASSWORD: {s}",
        ];
        scrubbed(&lines, "Tr0ub4dor", GenericPassword);
        let json = [r#"{"password": "{s}", "user": "alice"}"#];
        scrubbed(&json, "Tr0ub4dor and more", GenericPassword);
    }

    #[test]
    fn ordinary_text_is_borrowed_and_identical() {
        for line in [
            "GET /api/v1/users 200 12ms",
            "user=alice logged in",
            "request 550e8400-e29b-41d4-a716-446655440000 done",
            "deployed 3f786850e387550fdab836ed7e6dc881de23001b",
            "mail alice@example.com about it",
            "see https://example.com:8443/docs/index.html?q=1 and https://user@example.com/",
            "token count: 5",
            "/var/log/application/service/worker-1.log rotated",
            "",
            "caf\u{e9} \u{1F600} ok",
        ] {
            let out = r(line);
            assert!(
                matches!(out.text, Cow::Borrowed(s) if std::ptr::eq(s, line)),
                "{line:?}"
            );
            assert_eq!((out.kinds.len(), out.count), (0, 0));
        }
    }

    #[test]
    fn kinds_and_count() {
        let k = aws_key_id();
        let line =
            format!("id={k} other={k} password=abc12345 Authorization: Bearer abcdefgh12345678");
        let out = r(&line);
        assert_eq!(out.count, 4);
        assert_eq!(
            out.kinds,
            vec![AwsAccessKeyId, BearerToken, GenericPassword]
        );
        assert_eq!(
            ConnectionStringPassword.as_str(),
            "connection_string_password"
        );
        assert!(std::ptr::eq(Redactor::global(), Redactor::global()));
    }

    /// (text containing a secret, the secret itself), one arm per shape.
    fn shape() -> impl Strategy<Value = (String, String)> {
        let same = |s: String| (s.clone(), s);
        prop_oneof![
            ("(AKIA|ASIA|AROA|AGPA)", "[A-Z2-7]{16}")
                .prop_map(move |(p, s)| same(format!("{p}{s}"))),
            "[A-Za-z0-9/+]{40}".prop_map(|s| (format!("aws_secret_access_key = \"{s}\""), s)),
            "[A-Za-z0-9]{36}".prop_map(move |s| same(format!("Ab1+{s}"))),
            "[A-Za-z0-9/+]{40,160}".prop_map(|s| (format!("aws_session_token={s}"), s)),
            "[A-Za-z0-9/+]{84,140}".prop_map(move |s| same(format!("IQoJb3JpZ2luX2Vj{s}"))),
            "[A-Za-z0-9/+]{87,140}".prop_map(move |s| same(format!("FwoGZXIvYXdzE{s}"))),
            "[A-Za-z0-9._~+/-]{20,60}".prop_map(|s| (format!("Authorization: Bearer {s}"), s)),
            ("gh[pousr]", "[A-Za-z0-9]{36}").prop_map(move |(p, s)| same(format!("{p}_{s}"))),
            "[0-9]{10}-[A-Za-z0-9]{24}".prop_map(move |s| same(format!("xoxb-{s}"))),
            "[A-Za-z0-9]{24}".prop_map(move |s| same(format!("sk_live_{s}"))),
            (
                "[A-Za-z0-9_-]{10,30}",
                "[A-Za-z0-9_-]{10,30}",
                "[A-Za-z0-9_-]{20,43}"
            )
                .prop_map(move |(h, p, s)| same(format!("eyJ{h}.eyJ{p}.{s}"))),
            "[A-Za-z0-9]{8,40}".prop_map(|s| (format!("api_key={s}"), s)),
            "[A-Za-z0-9/+]{64}".prop_map(|s| (pem(&s, true), s)),
            "[A-Za-z0-9!#$%^*@]{8,20}"
                .prop_map(|s| (format!("postgres://user:{s}@db.example.com:5432/app"), s)),
            "[A-Za-z0-9!#$%]{8,20}".prop_map(|s| (format!("password={s}"), s)),
        ]
    }

    fn words() -> impl Strategy<Value = String> {
        let word = "[a-z]{1,10}|[0-9]{1,4}|GET|/api/v1|200|(user|status|region)=[a-z0-9]{1,6}";
        prop::collection::vec(word, 0..6).prop_map(|w| w.join(" "))
    }

    proptest! {
        #[test]
        fn embedded_secrets_never_survive((context, secret) in shape(), before in words(), after in words()) {
            let input = format!("{before} {context} {after}");
            let out = r(&input);
            prop_assert!(out.count >= 1);
            prop_assert!(!out.text.contains(&secret), "secret survived: {}", out.text);
            prop_assert!(out.text.starts_with(&before) && out.text.ends_with(&after), "{}", out.text);
        }

        #[test]
        fn idempotent_and_bounded((context, _) in shape(), before in words(), noise in "\\PC{0,40}") {
            let input = format!("{before} {context}{noise}");
            let out = r(&input);
            prop_assert!(out.text.len() <= input.len() + 64 * out.count);
            let again = r(&out.text);
            prop_assert_eq!(again.count, 0, "second pass changed {}", out.text);
            prop_assert_eq!(again.text.as_ref(), out.text.as_ref());
        }
    }
}
