//! The documentation against the code. Every error id in `src/` is listed in docs/errors.md,
//! and every id listed there is still in `src/`; the error bodies shown there are byte for byte
//! what the server sends; the configuration table in README.md names every flag with its
//! variable and default; links between README.md and docs/ resolve, anchors included. And what
//! the docs say about the first start: the SQLite database file is private, a second start on
//! an in-memory database says what to do about the admin key file, and the first signing key
//! is logged as created, not rotated.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::helpers::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals of Rust source, each with the source text before it. Comments, char
/// literals, lifetimes, raw and byte strings are read as such, so a quote inside one of them
/// does not start a string.
fn string_literals(src: &str) -> Vec<(String, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    i += 3;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + len) == Some(&b'\'') {
                        i += len + 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && starts_token(b, i) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = src[start..].find(&close).map_or(b.len(), |n| start + n);
                out.push((src[start..end].to_owned(), i));
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push((src[start..j.min(b.len())].to_owned(), i));
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether `b[i]` starts a token (`r"…"`, `br"…"`), not the end of an identifier.
fn starts_token(b: &[u8], i: usize) -> bool {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match i {
        0 => true,
        _ if b[i - 1] == b'b' => i == 1 || !ident(b[i - 2]),
        _ => !ident(b[i - 1]),
    }
}

/// Rust source without its `#[cfg(test)]` modules (as rustfmt writes them: the module's
/// closing brace is the next line that is `}` alone).
fn without_unit_tests(src: &str) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let module = lines
            .get(i + 1)
            .is_some_and(|l| l.starts_with("mod ") && l.ends_with('{'));
        if lines[i] == "#[cfg(test)]" && module {
            i += 2;
            while i < lines.len() && lines[i] != "}" {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    out
}

/// An error id as the server writes them: `PREFIX-suffix`, the prefix a capitalised word
/// (`COMMAND`, `Org`, `V3`), the suffix letters and digits. Header names that look alike
/// (`Retry-After`) are not ids: an id's prefix is in capitals, or its suffix mixes in
/// capitals or digits.
fn looks_like_id(s: &str) -> bool {
    let Some((prefix, suffix)) = s.split_once('-') else {
        return false;
    };
    let word = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric());
    if !word(prefix) || !word(suffix) || !prefix.starts_with(|c: char| c.is_ascii_uppercase()) {
        return false;
    }
    let capitals = prefix.len() >= 2 && prefix.chars().all(|c| !c.is_ascii_lowercase());
    let mixed = suffix
        .chars()
        .skip(1)
        .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    capitals || mixed
}

/// The constructors of `error::Error` that take an id first.
const CONSTRUCTORS: &[&str] = &[
    "invalid_argument(",
    "not_found(",
    "already_exists(",
    "failed_precondition(",
    "permission_denied(",
    "unauthenticated(",
    "unavailable(",
    "internal(",
];

/// The error ids in Rust source: the first argument of an `Error` constructor, and every
/// other literal shaped like an id (ids kept in constants or handed to helpers such as
/// `on_conflict`).
fn ids_of(src: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (literal, at) in string_literals(src) {
        let before = src[..at].trim_end();
        let kind_first = before.strip_suffix(',').is_some_and(|b| {
            b.rsplit_once("Error::new(").is_some_and(|(_, kind)| {
                kind.trim()
                    .strip_prefix("Kind::")
                    .is_some_and(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
            })
        });
        let by_constructor = kind_first || CONSTRUCTORS.iter().any(|c| before.ends_with(c));
        if by_constructor && literal.contains(char::is_whitespace) {
            continue; // tonic's `Status::internal("…")` takes a message, not an id
        }
        if by_constructor || looks_like_id(&literal) {
            ids.push(literal);
        }
    }
    ids
}

/// Every error id in `src/` outside unit tests, with the files it occurs in.
fn ids_in_code() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for id in ids_of(&without_unit_tests(&read(&file))) {
            assert!(
                !id.is_empty(),
                "{name}: an Error constructor with an empty id (Error::validation is the one without)"
            );
            ids.entry(id).or_default().insert(name.clone());
        }
    }
    ids
}

/// The ids in the tables of docs/errors.md (first column, in backticks).
fn ids_in_docs() -> BTreeMap<String, usize> {
    let text = read(&root().join("docs/errors.md"));
    let start = text
        .find("\n## Error ids\n")
        .expect("docs/errors.md has a section \"Error ids\"");
    let mut ids = BTreeMap::new();
    for line in text[start..].lines() {
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let first = row.split(" |").next().unwrap();
        let id = first.trim_end_matches('`');
        assert!(
            !id.contains('`'),
            "docs/errors.md: one id per row, not {line:?}"
        );
        *ids.entry(id.to_owned()).or_insert(0) += 1;
    }
    ids
}

