//! The redactor: a secret of a known shape, built at run time from the fuzz bytes and embedded
//! between separators in arbitrary text, never survives (its copies in the output are no more
//! than the copies the surrounding text itself carries); the output grows by at most 64 bytes
//! per marker; text with nothing found comes back borrowed and identical.
//!
//! Input layout: byte 0 picks the shape (or none), bytes 1-2 the separators around it, byte 3
//! where in the text it goes, the next 64 bytes are the secret's material, the rest the text.
#![no_main]

use std::borrow::Cow;

use airlock::redact::Redactor;
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 4;
const MATERIAL: usize = 64;

const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
const URL_TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
const JWT: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const PASSWORD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%";
const URL_PASSWORD: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%^*@";
const SLACK: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
/// Separators around the embedded secret: none of them joins a word or a base64 run.
const SEPARATORS: &[u8] = b" \n\t,;\"'()<>|";
const KEY_ID_PREFIXES: &[&str] = &[
    "AKIA", "ASIA", "ABIA", "ACCA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "AGPA",
];
const SHAPES: u8 = 14;

/// `n` characters of `set`, chosen by the material bytes from `from` on.
fn take(m: &[u8], from: usize, n: usize, set: &[u8]) -> String {
    (0..n)
        .map(|i| set[m[(from + i) % m.len()] as usize % set.len()] as char)
        .collect()
}

/// (text to embed, the secret inside it) for shape `k`.
fn shape(k: u8, m: &[u8]) -> (String, String) {
    let len = |lo: usize, hi: usize| lo + m[0] as usize % (hi - lo + 1);
    let same = |s: String| (s.clone(), s);
    match k {
        0 => same(format!(
            "{}{}",
            KEY_ID_PREFIXES[m[1] as usize % KEY_ID_PREFIXES.len()],
            take(m, 2, 16, UPPER32)
        )),
        1 => {
            let s = take(m, 1, 40, B64);
            let ctx = match m[0] % 4 {
                0 => format!("aws_secret_access_key={s}"),
                1 => format!("\"SecretAccessKey\": \"{s}\""),
                2 => format!("AWS_SECRET: '{s}'"),
                _ => format!("secret = {s}"),
            };
            (ctx, s)
        }
        2 => {
            let s = take(m, 1, len(40, 63), B64);
            (format!("aws_session_token={s}"), s)
        }
        3 => same(format!("IQoJb3JpZ2luX2Vj{}", take(m, 1, len(84, 120), B64))),
        4 => same(format!("FwoGZXIvYXdzE{}", take(m, 1, len(87, 120), B64))),
        5 => same(format!(
            "gh{}_{}",
            ["p", "o", "u", "s", "r"][m[1] as usize % 5],
            take(m, 2, 36, ALNUM)
        )),
        6 => same(format!("xoxb-{}", take(m, 1, len(10, 40), SLACK))),
        7 => same(format!("sk_live_{}", take(m, 1, len(16, 40), ALNUM))),
        8 => {
            let s = take(m, 1, len(20, 60), URL_TOKEN);
            (format!("Authorization: Bearer {s}"), s)
        }
        9 => {
            let s = take(m, 1, len(8, 20), PASSWORD);
            (format!("password={s}"), s)
        }
        10 => {
            let s = take(m, 1, len(8, 20), URL_PASSWORD);
            (format!("postgres://user:{s}@db.example.com:5432/app"), s)
        }
        11 => same(format!(
            "eyJ{}.eyJ{}.{}",
            take(m, 1, 12, JWT),
            take(m, 13, 12, JWT),
            take(m, 25, len(20, 40), JWT)
        )),
        12 => {
            let d = "-".repeat(5);
            let s = take(m, 1, 64, B64);
            (
                format!("{d}BEGIN RSA PRIVATE KEY{d}\n{s}\n{d}END RSA PRIVATE KEY{d}"),
                s,
            )
        }
        _ => {
            // A bare secret access key: 40 base64 characters with mixed case, a digit and `+`.
            same(format!("Ab1+{}", take(m, 1, 36, ALNUM)))
        }
    }
}

fn count(hay: &str, needle: &str) -> usize {
    hay.match_indices(needle).count()
}

fuzz_target!(|data: &[u8]| {
    let r = Redactor::global();
    if data.len() < HEADER + MATERIAL {
        let text = String::from_utf8_lossy(data);
        check_bounds(r, &text);
        return;
    }
    let (header, rest) = data.split_at(HEADER);
    let (material, text) = rest.split_at(MATERIAL);
    let text = String::from_utf8_lossy(text);
    let k = header[0] % (SHAPES + 1);
    if k == SHAPES {
        check_bounds(r, &text);
        return;
    }
    let (context, secret) = shape(k, material);
    let mut at = (header[3] as usize * text.len()) / 255;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let (before, after) = text.split_at(at);
    let sep = |b: u8| SEPARATORS[b as usize % SEPARATORS.len()] as char;
    let input = format!(
        "{before}{}{context}{}{after}",
        sep(header[1]),
        sep(header[2])
    );
    let (out, markers) = check_bounds(r, &input);
    assert!(markers >= 1, "nothing redacted in {input:?}");
    // The redactor only removes text and writes markers (which hold no secret), so any copy
    // left must come from the surrounding text, never the embedded one.
    let left = count(&out, &secret);
    assert!(
        left <= count(before, &secret) + count(after, &secret),
        "secret survived redaction:\n input: {input:?}\noutput: {out:?}"
    );
});

/// Bounds that hold for any text; returns the redacted text and the number of markers.
fn check_bounds(r: &Redactor, input: &str) -> (String, usize) {
    let out = r.redact(input);
    assert!(
        out.text.len() <= input.len() + 64 * out.count,
        "output grew by more than 64 bytes per marker"
    );
    assert_eq!(out.count == 0, out.kinds.is_empty());
    if out.count == 0 {
        assert!(matches!(out.text, Cow::Borrowed(s) if std::ptr::eq(s, input)));
    }
    (out.text.into_owned(), out.count)
}
