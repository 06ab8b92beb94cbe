//! End-to-end tests of `aether keygen`, `aether sign`, `aether verify` and the strict signature mode of `aether check`, against docs/signing.md.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Map, Value};

/// Environment variables that switch signing behaviour; removed unless a test sets them.
const SIGNING_ENV: [&str; 5] = [
    "AETHERRA_PROFILE",
    "AETHERRA_SCRIPT_VERIFY_STRICT",
    "AETHERRA_SIGNING_STRICT",
    "AETHERRA_PROD_UNSAFE_ALLOW",
    "AETHER_SIGNING_KEY",
];

const SECRET_TAG: &str = "aether-ed25519-secret-v1";
const PUBLIC_TAG: &str = "aether-ed25519-public-v1";

/// A valid script with no risk findings.
const CLEAN: &str = "goal: \"clean\"\nprint(\"hello\")\n";
/// A second clean script, so trees hold distinct files.
const QUIET: &str = "goal: \"quiet\"\nlet n = 2\nprint(n)\n";
/// Calls `foo`, which does not exist: VALIDATION_ERROR (25) on line 3 of the unsigned text.
const VALIDATION_ERROR: &str = "goal: \"a validation error\"\nlet total = 1\nfoo(total)\n";
/// One `run_plugin` call on line 3: one plugin-execution finding, risk score 5.
const RISKY: &str = "goal: \"risky\"\nlet city = \"oslo\"\nrun_plugin(\"weather\", city)\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn aether(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("aether").expect("the aether binary is built");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in SIGNING_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Run in `dir` with `env` set (after the signing variables were removed).
fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = aether(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("aether starts");
    Run {
        code: out
            .status
            .code()
            .expect("aether exits by itself, not by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    run_env(dir, args, &[])
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(dir: &Path, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dirs");
    fs::write(&path, bytes).expect("write file");
    path
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn read_text(path: &Path) -> String {
    String::from_utf8(read(path)).expect("UTF-8")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The file names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn is_hex16(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A small standard-alphabet base64 decoder (with `=` padding), independent of the binary's.
fn b64decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[test]
fn the_test_base64_decoder_is_right() {
    assert_eq!(b64decode("aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(b64decode("aGVsbG8h"), Some(b"hello!".to_vec()));
    assert_eq!(b64decode("aGk="), Some(b"hi".to_vec()));
    assert_eq!(b64decode("aA=="), Some(b"h".to_vec()));
    assert_eq!(b64decode("AAAA"), Some(vec![0, 0, 0]));
    assert_eq!(b64decode("nothex"), None);
    assert_eq!(b64decode("!!!!"), None);
}

/// The first 16 hex characters of SHA-256 over `bytes`, computed by python3.
fn sha256_16(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())",
            &hex,
        ])
        .output()
        .expect("python3 is available to recompute key ids");
    assert!(out.status.success(), "python3 failed");
    let digest = String::from_utf8(out.stdout).expect("UTF-8");
    digest.trim()[..16].to_string()
}

/// A key pair made by `aether keygen` in a test directory.
struct Key {
    id: String,
    secret: PathBuf,
    public: PathBuf,
}

impl Key {
    fn secret_arg(&self) -> &str {
        self.secret.to_str().expect("UTF-8 path")
    }
}

/// `aether keygen --out OUT --name NAME` in `dir`; asserts success and returns the pair.
fn keygen(dir: &Path, out: &str, name: &str) -> Key {
    let res = run_in(dir, &["keygen", "--out", out, "--name", name]);
    assert_eq!(res.code, 0, "keygen failed:\n{}", res.stderr);
    let id = res.stdout.trim().to_string();
    assert!(is_hex16(&id), "key id: {:?}", res.stdout);
    Key {
        id,
        secret: dir.join(out).join(format!("{name}.key")),
        public: dir.join(out).join(format!("{name}.pub")),
    }
}

/// Copy a public key into the default keyring, `.aetherra/keys/trusted/`.
fn trust(dir: &Path, key: &Key) {
    let name = key.public.file_name().expect("a file name");
    let trusted = dir.join(".aetherra/keys/trusted");
    fs::create_dir_all(&trusted).expect("create keyring");
    fs::copy(&key.public, trusted.join(name)).expect("copy the public key");
}

/// A key in `.aetherra/keys/`, trusted by the default keyring.
fn trusted_key(dir: &Path) -> Key {
    let key = keygen(dir, ".aetherra/keys", "signing");
    trust(dir, &key);
    key
}

/// A key outside every keyring.
fn untrusted_key(dir: &Path) -> Key {
    keygen(dir, "other-keys", "other")
}

fn sign(dir: &Path, files: &[&str], key: &Key) -> Run {
    let mut args = vec!["sign"];
    args.extend_from_slice(files);
    args.extend_from_slice(&["--key", key.secret_arg()]);
    run_in(dir, &args)
}

fn sign_ok(dir: &Path, files: &[&str], key: &Key) {
    let res = sign(dir, files, key);
    assert_eq!(res.code, 0, "sign failed:\n{}", res.stderr);
}

/// Line 1 of a signed file, checked against `# @signature ed25519 <id> <base64 64 bytes>`;
/// returns the key id.
fn header_key_id(text: &str) -> String {
    let line = text.split('\n').next().expect("a first line");
    let line = line.strip_suffix('\r').unwrap_or(line);
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 5, "header: {line:?}");
    assert_eq!(
        &fields[..3],
        ["#", "@signature", "ed25519"],
        "header: {line:?}"
    );
    assert!(is_hex16(fields[3]), "header key id: {line:?}");
    let signature = b64decode(fields[4]).unwrap_or_else(|| panic!("not base64: {line:?}"));
    assert_eq!(signature.len(), 64, "an ed25519 signature is 64 bytes");
    fields[3].to_string()
}

/// Everything after line 1.
fn body(text: &str) -> &str {
    &text[text.find('\n').expect("a header line") + 1..]
}

fn object(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {line:?} ({other:?})"),
    }
}

fn only_status(stdout: &str) -> Map<String, Value> {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one status line, got:\n{stdout}");
    object(lines[0])
}

// ---------------------------------------------------------------------------------------------
// keygen

#[test]
fn keygen_prints_the_key_id_and_writes_exactly_two_files() {
    let dir = tempdir();
    let res = run_in(
        dir.path(),
        &["keygen", "--out", "keys", "--name", "ci-release"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let id = res.stdout.strip_suffix('\n').expect("one line on stdout");
    assert!(is_hex16(id), "stdout is a 16-hex key id: {:?}", res.stdout);

    let keys = dir.path().join("keys");
    assert_eq!(listing(&keys), ["ci-release.key", "ci-release.pub"]);
    assert_eq!(mode(&keys.join("ci-release.key")), 0o600);
    assert_eq!(mode(&keys.join("ci-release.pub")), 0o644);

    let secret = read_text(&keys.join("ci-release.key"));
    let fields: Vec<&str> = secret.split_whitespace().collect();
    assert_eq!(fields.len(), 2, "{secret:?}");
    assert_eq!(fields[0], SECRET_TAG);
    assert_eq!(b64decode(fields[1]).expect("base64 seed").len(), 32);

    let public = read_text(&keys.join("ci-release.pub"));
    let fields: Vec<&str> = public.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{public:?}");
    assert_eq!(fields[0], PUBLIC_TAG);
    let raw = b64decode(fields[1]).expect("base64 public key");
    assert_eq!(raw.len(), 32);
    assert_eq!(fields[2], id, "the .pub names the printed key id");
    assert_eq!(sha256_16(&raw), id, "key id = sha256(public key)[..16 hex]");
}

#[test]
fn keygen_defaults_to_aetherra_keys_signing() {
    let dir = tempdir();
    let res = run_in(dir.path(), &["keygen"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let keys = dir.path().join(".aetherra/keys");
    assert_eq!(listing(&keys), ["signing.key", "signing.pub"]);
    assert_eq!(mode(&keys.join("signing.key")), 0o600);
    assert_eq!(mode(&keys.join("signing.pub")), 0o644);
    let public = read_text(&keys.join("signing.pub"));
    assert_eq!(
        public.split_whitespace().nth(2),
        Some(res.stdout.trim()),
        "{public}"
    );
}

#[test]
fn keygen_never_overwrites_an_existing_secret_key() {
    let dir = tempdir();
    let first = keygen(dir.path(), "keys", "k");
    let secret_before = read(&first.secret);
    let public_before = read(&first.public);
    let res = run_in(dir.path(), &["keygen", "--out", "keys", "--name", "k"]);
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert!(res.stdout.is_empty(), "no key id printed: {}", res.stdout);
    assert!(res.stderr.contains("--force"), "{}", res.stderr);
    assert_eq!(read(&first.secret), secret_before, "the .key is untouched");
    assert_eq!(read(&first.public), public_before, "the .pub is untouched");
    assert_eq!(mode(&first.secret), 0o600);
    assert_eq!(listing(&dir.path().join("keys")), ["k.key", "k.pub"]);
}

#[test]
fn keygen_force_replaces_the_key_and_keeps_it_0600() {
    let dir = tempdir();
    let first = keygen(dir.path(), "keys", "k");
    let secret_before = read(&first.secret);
    // Even a key whose mode was loosened comes back 0600.
    set_mode(&first.secret, 0o644);
    let res = run_in(
        dir.path(),
        &["keygen", "--out", "keys", "--name", "k", "--force"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let id = res.stdout.trim();
    assert!(is_hex16(id));
    assert_ne!(id, first.id, "a new key");
    assert_ne!(read(&first.secret), secret_before, "the .key was replaced");
    assert_eq!(mode(&first.secret), 0o600);
    assert_eq!(mode(&first.public), 0o644);
    assert_eq!(
        read_text(&first.public).split_whitespace().nth(2),
        Some(id),
        "the .pub follows the new key"
    );
    assert_eq!(listing(&dir.path().join("keys")), ["k.key", "k.pub"]);
}

// ---------------------------------------------------------------------------------------------
// sign

#[test]
fn sign_inserts_a_header_and_prints_ok_per_file() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "a.aether", CLEAN);
    write(dir.path(), "flows/b.aether", QUIET);
    let res = sign(dir.path(), &["a.aether", "flows/b.aether"], &key);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        "OK signed: a.aether\nOK signed: flows/b.aether\n"
    );
    for (rel, original) in [("a.aether", CLEAN), ("flows/b.aether", QUIET)] {
        let text = read_text(&dir.path().join(rel));
        assert_eq!(header_key_id(&text), key.id, "{rel}");
        assert_eq!(body(&text), original, "{rel}: the body is unchanged");
    }
}

#[test]
fn signing_twice_changes_nothing_and_never_stacks_headers() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let path = write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let once = read(&path);
    let res = sign(dir.path(), &["x.aether"], &key);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "OK signed: x.aether\n");
    assert_eq!(read(&path), once, "signing a signed file is a no-op");
    let text = read_text(&path);
    assert_eq!(text.matches("@signature").count(), 1);

    // Re-signing with another key replaces the header instead of adding one.
    let other = untrusted_key(dir.path());
    sign_ok(dir.path(), &["x.aether"], &other);
    let text = read_text(&path);
    assert_eq!(text.matches("@signature").count(), 1, "{text}");
    assert_eq!(header_key_id(&text), other.id);
    assert_eq!(body(&text), CLEAN);
}

#[test]
fn sign_replaces_a_legacy_hmac_header() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let legacy = format!("# @signature: {}\n{CLEAN}", "ab".repeat(32));
    let path = write(dir.path(), "x.aether", &legacy);
    sign_ok(dir.path(), &["x.aether"], &key);
    let text = read_text(&path);
    assert_eq!(header_key_id(&text), key.id);
    assert_eq!(body(&text), CLEAN, "the legacy line is gone, the body kept");
    assert_eq!(text.matches("@signature").count(), 1, "{text}");
    let res = run_in(dir.path(), &["verify", "x.aether"]);
    assert_eq!(res.stdout, format!("OK x.aether (key {})\n", key.id));
}

#[test]
fn sign_keeps_an_ordinary_comment_on_line_1() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    // Starts like a header but is not one: `sign` inserts a header above it.
    let original = format!("# @signature-policy: strict\n{CLEAN}");
    let path = write(dir.path(), "x.aether", &original);
    sign_ok(dir.path(), &["x.aether"], &key);
    let text = read_text(&path);
    assert_eq!(header_key_id(&text), key.id);
    assert_eq!(body(&text), original);
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
}

#[test]
fn sign_without_a_key_is_a_usage_error() {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", CLEAN);
    let res = run_in(dir.path(), &["sign", "x.aether"]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stdout.is_empty(), "{}", res.stdout);
    assert!(res.stderr.contains("AETHER_SIGNING_KEY"), "{}", res.stderr);
    assert_eq!(read_text(&path), CLEAN, "nothing was signed");
}

#[test]
fn sign_takes_the_key_path_from_aether_signing_key() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let path = write(dir.path(), "x.aether", CLEAN);
    let res = run_env(
        dir.path(),
        &["sign", "x.aether"],
        &[("AETHER_SIGNING_KEY", key.secret_arg())],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "OK signed: x.aether\n");
    assert_eq!(header_key_id(&read_text(&path)), key.id);
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
}

#[test]
fn sign_takes_the_key_line_itself_from_aether_signing_key() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let line = read_text(&key.secret);
    let path = write(dir.path(), "x.aether", CLEAN);
    let res = run_env(
        dir.path(),
        &["sign", "x.aether"],
        &[("AETHER_SIGNING_KEY", line.trim())],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "OK signed: x.aether\n");
    assert_eq!(header_key_id(&read_text(&path)), key.id);
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
}

