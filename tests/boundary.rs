//! The house's walls: a mode never names another mode's `crate::` path, and `protocol` stays
//! free of I/O (no tokio, no hyper) and of the modes. Each rule is checked on every file.

use std::path::{Path, PathBuf};

/// The modes under `src/`, each in its own folder.
const MODES: [&str; 4] = ["api", "client", "exec", "gateway"];

/// What `protocol/` may not import besides the modes: the async runtime and HTTP.
const PROTOCOL_FORBIDDEN: [&str; 2] = ["tokio", "hyper"];

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The first segment of every `crate::` path in `text`, with its line number; a grouped
/// import (`crate::{api, net::serve}`) gives each of its top-level names.
fn crate_roots(text: &str) -> Vec<(usize, String)> {
    let mut roots = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            for name in top_level_names(rest, text, n) {
                roots.push((n + 1, name));
            }
        }
    }
    roots
}

/// `api` from `api::run`, or `api` and `net` from `{api, net::serve}` (which may run over
/// several lines: then the rest of the file from line `n` is read).
fn top_level_names(rest: &str, text: &str, n: usize) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    // The group, possibly spanning lines: up to its matching brace.
    let tail: String = std::iter::once(group.to_string())
        .chain(text.lines().skip(n + 1).map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    let (mut depth, mut names, mut at_start) = (0, Vec::new(), true);
    for (i, c) in tail.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                names.push(ident(&tail[i..]));
                at_start = false;
            }
            _ => {}
        }
    }
    names
}

/// Whether `text` uses `krate` as a path root (`use tokio::…`, `tokio::spawn`, `::tokio`).
fn uses_crate(text: &str, krate: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let found = code.match_indices(krate).any(|(at, _)| {
            let before = code[..at].chars().next_back();
            let after = &code[at + krate.len()..];
            let starts_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                && !code[..at].ends_with("crate::")
                && !code[..at].ends_with("super::");
            starts_path && (after.starts_with("::") || after.starts_with(';'))
        });
        if found {
            lines.push(n + 1);
        }
    }
    lines
}

/// Every way the files under `src` break the walls, one line each.
fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for mode in MODES {
        for file in rust_files(&src.join(mode)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, root) in crate_roots(&text) {
                if root != mode && MODES.contains(&root.as_str()) {
                    let at = file.strip_prefix(src).unwrap().display();
                    found.push(format!(
                        "src/{at}:{line}: the {mode} mode names crate::{root}"
                    ));
                }
            }
        }
    }
    for file in rust_files(&src.join("protocol")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let at = file.strip_prefix(src).unwrap().display();
        for (line, root) in crate_roots(&text) {
            if MODES.contains(&root.as_str()) {
                found.push(format!("src/{at}:{line}: protocol names crate::{root}"));
            }
        }
        for krate in PROTOCOL_FORBIDDEN {
            for line in uses_crate(&text, krate) {
                found.push(format!("src/{at}:{line}: protocol uses {krate}"));
            }
        }
    }
    found
}

#[test]
fn modes_never_name_each_other_and_protocol_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "the house's walls are broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_every_form_of_a_forbidden_path() {
    let root = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("client/a.rs", "use crate::exec::run;\n");
    write(
        "client/b.rs",
        "use crate::{\n    net::dial,\n    api,\n};\n",
    );
    write(
        "exec/c.rs",
        "fn f() { crate::client::new(); }\n// crate::api in a comment\n",
    );
    write(
        "api/d.rs",
        "use crate::net::serve;\nuse crate::protocol::api::SessionInfo;\n",
    );
    write(
        "protocol/e.rs",
        "use tokio::sync::mpsc;\nfn f() -> hyper::StatusCode {}\n",
    );
    write(
        "protocol/f.rs",
        "use std::time::Duration; // tokio:: in a comment\n",
    );
    let mut found = violations(root.path());
    found.sort();
    assert_eq!(
        found,
        [
            "src/client/a.rs:1: the client mode names crate::exec",
            "src/client/b.rs:1: the client mode names crate::api",
            "src/exec/c.rs:1: the exec mode names crate::client",
            "src/protocol/e.rs:1: protocol uses tokio",
            "src/protocol/e.rs:2: protocol uses hyper",
        ]
    );
}

/// The client prints through `say!`/`out!` (`client/say.rs`), which ignore a closed stream:
/// `println!` and `eprintln!` panic on one, and `new`/`connect` keep SIGPIPE ignored.
#[test]
fn the_client_never_prints_with_a_macro_that_panics() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = rust_files(&src.join("client"));
    files.push(src.join("main.rs"));
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("client/say.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("println!(") || code.contains("print!(") {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use say!/out! instead:\n{}",
        found.join("\n")
    );
}
