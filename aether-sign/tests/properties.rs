//! Property tests of the public API: nothing panics, signing round-trips, garbage never verifies.

use aether_sign::{
    normalise, parse_public_key, parse_secret_key, sign, split_header, verify, Header, Keyring,
    Revocations, SecretKey, SigningKeyPair, Verification,
};
use proptest::prelude::*;

fn pair(seed: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(SecretKey::from_seed(&[seed; 32]))
}

fn keyring(pair: &SigningKeyPair) -> Keyring {
    let (ring, errors) = Keyring::from_public_keys([("a.pub", pair.public_file_text())]);
    assert!(errors.is_empty());
    ring
}

/// Text that often looks like a header: a `# @signature`-ish first line, then a body.
fn headerish() -> impl Strategy<Value = String> {
    let first = prop_oneof![
        Just(String::new()),
        Just("# @signature".to_string()),
        Just("# @signature:".to_string()),
        Just("# @signature ed25519".to_string()),
        Just(format!("# @signature ed25519 {}", pair(1).key_id())),
        Just("\u{FEFF}# @signature".to_string()),
    ];
    (first, "[ -~\t\r\u{FEFF}é]{0,120}", "[ -~\t\r\n→]{0,200}")
        .prop_map(|(first, rest, body)| format!("{first}{rest}\n{body}"))
}

proptest! {
    // No failure persistence (as in tests/fuzz.rs): a failure prints its input.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn verify_and_split_header_never_panic(source in any::<String>()) {
        let a = pair(1);
        let header = split_header(&source);
        prop_assert!(header.body_start() <= source.len());
        prop_assert!(source.is_char_boundary(header.body_start()));
        let outcome = verify(&source, &keyring(&a), &Revocations::parse(&source));
        prop_assert!(!outcome.is_ok());
    }

    #[test]
    fn header_like_garbage_never_verifies(source in headerish()) {
        let a = pair(1);
        let header = split_header(&source);
        prop_assert!(source.is_char_boundary(header.body_start()));
        let outcome = verify(&source, &keyring(&a), &Revocations::default());
        prop_assert!(!outcome.is_ok(), "{:?}", outcome);
        prop_assert!(matches!(
            outcome,
            Verification::Failed(_)
        ));
    }

    #[test]
    fn a_random_signature_under_a_trusted_id_never_verifies(
        signature in proptest::collection::vec(any::<u8>(), 64),
        body in "[ -~\n]{0,200}",
    ) {
        use base64::Engine as _;
        let a = pair(1);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&signature);
        let source = format!("# @signature ed25519 {} {b64}\n{body}", a.key_id());
        prop_assert!(matches!(split_header(&source), Header::Ed25519 { .. }), "well formed");
        prop_assert_eq!(verify(&source, &keyring(&a), &Revocations::default()).reason(), "mismatch");
    }

    #[test]
    fn signing_round_trips_keeps_the_body_and_is_idempotent(source in any::<String>()) {
        let a = pair(1);
        let ring = keyring(&a);
        let signed = sign(&source, a.secret());
        prop_assert!(verify(&signed, &ring, &Revocations::default()).is_ok());
        prop_assert_eq!(sign(&signed, a.secret()), signed.clone());
        let header = split_header(&signed);
        prop_assert!(matches!(header, Header::Ed25519 { .. }), "one ed25519 header");
        let body = &signed[header.body_start()..];
        prop_assert!(source.ends_with(body), "the body is a suffix of the input");
        // Headers never stack (a second byte order mark shields a line from being a header).
        let bom = '\u{FEFF}';
        prop_assert!(split_header(body) == Header::None || body.starts_with(bom), "stacked");
    }

    #[test]
    fn lf_and_crlf_copies_verify_alike(body in "[ -~\t\n→é]{0,200}") {
        let a = pair(1);
        let ring = keyring(&a);
        let signed = sign(&body, a.secret());
        let crlf = signed.replace('\n', "\r\n");
        prop_assert!(verify(&crlf, &ring, &Revocations::default()).is_ok());
        if body.contains('\n') {
            // The header's line ending follows the body's first line ending.
            prop_assert_eq!(sign(&body.replace('\n', "\r\n"), a.secret()), crlf.clone());
        }
        prop_assert_eq!(normalise(&crlf), signed);
    }

    #[test]
    fn key_and_revocation_parsers_never_panic(text in any::<String>(), tagged in "aether-ed25519-(secret|public)-v1[ -~\t]{0,100}") {
        let _ = parse_secret_key(&text);
        let _ = parse_public_key(&text);
        let _ = parse_secret_key(&tagged);
        let _ = parse_public_key(&tagged);
        let (_, errors) = Keyring::from_public_keys([("x.pub", &text), ("y.pub", &tagged)]);
        prop_assert!(errors.len() <= 2);
        let list = Revocations::parse(&text);
        prop_assert!(list.ids().all(|id| !id.starts_with('#') && !id.is_empty()));
    }
}

#[test]
fn generated_keys_round_trip_through_their_files() {
    let generated = SigningKeyPair::generate().expect("randomness");
    let secret = parse_secret_key(&generated.secret_file_text()).expect("secret");
    let public = parse_public_key(&generated.public_file_text()).expect("public");
    assert_eq!(secret.key_id(), public.key_id());
    let (ring, errors) = Keyring::from_public_keys([("g.pub", generated.public_file_text())]);
    assert!(errors.is_empty());
    let signed = sign("goal: \"g\"\n", &secret);
    assert_eq!(
        verify(&signed, &ring, &Revocations::default()),
        Verification::Ok {
            key_id: generated.key_id()
        }
    );
}