#[test]
fn a_missing_input_fails_but_the_other_files_are_signed() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "a.aether", CLEAN);
    write(dir.path(), "b.aether", QUIET);
    let res = sign(
        dir.path(),
        &["a.aether", "missing.aether", "b.aether"],
        &key,
    );
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert_eq!(res.stdout, "OK signed: a.aether\nOK signed: b.aether\n");
    assert!(
        res.stderr
            .lines()
            .any(|l| l.starts_with("FAIL missing.aether")),
        "{}",
        res.stderr
    );
    assert!(!dir.path().join("missing.aether").exists());
    assert_eq!(
        header_key_id(&read_text(&dir.path().join("a.aether"))),
        key.id
    );
    assert_eq!(
        header_key_id(&read_text(&dir.path().join("b.aether"))),
        key.id
    );
}

#[test]
fn signing_with_a_public_key_is_a_usage_error() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let path = write(dir.path(), "x.aether", CLEAN);
    let public = key.public.to_str().expect("UTF-8 path");
    let res = run_in(dir.path(), &["sign", "x.aether", "--key", public]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stdout.is_empty(), "{}", res.stdout);
    assert!(res.stderr.contains("public key"), "{}", res.stderr);
    assert_eq!(read_text(&path), CLEAN);
}

#[test]
fn signing_keeps_the_file_mode() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let path = write(dir.path(), "x.aether", CLEAN);
    set_mode(&path, 0o640);
    sign_ok(dir.path(), &["x.aether"], &key);
    assert_eq!(header_key_id(&read_text(&path)), key.id);
    assert_eq!(mode(&path), 0o640);
    assert_eq!(
        listing(dir.path()),
        [".aetherra", "x.aether"],
        "no temporary file is left behind"
    );
}

