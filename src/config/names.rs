//! The names a configuration holds, each checked in one place: the policy validator and the
//! command line (`airlock init`'s flags and questions) parse them with the same `FromStr`, so a
//! value one accepts the other accepts too, with the same words when it is wrong.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether `s` would parse.
            pub fn is_valid(s: &str) -> bool {
                s.parse::<Self>().is_ok()
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(s).map(|()| Self(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A 12-digit AWS account id.
    AccountId,
    |s| {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("account `{s}` must be the 12-digit AWS account id"))
        }
    }
);

/// The AWS regions airlock knows (commercial, China, GovCloud, ISO). A name of the right shape
/// that is not here is refused with the nearest known name: `us-wst-2` is a typo, and a typo in
/// a region sends every call to the wrong place.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-isoe-west-1",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "us-west-1",
    "us-west-2",
];

/// The known region nearest to `s` (fewest single-character edits).
pub fn nearest_region(s: &str) -> &'static str {
    KNOWN_REGIONS
        .iter()
        .copied()
        .min_by_key(|r| edit_distance(s, r))
        .unwrap_or("us-east-1")
}

/// Levenshtein distance over bytes (region names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

name_type!(
    /// An AWS region airlock knows, such as `us-east-1` ([`KNOWN_REGIONS`]).
    Region,
    |s| {
        if KNOWN_REGIONS.contains(&s) {
            return Ok(());
        }
        static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$").expect("region regex")
        });
        let near = nearest_region(s);
        if SHAPE.is_match(s) {
            Err(format!(
                "region `{s}` is not an AWS region airlock knows; did you mean \"{near}\"?"
            ))
        } else {
            Err(format!(
                "region `{s}` is not an AWS region name such as \"us-east-1\" (nearest: \"{near}\")"
            ))
        }
    }
);

name_type!(
    /// An S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and
    /// ending with a letter or digit.
    BucketName,
    |s| {
        let ok = (3..=63).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{s}` is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)"
            ))
        }
    }
);

name_type!(
    /// An environment's name in the policy: 1-32 letters, digits, `-` or `_`.
    EnvName,
    |s| {
        if !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Ok(())
        } else {
            Err(format!(
                "environment name `{s}` must be 1-32 letters, digits, `-` or `_`"
            ))
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_accepts_its_shape_and_says_what_is_wrong() {
        assert!(AccountId::is_valid("123456789012"));
        assert!(!AccountId::is_valid("12345678901"));
        assert!(!AccountId::is_valid("12345678901x"));
        for r in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "us-isob-east-1",
        ] {
            assert!(Region::is_valid(r), "{r}");
        }
        for r in ["us-east", "US-EAST-1", "useast1", ""] {
            assert!(!Region::is_valid(r), "{r}");
        }
        assert!(BucketName::is_valid("team-log-exports"));
        assert!(!BucketName::is_valid("Team"));
        assert!(!BucketName::is_valid("-ab"));
        assert!(EnvName::is_valid("staging_2"));
        assert!(!EnvName::is_valid("a b"));
        let e = "us-east".parse::<Region>().unwrap_err();
        assert!(e.contains("is not an AWS region name"), "{e}");
        let e = "us-wst-2".parse::<Region>().unwrap_err();
        assert!(e.contains("did you mean \"us-west-2\""), "{e}");
        assert_eq!(nearest_region("eu-centrl-1"), "eu-central-1");
    }
}
