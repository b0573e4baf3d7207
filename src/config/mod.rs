//! Configuration files and the names in them: where an error is ([`source`]: every error reads
//! `FILE:LINE:COL: what to change`) and the names both the policy and the command line check
//! ([`names`]). The lowest layer: it depends on nothing else in airlock. The one loader that
//! reads policy.toml with its catalogue is [`crate::policy::load`].

pub mod names;
pub mod source;