#[test]
fn a_crlf_file_stays_crlf_and_verifies() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let crlf = CLEAN.replace('\n', "\r\n");
    let path = write(dir.path(), "x.aether", &crlf);
    sign_ok(dir.path(), &["x.aether"], &key);
    let text = read_text(&path);
    assert_eq!(header_key_id(&text), key.id);
    assert_eq!(body(&text), crlf, "the body keeps its CRLF line endings");
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
    assert_eq!(res.stdout, format!("OK x.aether (key {})\n", key.id));
    // The same file checked out with LF endings verifies too.
    fs::write(&path, text.replace("\r\n", "\n")).expect("write");
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
}

#[test]
fn an_lf_signature_verifies_in_a_crlf_checkout() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let path = write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let crlf = read_text(&path).replace('\n', "\r\n");
    fs::write(&path, crlf).expect("write");
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
    assert_eq!(res.stdout, format!("OK x.aether (key {})\n", key.id));
}

#[test]
fn key_files_may_hold_comment_lines() {
    let dir = tempdir();
    let key = keygen(dir.path(), "keys", "commented");
    let secret = format!("# CI release key\n{}", read_text(&key.secret));
    write(dir.path(), "keys/commented.key", secret);
    let public = format!("# CI release key, public half\n{}", read_text(&key.public));
    write(dir.path(), ".aetherra/keys/trusted/commented.pub", public);
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let res = run_in(dir.path(), &["verify", "x.aether", "--strict"]);
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
    assert_eq!(res.stdout, format!("OK x.aether (key {})\n", key.id));
}

// ---------------------------------------------------------------------------------------------
// verify: results and exit codes

#[test]
fn verify_prints_ok_with_the_key_id_for_each_path_as_discovered() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    write(dir.path(), "sub/y.aether", QUIET);
    sign_ok(dir.path(), &["x.aether", "sub/y.aether"], &key);
    let res = run_in(dir.path(), &["verify", "."]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        format!(
            "OK ./sub/y.aether (key {id})\nOK ./x.aether (key {id})\n",
            id = key.id
        )
    );
    let res = run_in(dir.path(), &["verify", "x.aether", "sub", "--strict"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        format!(
            "OK x.aether (key {id})\nOK sub/y.aether (key {id})\n",
            id = key.id
        )
    );
}

/// A tree with one file per failure reason (but `revoked`) and one good file.
fn failure_tree(dir: &Path) -> (Key, Key) {
    let key = trusted_key(dir);
    let other = untrusted_key(dir);
    write(dir, "t/a_missing.aether", CLEAN);
    write(
        dir,
        "t/b_malformed.aether",
        format!("# @signature ed25519 nothex AAAA\n{CLEAN}"),
    );
    write(
        dir,
        "t/c_legacy.aether",
        format!("# @signature: {}\n{CLEAN}", "ab".repeat(32)),
    );
    write(dir, "t/d_unknown.aether", CLEAN);
    sign_ok(dir, &["t/d_unknown.aether"], &other);
    let mismatch = write(dir, "t/e_mismatch.aether", CLEAN);
    write(dir, "t/f_ok.aether", QUIET);
    sign_ok(dir, &["t/e_mismatch.aether", "t/f_ok.aether"], &key);
    // One byte changed after signing: `hello` becomes `hellp`.
    let edited = read_text(&mismatch).replacen("hello", "hellp", 1);
    fs::write(&mismatch, edited).expect("edit");
    (key, other)
}

#[test]
fn verify_names_each_failure_reason() {
    let dir = tempdir();
    let (key, _) = failure_tree(dir.path());
    let res = run_in(dir.path(), &["verify", "t"]);
    assert_eq!(res.code, 0, "without --strict failures are advisory");
    assert_eq!(
        res.stdout,
        format!(
            "FAIL t/a_missing.aether (missing)\n\
             FAIL t/b_malformed.aether (malformed)\n\
             FAIL t/c_legacy.aether (legacy-hmac)\n\
             FAIL t/d_unknown.aether (unknown-key)\n\
             FAIL t/e_mismatch.aether (mismatch)\n\
             OK t/f_ok.aether (key {})\n",
            key.id
        )
    );
}

