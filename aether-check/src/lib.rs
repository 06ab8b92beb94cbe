//! Semantic validation of `.aether` scripts: name resolution, rules, the rule registry and fingerprints.

pub mod decl;
