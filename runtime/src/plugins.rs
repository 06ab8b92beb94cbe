//! Plugins: external commands that speak one JSON request and one JSON response over
//! stdin/stdout (being written; see docs/plugins.md when it lands).