#[test]
fn verify_strict_exits_22_on_any_failure() {
    let dir = tempdir();
    failure_tree(dir.path());
    let all = run_in(dir.path(), &["verify", "t", "--strict"]);
    assert_eq!(all.code, 22, "{}", all.stderr);
    for file in [
        "t/a_missing.aether",
        "t/b_malformed.aether",
        "t/c_legacy.aether",
        "t/d_unknown.aether",
        "t/e_mismatch.aether",
    ] {
        let res = run_in(dir.path(), &["verify", file, "--strict"]);
        assert_eq!(res.code, 22, "{file}: {}", res.stdout);
        assert!(
            res.stdout.starts_with(&format!("FAIL {file} (")),
            "{}",
            res.stdout
        );
    }
    let ok = run_in(dir.path(), &["verify", "t/f_ok.aether", "--strict"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
}

#[test]
fn a_key_revoked_by_flag_fails_with_revoked() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    write(
        dir.path(),
        "revoked.list",
        format!("# leaked on 2024-05-01\n{}  # the CI key\n", key.id),
    );
    let res = run_in(dir.path(), &["verify", ".", "--revoked", "revoked.list"]);
    assert_eq!(res.code, 0);
    assert_eq!(res.stdout, "FAIL ./x.aether (revoked)\n");
    let res = run_in(
        dir.path(),
        &["verify", ".", "--revoked", "revoked.list", "--strict"],
    );
    assert_eq!(res.code, 22);
    assert_eq!(res.stdout, "FAIL ./x.aether (revoked)\n");
    // Without the list the signature is good.
    let res = run_in(dir.path(), &["verify", ".", "--strict"]);
    assert_eq!(res.code, 0);
    assert_eq!(res.stdout, format!("OK ./x.aether (key {})\n", key.id));
}

#[test]
fn the_default_revocation_list_is_read() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    write(
        dir.path(),
        ".aetherra/keys/revoked.txt",
        format!("# revoked keys\n{}\n", key.id),
    );
    let res = run_in(dir.path(), &["verify", ".", "--strict"]);
    assert_eq!(res.code, 22);
    assert_eq!(res.stdout, "FAIL ./x.aether (revoked)\n");
}

#[test]
fn one_changed_byte_is_a_mismatch() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let path = write(dir.path(), "x.aether", QUIET);
    sign_ok(dir.path(), &["x.aether"], &key);
    let mut bytes = read(&path);
    let at = bytes.len() - 3; // the `n` of `print(n)`
    assert_eq!(bytes[at], b'n');
    bytes[at] = b'm';
    fs::write(&path, bytes).expect("write");
    let res = run_in(dir.path(), &["verify", "."]);
    assert_eq!(res.code, 0);
    assert_eq!(res.stdout, "FAIL ./x.aether (mismatch)\n");
    let res = run_in(dir.path(), &["verify", ".", "--strict"]);
    assert_eq!(res.code, 22);
}

#[test]
fn strict_mode_is_switched_on_by_the_environment() {
    let dir = tempdir();
    write(dir.path(), "x.aether", CLEAN);
    for env in [
        &[("AETHERRA_SIGNING_STRICT", "1")][..],
        &[("AETHERRA_SCRIPT_VERIFY_STRICT", "1")],
        &[("AETHERRA_PROFILE", "prod")],
    ] {
        let res = run_env(dir.path(), &["verify", "."], env);
        assert_eq!(res.code, 22, "{env:?}: {}", res.stderr);
        assert_eq!(res.stdout, "FAIL ./x.aether (missing)\n");
    }
    let res = run_env(
        dir.path(),
        &["verify", "."],
        &[
            ("AETHERRA_PROFILE", "prod"),
            ("AETHERRA_PROD_UNSAFE_ALLOW", "1"),
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "FAIL ./x.aether (missing)\n");
    let res = run_env(dir.path(), &["verify", "."], &[("AETHERRA_PROFILE", "dev")]);
    assert_eq!(res.code, 0, "{}", res.stderr);
}

#[test]
fn exclude_skips_matching_paths() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "a.aether", CLEAN);
    sign_ok(dir.path(), &["a.aether"], &key);
    write(dir.path(), "skip/b.aether", CLEAN);
    write(dir.path(), "skip/deep/c.aether", QUIET);
    write(dir.path(), "legacy.aether", QUIET);
    let res = run_in(
        dir.path(),
        &[
            "verify",
            ".",
            "--strict",
            "--exclude",
            "skip/**",
            "--exclude",
            "legacy.aether",
            "--output",
            "report.md",
        ],
    );
    assert_eq!(res.code, 0, "{}{}", res.stdout, res.stderr);
    assert_eq!(res.stdout, format!("OK ./a.aether (key {})\n", key.id));
    let report = read_text(&dir.path().join("report.md"));
    assert!(
        report.contains("- Files found: 1 (3 excluded)\n"),
        "{report}"
    );
    // Without the exclusion the unsigned files fail.
    let res = run_in(dir.path(), &["verify", ".", "--strict"]);
    assert_eq!(res.code, 22);
}

// ---------------------------------------------------------------------------------------------
// verify: the report and risk

