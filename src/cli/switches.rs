//! The environment switches of `aether`, parsed in one place: case-insensitive, and a value not understood is a usage error, never a silent "off".

use clap::ValueEnum;

/// How strictly a run is held to its declarations (`--profile`, `AETHERRA_PROFILE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Profile {
    /// Relaxed: capabilities are not enforced.
    Dev,
    /// Capabilities enforced.
    Test,
    /// Capabilities enforced and signatures required (unless AETHERRA_PROD_UNSAFE_ALLOW=1).
    Prod,
}

/// The values a switch understands (after trimming, case-insensitively); anything else is
/// an error naming the variable. An empty value counts as unset.
const ON: [&str; 4] = ["1", "true", "yes", "on"];
const OFF: [&str; 4] = ["0", "false", "no", "off"];

/// Every switch read from the environment, for `check`, `run`, `verify` and `classify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Switches {
    /// `AETHERRA_SIGNING_STRICT` or `AETHERRA_SCRIPT_VERIFY_STRICT`.
    pub(crate) signing_strict: bool,
    /// `AETHERRA_PROFILE`: `dev`, `test` or `prod`; unset or empty is `None`.
    pub(crate) profile: Option<Profile>,
    /// `AETHERRA_PROD_UNSAFE_ALLOW`: profile prod without required signatures.
    pub(crate) prod_unsafe_allow: bool,
    /// `AETHERRA_REQUIRE_CAPABILITIES`: enforce capabilities in profile dev too.
    pub(crate) require_capabilities: bool,
    /// `AETHERRA_NET_STRICT`: the network allowlist applies in profile dev too.
    pub(crate) net_strict: bool,
    /// `AETHERRA_QUIET`: no warnings, no `log` output.
    pub(crate) quiet: bool,
}

impl Switches {
    /// Read every switch from the process environment.
    pub(crate) fn from_env() -> Result<Switches, String> {
        Switches::from_vars(|name| std::env::var_os(name))
    }

