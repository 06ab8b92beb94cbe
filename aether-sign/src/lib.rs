//! ed25519 signing and verification of `.aether` sources. Empty until the signing issue (#4) lands.