#[test]
fn the_report_lists_files_results_risk_and_findings() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "clean.aether", CLEAN);
    sign_ok(dir.path(), &["clean.aether"], &key);
    write(dir.path(), "risky.aether", RISKY);
    let res = run_in(dir.path(), &["verify", ".", "--output", "report.md"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let report = read_text(&dir.path().join("report.md"));
    for expected in [
        "- Files found: 2 (0 excluded)\n",
        "## Signature results\n\n| Result | Count |\n|---|---|\n",
        "| FAIL (missing) | 1 |\n",
        "| OK | 1 |\n",
        &format!("| `./clean.aether` | OK | {} | 0 |\n", key.id),
        "| `./risky.aether` | FAIL (missing) | - | 5 |\n",
        "Total risk: 5\n",
        "### Top 5 riskiest\n",
        "| `./risky.aether` | 5 | 1 |\n",
        "- L3: [plugin-execution] `run_plugin(\"weather\", city)`\n",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    assert!(report.contains("Files found:"));
    assert!(report.contains("Total risk:"));
    assert!(report.contains("Top 5 riskiest"));
    assert!(report.contains("- L3: [plugin-execution] "));
}

/// The scores of the `| File | Signature | Key | Risk |` table of a report, by file.
fn risk_column(report: &str) -> Vec<(String, u32)> {
    report
        .lines()
        .skip_while(|l| !l.starts_with("| File | Signature | Key | Risk |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (
                cells[0].trim_matches('`').to_string(),
                cells[3].parse().expect("a score"),
            )
        })
        .collect()
}

#[test]
fn risk_weights_follow_the_documented_table() {
    let dir = tempdir();
    let files = [
        // plugin-execution, 5 each: two lines.
        (
            "plugin.aether",
            "goal: \"p\"\nplugins.invoke(\"a\")\nrun_plugin(\"x\")\n",
            10,
        ),
        // network, 4 each: a net capability and two URLs.
        (
            "network.aether",
            "goal: \"n\"\nrequire:\n    capabilities: [\"net.http\"]\nprint(\"ws://h\")\nprint(\"https://x\")\n",
            12,
        ),
        // file-write, 4.
        (
            "write.aether",
            "goal: \"w\"\nrequire:\n    capabilities: [\"fs.write\"]\n",
            4,
        ),
        // actuation, 3 each.
        (
            "actuate.aether",
            "goal: \"a\"\nhomeostasis.actuate(\"restart\", \"db\")\nself_heal(\"db\")\n",
            6,
        ),
        // memory-deletion, 3 each, in both spellings.
        (
            "forget.aether",
            "goal: \"m\"\nmemory.forget(\"k\")\nmemory: forget(\"j\")\n",
            6,
        ),
        // kernel-submission, 2 each.
        (
            "kernel.aether",
            "goal: \"k\"\nkernel.submit(\"w\")\ntrigger work()\n",
            4,
        ),
        // A line counts once per kind.
        (
            "twice.aether",
            "goal: \"t\"\nx = [run_plugin(\"b\"), run_plugin(\"c\")]\n",
            5,
        ),
    ];
    for (name, text, _) in files {
        write(dir.path(), name, text);
    }
    let res = run_in(dir.path(), &["verify", ".", "--output", "report.md"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let report = read_text(&dir.path().join("report.md"));
    let mut expected: Vec<(String, u32)> = files
        .iter()
        .map(|(name, _, score)| (format!("./{name}"), *score))
        .collect();
    expected.sort();
    assert_eq!(risk_column(&report), expected, "{report}");
    assert!(report.contains("Total risk: 47\n"), "{report}");
    // Only the five riskiest, highest first (ties by path).
    let top: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("### Top 5 riskiest"))
        .skip(4)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(
        top,
        [
            "| `./network.aether` | 12 | 3 |",
            "| `./plugin.aether` | 10 | 2 |",
            "| `./actuate.aether` | 6 | 2 |",
            "| `./forget.aether` | 6 | 2 |",
            "| `./twice.aether` | 5 | 1 |",
        ],
        "{report}"
    );
}

/// docs/signing.md: network risk is found from URLs in strings and from capabilities starting
/// with `net` or `http`; a log message that merely starts with those letters is neither.
#[test]
fn message_strings_are_not_network_capabilities() {
    let dir = tempdir();
    write(
        dir.path(),
        "quiet.aether",
        "goal: \"q\"\nlog(\"network looks healthy\")\nprint(\"httpd restarted\")\n",
    );
    let res = run_in(
        dir.path(),
        &["verify", ".", "--fail-on-any-risk", "--output", "report.md"],
    );
    let report = read_text(&dir.path().join("report.md"));
    assert!(report.contains("Total risk: 0\n"), "{report}");
    assert!(report.contains("No risk findings.\n"), "{report}");
    assert_eq!(res.code, 0, "{}", res.stderr);
}

#[test]
fn risk_threshold_fails_files_scoring_above_it() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "risky.aether", RISKY);
    sign_ok(dir.path(), &["risky.aether"], &key);
    let over = run_in(
        dir.path(),
        &["verify", ".", "--strict", "--risk-threshold", "4"],
    );
    assert_eq!(over.code, 1, "score 5 is above 4: {}", over.stderr);
    assert_eq!(over.stdout, format!("OK ./risky.aether (key {})\n", key.id));
    let at = run_in(
        dir.path(),
        &["verify", ".", "--strict", "--risk-threshold", "5"],
    );
    assert_eq!(at.code, 0, "score 5 is not above 5: {}", at.stderr);
}

#[test]
fn fail_on_any_risk_fails_on_any_finding() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "risky/r.aether", RISKY);
    write(dir.path(), "calm/c.aether", CLEAN);
    sign_ok(dir.path(), &["risky/r.aether", "calm/c.aether"], &key);
    let res = run_in(dir.path(), &["verify", ".", "--fail-on-any-risk"]);
    assert_eq!(res.code, 1, "{}", res.stderr);
    let res = run_in(dir.path(), &["verify", "calm", "--fail-on-any-risk"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let res = run_in(dir.path(), &["verify", "."]);
    assert_eq!(res.code, 0, "risk alone fails only when asked to");
}

#[test]
fn a_strict_signature_failure_wins_over_risk() {
    let dir = tempdir();
    write(dir.path(), "risky.aether", RISKY);
    let args = ["verify", ".", "--risk-threshold", "0", "--fail-on-any-risk"];
    assert_eq!(run_in(dir.path(), &args).code, 1, "advisory: risk decides");
    let mut strict = args.to_vec();
    strict.push("--strict");
    assert_eq!(run_in(dir.path(), &strict).code, 22);
}

#[test]
fn a_missing_keyring_directory_is_a_usage_error() {
    let dir = tempdir();
    write(dir.path(), "x.aether", CLEAN);
    let res = run_in(dir.path(), &["verify", ".", "--keyring", "no-such-dir"]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stdout.is_empty(), "{}", res.stdout);
    assert!(res.stderr.contains("no-such-dir"), "{}", res.stderr);
}

#[test]
fn a_malformed_public_key_in_the_keyring_is_a_usage_error_naming_it() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    write(
        dir.path(),
        ".aetherra/keys/trusted/broken.pub",
        format!("{PUBLIC_TAG} not-base64 0123456789abcdef\n"),
    );
    let res = run_in(dir.path(), &["verify", "."]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stdout.is_empty(), "{}", res.stdout);
    assert!(res.stderr.contains("broken.pub"), "{}", res.stderr);
    // The same through --keyring.
    let res = run_in(
        dir.path(),
        &["verify", ".", "--keyring", ".aetherra/keys/trusted"],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stderr.contains("broken.pub"), "{}", res.stderr);
}

#[test]
fn a_keyring_without_the_signer_gives_unknown_key() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let other = untrusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let ring = dir.path().join("ring");
    fs::create_dir_all(&ring).expect("mkdir");
    fs::copy(&other.public, ring.join("other.pub")).expect("copy");
    let res = run_in(dir.path(), &["verify", ".", "--keyring", "ring"]);
    assert_eq!(res.code, 0);
    assert_eq!(res.stdout, "FAIL ./x.aether (unknown-key)\n");
    let res = run_in(
        dir.path(),
        &["verify", ".", "--keyring", "ring", "--strict"],
    );
    assert_eq!(res.code, 22);
}

