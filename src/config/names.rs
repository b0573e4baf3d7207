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

name_type!(
    /// An AWS region name such as `us-east-1` (GovCloud and ISO regions included).
    Region,
    |s| {
        static RE: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$").expect("region regex")
        });
        if RE.is_match(s) {
            Ok(())
        } else {
            Err(format!(
                "region `{s}` is not an AWS region name such as \"us-east-1\""
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
    }
}