    /// Read every switch through `get` (the environment, or a test's table).
    pub(crate) fn from_vars(
        get: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Switches, String> {
        let flag = |name: &str| match get(name) {
            None => Ok(false),
            Some(v) => parse_flag(name, &v),
        };
        Ok(Switches {
            signing_strict: flag("AETHERRA_SIGNING_STRICT")?
                | flag("AETHERRA_SCRIPT_VERIFY_STRICT")?,
            profile: match get("AETHERRA_PROFILE") {
                None => None,
                Some(v) => parse_profile(&v)?,
            },
            prod_unsafe_allow: flag("AETHERRA_PROD_UNSAFE_ALLOW")?,
            require_capabilities: flag("AETHERRA_REQUIRE_CAPABILITIES")?,
            net_strict: flag("AETHERRA_NET_STRICT")?,
            quiet: flag("AETHERRA_QUIET")?,
        })
    }

    /// Whether strict signature mode is on from the environment: a strict switch, or
    /// profile prod without the unsafe escape hatch (docs/contract/LANGUAGE.md section 9).
    pub(crate) fn strict_signatures(&self, profile: Option<Profile>) -> bool {
        self.signing_strict || (profile == Some(Profile::Prod) && !self.prod_unsafe_allow)
    }
}

/// A value as shown in an error message: escaped, and cut when long.
fn shown(value: &std::ffi::OsStr) -> String {
    let text = value.to_string_lossy();
    let cut: String = text.chars().take(40).collect();
    let mut out: String = cut.escape_debug().collect();
    if cut.len() < text.len() {
        out.push('…');
    }
    out
}

/// A boolean switch: 1/true/yes/on, 0/false/no/off (any case), empty for unset.
pub(crate) fn parse_flag(name: &str, value: &std::ffi::OsStr) -> Result<bool, String> {
    let v = value.to_str().map(|v| v.trim().to_ascii_lowercase());
    match v.as_deref() {
        Some("") => Ok(false),
        Some(v) if ON.contains(&v) => Ok(true),
        Some(v) if OFF.contains(&v) => Ok(false),
        _ => Err(format!(
            "{name} is `{}`: use 1, true, yes or on to turn it on, and 0, false, no, off or empty to turn it off",
            shown(value)
        )),
    }
}

/// `AETHERRA_PROFILE`: dev, test or prod (any case); empty is unset. `production` and other
/// spellings are errors, so that `check` and `run` can never read one setting two ways.
pub(crate) fn parse_profile(value: &std::ffi::OsStr) -> Result<Option<Profile>, String> {
    let v = value.to_str().map(|v| v.trim().to_ascii_lowercase());
    match v.as_deref() {
        Some("") => Ok(None),
        Some("dev") => Ok(Some(Profile::Dev)),
        Some("test") => Ok(Some(Profile::Test)),
        Some("prod") => Ok(Some(Profile::Prod)),
        _ => Err(format!(
            "AETHERRA_PROFILE is `{}`: use dev, test or prod",
            shown(value)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn vars(pairs: &[(&str, &str)]) -> Result<Switches, String> {
        let pairs: Vec<(String, OsString)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Switches::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn every_spelling_of_on_and_off_is_understood_in_any_case() {
        for v in ["1", "true", "TRUE", "True", "yes", "Yes", "ON", " on "] {
            let s = vars(&[("AETHERRA_SIGNING_STRICT", v)]).expect(v);
            assert!(s.signing_strict, "{v}");
        }
        for v in ["0", "false", "FALSE", "no", "No", "off", "OFF", "", "  "] {
            let s = vars(&[("AETHERRA_SIGNING_STRICT", v)]).expect(v);
            assert!(!s.signing_strict, "{v}");
        }
    }

    #[test]
    fn a_value_not_understood_is_an_error_naming_the_variable() {
        for name in [
            "AETHERRA_SIGNING_STRICT",
            "AETHERRA_SCRIPT_VERIFY_STRICT",
            "AETHERRA_PROD_UNSAFE_ALLOW",
            "AETHERRA_REQUIRE_CAPABILITIES",
            "AETHERRA_NET_STRICT",
            "AETHERRA_QUIET",
        ] {
            for v in ["2", "enabled", "y", "t", "onn", "-1", "true!"] {
                let e = vars(&[(name, v)]).expect_err(v);
                assert!(e.starts_with(&format!("{name} is `{v}`")), "{e}");
            }
        }
    }

    #[test]
    fn profiles_parse_in_any_case_and_production_is_refused() {
        assert_eq!(vars(&[]).expect("unset").profile, None);
        assert_eq!(
            vars(&[("AETHERRA_PROFILE", "")]).expect("empty").profile,
            None
        );
        assert_eq!(
            vars(&[("AETHERRA_PROFILE", " PROD ")])
                .expect("prod")
                .profile,
            Some(Profile::Prod)
        );
        assert_eq!(
            vars(&[("AETHERRA_PROFILE", "Test")]).expect("test").profile,
            Some(Profile::Test)
        );
        for v in ["production", "staging", "prd", "1"] {
            let e = vars(&[("AETHERRA_PROFILE", v)]).expect_err(v);
            assert_eq!(
                e,
                format!("AETHERRA_PROFILE is `{v}`: use dev, test or prod")
            );
        }
    }

    #[test]
    fn prod_makes_signatures_strict_unless_the_escape_hatch_is_set() {
        let s = vars(&[("AETHERRA_PROFILE", "prod")]).expect("prod");
        assert!(s.strict_signatures(s.profile));
        assert!(!s.strict_signatures(Some(Profile::Dev)));
        let s = vars(&[
            ("AETHERRA_PROFILE", "prod"),
            ("AETHERRA_PROD_UNSAFE_ALLOW", "YES"),
        ])
        .expect("escape hatch");
        assert!(!s.strict_signatures(s.profile));
    }

    #[test]
    fn long_or_odd_values_are_shown_escaped_and_cut() {
        let long = "x".repeat(100);
        let e = vars(&[("AETHERRA_QUIET", &long)]).expect_err("long");
        assert!(e.contains(&format!("`{}…`", "x".repeat(40))), "{e}");
        let e = vars(&[("AETHERRA_QUIET", "a\u{1b}[31m")]).expect_err("escape");
        assert!(e.contains("a\\u{1b}[31m"), "{e}");
    }
}