/// One signed clean file, one unsigned clean file, one risky file signed by an untrusted key.
#[test]
fn verify_report_snapshot() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let other = untrusted_key(dir.path());
    write(dir.path(), "flows/ok.aether", CLEAN);
    sign_ok(dir.path(), &["flows/ok.aether"], &key);
    write(dir.path(), "flows/unsigned.aether", QUIET);
    write(
        dir.path(),
        "flows/risky.aether",
        "goal: \"risky\"\n\
         let city = \"oslo\"\n\
         let forecast = run_plugin(\"weather\", city)\n\
         print(\"posting to https://hooks.example.org/weather\")\n\
         memory.forget(forecast)\n",
    );
    sign_ok(dir.path(), &["flows/risky.aether"], &other);
    let res = run_in(dir.path(), &["verify", "flows", "--output", "report.md"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let report = read_text(&dir.path().join("report.md"));
    let generated = report
        .lines()
        .find(|l| l.starts_with("- Generated: "))
        .expect("a Generated line");
    let ts = &generated["- Generated: ".len()..];
    assert!(ts.ends_with('Z'), "UTC timestamp: {ts}");
    chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {ts}"));
    let redacted = report
        .replace(generated, "- Generated: [timestamp]")
        .replace(&key.id, "[trusted-key-id]")
        .replace(&other.id, "[untrusted-key-id]");
    insta::assert_snapshot!("verify_report", redacted);
}

// ---------------------------------------------------------------------------------------------
// check --strict-signatures

#[test]
fn strict_check_refuses_an_unsigned_file_with_22() {
    let dir = tempdir();
    trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 22, "{}", res.stderr);
    let s = only_status(&res.stdout);
    assert_eq!(s["ok"], false);
    assert_eq!(s["code"], 22);
    assert_eq!(s["code_name"], "SIGNATURE_ERROR");
    assert_eq!(s["file"], "x.aether");
    assert_eq!(s["phase"], "verify");
    assert_eq!(s["line"], 1);
}

#[test]
fn strict_check_passes_a_signed_valid_file() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let s = only_status(&res.stdout);
    assert_eq!(s["ok"], true);
    assert_eq!(s["code_name"], "SUCCESS");
}

#[test]
fn strict_check_validates_after_the_signature_passes() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", VALIDATION_ERROR);
    sign_ok(dir.path(), &["x.aether"], &key);
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 25, "{}", res.stderr);
    let s = only_status(&res.stdout);
    assert_eq!(s["code_name"], "VALIDATION_ERROR");
    assert_eq!(s["phase"], "validate");
    assert_eq!(s["message"], "unknown function `foo`");
    assert_eq!(s["line"], 4, "line 3 of the script, under the header");
}

#[test]
fn strict_check_refuses_every_kind_of_bad_signature() {
    let dir = tempdir();
    failure_tree(dir.path());
    for file in [
        "t/a_missing.aether",
        "t/b_malformed.aether",
        "t/c_legacy.aether",
        "t/d_unknown.aether",
        "t/e_mismatch.aether",
    ] {
        let res = run_in(
            dir.path(),
            &["check", "--strict-signatures", file, "--json-status"],
        );
        assert_eq!(res.code, 22, "{file}: {}", res.stderr);
        let s = only_status(&res.stdout);
        assert_eq!(s["code_name"], "SIGNATURE_ERROR", "{file}");
        assert_eq!(s["phase"], "verify", "{file}");
        assert_eq!(s["line"], 1, "{file}");
    }
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "t/f_ok.aether"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
}

#[test]
fn strict_check_refuses_a_revoked_key() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    write(
        dir.path(),
        ".aetherra/keys/revoked.txt",
        format!("{}\n", key.id),
    );
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 22, "{}", res.stderr);
    let s = only_status(&res.stdout);
    assert_eq!(s["code_name"], "SIGNATURE_ERROR");
    assert!(
        s["message"].as_str().expect("message").contains("revoked"),
        "{s:?}"
    );
}

#[test]
fn strict_check_refuses_before_parsing() {
    let dir = tempdir();
    trusted_key(dir.path());
    // A parse error (exit 20 without strict signatures) in an unsigned file.
    write(
        dir.path(),
        "x.aether",
        "goal: \"broken\"\nif true\n    print(1)\n",
    );
    let plain = run_in(dir.path(), &["check", "x.aether", "--json-status"]);
    assert_eq!(plain.code, 20, "{}", plain.stderr);
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 22, "{}", res.stderr);
    let s = only_status(&res.stdout);
    assert_eq!(s["code_name"], "SIGNATURE_ERROR");
    assert_eq!(s["phase"], "verify");
}