#[test]
fn the_source_scanner_finds_ids_in_rust_source() {
    let src = r####"
        // "COMMENT-Id01" in a comment, /* "BLOCK-Id01" */ too
        let c = '"'; let e = '\''; let l: &'static str = "LIT-Abc1";
        let raw = r#"RAW-Id01 "quoted""#; let bytes = b"BYTE-Id1"; let s = "a \"QUOTED-Id1\"";
        Error::internal("CTOR-1", "message"); Error::new(Kind::NotFound, "new-id", "m");
        tonic::Status::internal("no id here"); const DENIED: &str = "AUTH-5mWD2";
        #[cfg(test)]
        mod tests {
            const MADE_UP: &str = "TEST-Only1";
        }
        let after = "AFTER-Tests1";
    "####;
    let literals: Vec<String> = string_literals(src).into_iter().map(|(l, _)| l).collect();
    assert_eq!(
        literals[..3],
        ["LIT-Abc1", r#"RAW-Id01 "quoted""#, "BYTE-Id1"]
    );
    assert_eq!(literals[3], r#"a \"QUOTED-Id1\""#);
    let src = src
        .lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        ids_of(&without_unit_tests(&src)),
        [
            "LIT-Abc1",
            "BYTE-Id1",
            "CTOR-1",
            "new-id",
            "AUTH-5mWD2",
            "AFTER-Tests1"
        ]
    );
    assert!(looks_like_id("COMMAND-bnipwm1") && looks_like_id("Org-LFjMV"));
    assert!(looks_like_id("BOOT-Write") && looks_like_id("V3-DKcYh"));
    assert!(!looks_like_id("Retry-After") && !looks_like_id("content-type"));
    assert!(!looks_like_id("X-Request-Id") && !looks_like_id("no id here"));
}

#[test]
fn every_error_id_is_documented_and_every_documented_id_exists() {
    let code = ids_in_code();
    let docs = ids_in_docs();
    assert!(code.len() > 100, "the scan found only {} ids", code.len());
    let missing: Vec<String> = code
        .iter()
        .filter(|(id, _)| !docs.contains_key(*id))
        .map(|(id, files)| {
            format!(
                "{id} (in {})",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    let stale: Vec<&String> = docs.keys().filter(|id| !code.contains_key(*id)).collect();
    let twice: Vec<&String> = docs
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty() && twice.is_empty(),
        "docs/errors.md is out of step with src/:\n  ids in src/ missing from the tables: {missing:#?}\n  ids in the tables that src/ no longer has: {stale:#?}\n  ids listed twice: {twice:#?}"
    );
}

/// The JSON block after `<!-- test: docs NAME -->` in docs/errors.md.
fn documented_body(name: &str) -> String {
    let text = read(&root().join("docs/errors.md"));
    let marker = format!("<!-- test: docs {name} -->\n```json\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/errors.md has no block marked {name}"))
        + marker.len();
    let end = start + text[start..].find("\n```").unwrap();
    text[start..end].to_owned()
}

#[tokio::test]
async fn the_error_bodies_in_the_docs_are_the_servers() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let rest = app
        .http
        .get(format!(
            "{}/management/v1/users/{}/keys/1",
            app.base, app.admin_id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 404);
    assert_eq!(rest.text().await.unwrap(), documented_body("rest-error"));

    let connect = app
        .http
        .post(format!(
            "{}/zitadel.user.v2.UserService/RemoveKey",
            app.base
        ))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(serde_json::json!({"userId": app.admin_id, "keyId": "1"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status(), 404);
    assert_eq!(
        connect.text().await.unwrap(),
        documented_body("connect-error")
    );
}

#[test]
fn the_configuration_table_names_every_flag() {
    use clap::Args;
    let command = authn_keys::config::Config::augment_args(clap::Command::new("authn-keys"));
    let readme = read(&root().join("README.md"));
    let start = readme
        .find("\n## Configuration\n")
        .expect("README.md has a section \"Configuration\"");
    let end = start + 1 + readme[start + 1..].find("\n## ").unwrap();
    // `| `--flag` | `VARIABLE` | default | meaning |` → flag → (variable, default)
    let mut rows = BTreeMap::new();
    for line in readme[start..end].lines() {
        let Some(row) = line.strip_prefix("| `--") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells.len() >= 4, "README.md: a short row: {line}");
        rows.insert(
            cells[0].trim_end_matches('`').to_owned(),
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned()),
        );
    }
    let mut flags = BTreeSet::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        flags.insert(long.to_owned());
        let (env, default) = rows
            .get(long)
            .unwrap_or_else(|| panic!("README.md's configuration table has no row for --{long}"));
        let want_env = arg.get_env().unwrap().to_str().unwrap();
        assert_eq!(env, want_env, "the variable of --{long}");
        if let Some(value) = arg.get_default_values().first() {
            let value = value.to_str().unwrap();
            let shown = if value.is_empty() {
                "empty".to_owned()
            } else {
                format!("`{value}`")
            };
            assert!(
                default.starts_with(&shown),
                "README.md gives --{long} the default {default}, the code {value}"
            );
        }
    }
    let unknown: Vec<&String> = rows.keys().filter(|f| !flags.contains(*f)).collect();
    assert!(
        unknown.is_empty(),
        "README.md lists flags the server does not have: {unknown:?}"
    );
}

/// GitHub's anchor for a heading: lower case; letters, digits, `-` and `_` kept, spaces
/// become `-`, everything else goes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let base = slug(heading.trim_start_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn links_between_the_readme_and_the_docs_resolve() {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 5, "docs/ holds the reference pages");
    pages.extend(docs.iter().cloned());
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = read(page);
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for line in prose(&text) {
            let line = line.split('`').step_by(2).collect::<Vec<_>>().join("");
            for (_, rest) in line.match_indices("](").map(|(i, _)| ((), &line[i + 2..])) {
                let Some(target) = rest.split(')').next() else {
                    continue;
                };
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let path = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                checked += 1;
                if !path.exists() {
                    broken.push(format!("{name}: {target} (no such file)"));
                    continue;
                }
                if !anchor.is_empty() && !anchors(&read(&path)).contains(anchor) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
    // Every page in docs/ is reachable from the README.
    let readme = read(&root().join("README.md"));
    for page in &docs {
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        assert!(
            readme.contains(&format!("]({name}")),
            "README.md does not link {name}"
        );
    }
}

#[tokio::test]
async fn the_sqlite_database_file_is_private() {
    if database_server().is_some() {
        println!("skipped: the database file's mode is a SQLite matter (DATABASE_URL is set)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    app.admin_token().await; // a write: the WAL file exists now
    let dir = app.key_file_path().parent().unwrap().to_owned();
    let mut seen = Vec::new();
    for name in ["test.db", "test.db-wal", "test.db-shm"] {
        let Ok(meta) = std::fs::metadata(dir.join(name)) else {
            continue;
        };
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        seen.push(name);
    }
    assert!(
        seen.contains(&"test.db") && seen.contains(&"test.db-wal"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_second_start_on_an_in_memory_database_says_what_to_do_with_the_key_file() {
    use authn_keys::{app::App, config::Config};
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("admin-key.json");
    let first = App::build(Config::for_tests("sqlite::memory:", key_file.clone()))
        .await
        .expect("the first start");
    assert!(first.instance.created);
    let written = std::fs::read(&key_file).unwrap();
    let err = App::build(Config::for_tests("sqlite::memory:", key_file.clone()))
        .await
        .err()
        .expect("a second start on an empty in-memory database finds the key file taken");
    assert_eq!(err.id, "BOOT-Exist1");
    for says in [
        key_file.to_str().unwrap(),
        "in memory",
        "Delete the file",
        "AUTHN_KEYS_ADMIN_KEY_FILE",
    ] {
        assert!(
            err.message.contains(says),
            "{says:?} not in {:?}",
            err.message
        );
    }
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        written,
        "never overwritten"
    );
    // With its own key file, the next in-memory start just works.
    let again = App::build(Config::for_tests(
        "sqlite::memory:",
        dir.path().join("admin-key-2.json"),
    ))
    .await
    .expect("a start with a key file of its own");
    assert!(again.instance.created);
}

/// The log lines of a server process on `dir`'s database up to the one saying it serves.
async fn start_logs(dir: &Path) -> Vec<String> {
    use std::io::BufRead;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = server_process(
        dir,
        &addr,
        &[("RUST_LOG", "info"), ("NO_COLOR", "1")],
        std::process::Stdio::piped(),
    );
    let stdout = server.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("serving gRPC");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), lines).await;
    let _ = server.kill();
    let _ = server.wait();
    let lines = lines.expect("the server logs that it serves").unwrap();
    assert!(
        lines.last().is_some_and(|l| l.contains("serving gRPC")),
        "the server stopped before serving: {lines:#?}"
    );
    lines
}

#[tokio::test]
async fn the_first_signing_key_is_logged_as_created_not_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_logs(dir.path()).await;
    let has = |lines: &[String], text: &str| lines.iter().any(|l| l.contains(text));
    assert!(has(&first, "token signing key created"), "{first:#?}");
    assert!(!has(&first, "rotated"), "{first:#?}");
    // The next start on that database finds the key: neither made nor rotated.
    let second = start_logs(dir.path()).await;
    assert!(!has(&second, "token signing key"), "{second:#?}");
}