#[test]
fn strict_check_reads_the_keyring_flag() {
    let dir = tempdir();
    let key = keygen(dir.path(), "keys", "ci");
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let ring = dir.path().join("ring");
    fs::create_dir_all(&ring).expect("mkdir");
    fs::copy(&key.public, ring.join("ci.pub")).expect("copy");
    let res = run_in(
        dir.path(),
        &[
            "check",
            "--strict-signatures",
            "x.aether",
            "--keyring",
            "ring",
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let res = run_in(
        dir.path(),
        &["check", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 22, "the default keyring does not hold the key");
    let res = run_in(
        dir.path(),
        &[
            "check",
            "--strict-signatures",
            "x.aether",
            "--keyring",
            "no-such-dir",
        ],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
}

#[test]
fn the_environment_switches_on_strict_check() {
    let dir = tempdir();
    trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    for env in [
        &[("AETHERRA_PROFILE", "prod")][..],
        &[("AETHERRA_SIGNING_STRICT", "1")],
        &[("AETHERRA_SCRIPT_VERIFY_STRICT", "1")],
    ] {
        let res = run_env(dir.path(), &["check", "x.aether", "--json-status"], env);
        assert_eq!(res.code, 22, "{env:?}: {}", res.stderr);
        let s = only_status(&res.stdout);
        assert_eq!(s["code_name"], "SIGNATURE_ERROR", "{env:?}");
        assert_eq!(s["phase"], "verify", "{env:?}");
    }
    let res = run_env(
        dir.path(),
        &["check", "x.aether", "--json-status"],
        &[
            ("AETHERRA_PROFILE", "prod"),
            ("AETHERRA_PROD_UNSAFE_ALLOW", "1"),
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    let res = run_in(dir.path(), &["check", "x.aether", "--json-status"]);
    assert_eq!(res.code, 0, "not strict by default: {}", res.stderr);
}

#[test]
fn strict_check_json_names_rule_a301() {
    let dir = tempdir();
    trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    let res = run_in(
        dir.path(),
        &[
            "check",
            "--strict-signatures",
            "x.aether",
            "--format",
            "json",
        ],
    );
    assert_eq!(res.code, 22, "{}", res.stderr);
    let report: Value = serde_json::from_str(&res.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", res.stdout));
    let files = report.as_array().expect("an array of files");
    assert_eq!(files.len(), 1);
    let diags = files[0]["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diags.len(), 1, "only the signature diagnostic: {diags:?}");
    let d = &diags[0];
    assert_eq!(d["rule"], "A301");
    assert_eq!(d["name"], "invalid-signature");
    assert_eq!(d["code"], 22);
    assert_eq!(d["code_name"], "SIGNATURE_ERROR");
    assert_eq!(d["line"], 1);
}

#[test]
fn sign_writes_through_a_symlink_and_keeps_the_link() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let target = write(dir.path(), "shared/x.aether", CLEAN);
    std::fs::create_dir_all(dir.path().join("flows")).expect("mkdir");
    std::os::unix::fs::symlink(&target, dir.path().join("flows/x.aether")).expect("symlink");
    sign_ok(dir.path(), &["flows/x.aether"], &key);
    let link = std::fs::symlink_metadata(dir.path().join("flows/x.aether")).expect("link");
    assert!(link.file_type().is_symlink(), "the link stays a link");
    assert_eq!(
        header_key_id(&read_text(&target)),
        key.id,
        "the target is signed"
    );
}

#[test]
fn verify_reports_an_unreadable_file_and_strict_fails_on_it() {
    let dir = tempdir();
    trusted_key(dir.path());
    write(dir.path(), "bad.aether", b"goal: \"x\"\n\xff\n");
    let res = run_in(dir.path(), &["verify", "bad.aether"]);
    // Advisory mode reports signature failures without failing, but a file it could not
    // read was not verified at all: IO_ERROR.
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert_eq!(res.stdout, "FAIL bad.aether (unreadable)\n");
    assert!(
        res.stderr
            .contains("error: cannot read `bad.aether`: not valid UTF-8"),
        "{}",
        res.stderr
    );
    let res = run_in(dir.path(), &["verify", "bad.aether", "--strict"]);
    assert_eq!(res.code, 22, "{}", res.stderr);
}

#[test]
fn a_revocation_list_with_a_stray_word_stops_verification() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    write(dir.path(), "rev.txt", format!("{},oops\n", key.id));
    let res = run_in(dir.path(), &["verify", "x.aether", "--revoked", "rev.txt"]);
    assert_eq!(res.code, 2, "{}{}", res.stdout, res.stderr);
    assert!(
        res.stderr.contains("`oops` is not a key id"),
        "{}",
        res.stderr
    );
    write(
        dir.path(),
        "rev.txt",
        format!("\u{feff}{},{}\n", key.id, "0".repeat(16)),
    );
    let res = run_in(dir.path(), &["verify", "x.aether", "--revoked", "rev.txt"]);
    assert_eq!(res.stdout, "FAIL x.aether (revoked)\n", "{}", res.stderr);
}

#[test]
fn sign_finishes_the_batch_when_stdout_is_closed() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let mut names = Vec::new();
    for i in 0..200 {
        write(dir.path(), &format!("f{i}.aether"), CLEAN);
        names.push(format!("f{i}.aether"));
    }
    let bin = assert_cmd::cargo::cargo_bin("aether");
    let script = format!(
        "\"{}\" sign --key \"{}\" {} | head -n 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin.display(),
        key.secret.display(),
        names.join(" ")
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .expect("bash runs");
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(status, "0", "{}", String::from_utf8_lossy(&out.stderr));
    for name in &names {
        assert!(
            read_text(&dir.path().join(name)).starts_with("# @signature ed25519 "),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------
// run --strict-signatures (issue 4: strict mode wired into `aether run`)
// ---------------------------------------------------------------------------

#[test]
fn run_strict_refuses_an_unsigned_script_before_it_runs() {
    let dir = tempdir();
    write(dir.path(), "x.aether", CLEAN);
    let res = run_in(
        dir.path(),
        &["run", "--strict-signatures", "x.aether", "--json-status"],
    );
    assert_eq!(res.code, 22, "{}", res.stderr);
    let status = only_status(&res.stdout);
    assert_eq!(status["code_name"], "SIGNATURE_ERROR");
    assert_eq!(status["phase"], "verify");
    // Nothing ran: the only stdout line is the status line.
    assert!(!res.stdout.contains("hello"), "{}", res.stdout);
}

#[test]
fn run_strict_runs_a_script_signed_by_a_trusted_key() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    let res = run_in(dir.path(), &["run", "--strict-signatures", "x.aether"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "hello\n");
}

#[test]
fn run_strict_refuses_a_tampered_or_untrusted_script() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    let other = untrusted_key(dir.path());
    write(dir.path(), "tampered.aether", CLEAN);
    sign_ok(dir.path(), &["tampered.aether"], &key);
    let signed = read_text(&dir.path().join("tampered.aether"));
    write(
        dir.path(),
        "tampered.aether",
        signed.replace("hello", "hullo"),
    );
    write(dir.path(), "stranger.aether", CLEAN);
    sign_ok(dir.path(), &["stranger.aether"], &other);
    for (file, reason) in [
        ("tampered.aether", "does not match"),
        ("stranger.aether", "not in the keyring"),
    ] {
        let res = run_in(
            dir.path(),
            &["run", "--strict-signatures", file, "--emit-error-code"],
        );
        assert_eq!(res.code, 22, "{file}: {}", res.stderr);
        assert_eq!(res.stdout, "", "{file} must not run");
        assert!(
            res.stderr.contains("AETHER_ERROR_CODE:22"),
            "{}",
            res.stderr
        );
        assert!(
            res.stderr.to_lowercase().contains(reason),
            "{file}: {}",
            res.stderr
        );
    }
}

#[test]
fn run_is_strict_under_the_environment_and_profile_prod() {
    let dir = tempdir();
    write(dir.path(), "x.aether", CLEAN);
    for env in [
        &[("AETHERRA_SCRIPT_VERIFY_STRICT", "1")][..],
        &[("AETHERRA_SIGNING_STRICT", "1")][..],
        &[("AETHERRA_PROFILE", "prod")][..],
    ] {
        let res = run_env(dir.path(), &["run", "x.aether"], env);
        assert_eq!(res.code, 22, "{env:?}: {}", res.stderr);
        assert_eq!(res.stdout, "", "{env:?}");
    }
    let res = run_in(dir.path(), &["run", "--profile", "prod", "x.aether"]);
    assert_eq!(res.code, 22, "--profile prod: {}", res.stderr);
    // The escape hatch, and the default profile, run unsigned scripts.
    let res = run_env(
        dir.path(),
        &["run", "x.aether"],
        &[
            ("AETHERRA_PROFILE", "prod"),
            ("AETHERRA_PROD_UNSAFE_ALLOW", "1"),
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "hello\n");
    let res = run_in(dir.path(), &["run", "x.aether"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
}

#[test]
fn run_strict_honours_revocations() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write(dir.path(), "x.aether", CLEAN);
    sign_ok(dir.path(), &["x.aether"], &key);
    write(
        dir.path(),
        ".aetherra/keys/revoked.txt",
        format!("{}\n", key.id),
    );
    let res = run_in(dir.path(), &["run", "--strict-signatures", "x.aether"]);
    assert_eq!(res.code, 22, "{}", res.stderr);
    assert!(res.stderr.contains("revoked"), "{}", res.stderr);
}

// ---------------------------------------------------------------------------
// plugin manifests: detached signatures, required in strict mode
// ---------------------------------------------------------------------------

const PLUGIN_SCRIPT: &str = "goal: \"plugin\"\nrequire:\n    capabilities: [\"plugins.invoke\"]\nprint(run_plugin(\"one\"))\n";

fn write_plugin(dir: &Path) {
    write(
        dir,
        "plugins/one/plugin.json",
        r#"{"name": "one", "version": "1.0.0", "command": ["sh", "./p.sh"]}"#,
    );
    write(
        dir,
        "plugins/one/p.sh",
        "read line\necho '{\"ok\": true, \"result\": 1}'\n",
    );
}

/// `aether plugins pin plugins/one`: pins its `p.sh` in its manifest.
fn pin_ok(dir: &Path) {
    let res = run_in(dir, &["plugins", "pin", "plugins/one"]);
    assert_eq!(res.code, 0, "pin failed:\n{}", res.stderr);
    assert!(res.stdout.contains("pinned p.sh sha256:"), "{}", res.stdout);
}

#[test]
fn signing_a_manifest_writes_a_detached_signature() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write_plugin(dir.path());
    sign_ok(dir.path(), &["plugins/one/plugin.json"], &key);
    let sig = read_text(&dir.path().join("plugins/one/plugin.json.sig"));
    assert_eq!(header_key_id(&sig), key.id);
    // The manifest itself is untouched (JSON has no comments).
    assert!(read_text(&dir.path().join("plugins/one/plugin.json")).starts_with('{'));
}

#[test]
fn strict_runs_load_only_plugins_with_a_valid_manifest_signature() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write_plugin(dir.path());
    write(dir.path(), "x.aether", PLUGIN_SCRIPT);
    sign_ok(dir.path(), &["x.aether"], &key);
    // Unsigned manifest: the plugin is not loaded, with a warning saying why.
    let res = run_in(dir.path(), &["run", "--strict-signatures", "x.aether"]);
    assert_eq!(res.code, 21, "{}", res.stderr);
    assert!(
        res.stderr
            .contains("plugin `one` is not loaded: its manifest is not signed"),
        "{}",
        res.stderr
    );
    // Signed (and pinning its script): it runs.
    pin_ok(dir.path());
    sign_ok(dir.path(), &["plugins/one/plugin.json"], &key);
    let res = run_in(dir.path(), &["run", "--strict-signatures", "x.aether"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "1\n");
    // A manifest changed after signing is refused again.
    write(
        dir.path(),
        "plugins/one/plugin.json",
        r#"{"name": "one", "version": "1.0.1", "command": ["sh", "./p.sh"]}"#,
    );
    let res = run_in(dir.path(), &["run", "--strict-signatures", "x.aether"]);
    assert_eq!(res.code, 21, "{}", res.stderr);
    assert!(res.stderr.contains("manifest signature"), "{}", res.stderr);
    // Outside strict mode signatures are not needed.
    let res = run_in(dir.path(), &["run", "x.aether"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
}

#[test]
fn strict_classify_runs_only_plugins_with_a_signed_manifest_too() {
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write_plugin(dir.path());
    write(dir.path(), "x.aether", PLUGIN_SCRIPT);
    sign_ok(dir.path(), &["x.aether"], &key);
    let classify = |dir: &Path| {
        let res = run_in(
            dir,
            &[
                "classify",
                ".",
                "--strict-signatures",
                "--no-history",
                "--output",
                "-",
                "--markdown",
                "/dev/null",
            ],
        );
        assert_eq!(res.code, 0, "{}", res.stderr);
        let doc: serde_json::Value = serde_json::from_str(&res.stdout).expect("JSON report");
        doc["workflows"][0].clone()
    };
    // Unsigned manifest: the plugin is not loaded, exactly as `aether run` refuses it.
    let r = classify(dir.path());
    assert_eq!(r["path"], "x.aether");
    assert_eq!(r["code_name"], "RUNTIME_ERROR", "{r}");
    assert_eq!(r["signature_verified"], true);
    pin_ok(dir.path());
    sign_ok(dir.path(), &["plugins/one/plugin.json"], &key);
    assert_eq!(classify(dir.path())["code_name"], "SUCCESS");
}

#[test]
fn prod_runs_only_plugins_whose_signed_manifest_pins_the_files_they_run() {
    // Before the fix, replacing the signed plugin's p.sh still ran in --profile prod.
    let dir = tempdir();
    let key = trusted_key(dir.path());
    write_plugin(dir.path());
    // The plugin changes its own script when it runs: the second start must be refused.
    write(
        dir.path(),
        "plugins/one/p.sh",
        "read line\necho '# changed' >> p.sh\necho '{\"ok\": true, \"result\": 1}'\n",
    );
    write(
        dir.path(),
        "x.aether",
        "goal: \"plugin\"\nrequire:\n    capabilities: [\"plugins.invoke\"]\nprint(run_plugin(\"one\"))\nprint(run_plugin(\"one\"))\n",
    );
    sign_ok(dir.path(), &["x.aether"], &key);
    let prod = ["run", "--profile", "prod", "x.aether"];
    // Signed, but pinning nothing: not loaded.
    sign_ok(dir.path(), &["plugins/one/plugin.json"], &key);
    let res = run_in(dir.path(), &prod);
    assert_eq!(res.code, 21, "{}", res.stderr);
    assert!(
        res.stderr
            .contains("plugin `one` is not loaded: its manifest pins no file"),
        "{}",
        res.stderr
    );
    // Pinned, but the pins not signed: the signature no longer matches.
    pin_ok(dir.path());
    let res = run_in(dir.path(), &prod);
    assert_eq!(res.code, 21, "{}", res.stderr);
    assert!(res.stderr.contains("manifest signature"), "{}", res.stderr);
    // Pinned and signed: the first start runs, the second finds p.sh changed.
    let manifest = read_text(&dir.path().join("plugins/one/plugin.json"));
    assert!(manifest.contains("\"pins\""), "{manifest}");
    sign_ok(dir.path(), &["plugins/one/plugin.json"], &key);
    let pinned = manifest
        .split("sha256:")
        .nth(1)
        .map(|rest| rest[..64].to_string())
        .expect("a digest");
    let res = run_in(dir.path(), &prod);
    assert_eq!(res.code, 21, "{}", res.stderr);
    assert_eq!(res.stdout, "1\n");
    assert!(
        res.stderr.contains(&format!(
            "its file p.sh does not match the manifest's pin: expected sha256:{pinned}, found sha256:"
        )),
        "{}",
        res.stderr
    );
    // Outside prod an unpinned plugin still runs; a pin that exists is checked everywhere.
    let res = run_in(dir.path(), &["run", "x.aether"]);
    assert_eq!(res.code, 21, "{}", res.stderr);
    assert!(
        res.stderr.contains("does not match the manifest's pin"),
        "{}",
        res.stderr
    );
}
