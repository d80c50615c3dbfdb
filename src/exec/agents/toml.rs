//! Just enough TOML to trust a project and choose a model provider in Codex's `config.toml`
//! without rewriting the file:
//! table headers and keys are recognised line by line (skipping multi-line strings and
//! arrays), and lines are only added or replaced, so comments and layout stay the user's.

use anyhow::bail;

/// What a line of the file is.
#[derive(Debug, PartialEq)]
enum Line {
    /// `[a."b"]`, or `[[a]]` when `array`.
    Header {
        path: Vec<String>,
        array: bool,
    },
    /// `a.b = …`, within the table of the header above it.
    Key(Vec<String>),
    Other,
}

/// Marks `project` trusted (`[projects."<project>"] trust_level = "trusted"`) and, unless the
/// user set it, turns off the update check at startup.
pub(super) fn trust_project(text: &str, project: &str) -> anyhow::Result<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let kinds = classify(&lines);
    let table = ["projects".to_string(), project.to_string()];
    let mut current: &[String] = &[];
    let mut header = None;
    let mut top_keys = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        match kind {
            Line::Header { path, array } => {
                current = path;
                if !array && path[..] == table {
                    header = Some(i);
                }
            }
            Line::Key(key) if current.is_empty() => top_keys.push(&key[0]),
            Line::Key(key) if current == &table[..1] && key[0] == project => {
                bail!("the project {project:?} is set inside [projects]; trust it there by hand")
            }
            _ => {}
        }
    }
    if top_keys.iter().any(|k| *k == "projects") {
        bail!(
            "`projects` is set as a key; add [projects.{}] by hand",
            quote(project)
        );
    }
    const TRUSTED: &str = "trust_level = \"trusted\"";
    match header {
        Some(at) => {
            let end = (at + 1..kinds.len())
                .find(|&i| matches!(kinds[i], Line::Header { .. }))
                .unwrap_or(kinds.len());
            let trust = (at + 1..end).find(|&i| kinds[i] == Line::Key(vec!["trust_level".into()]));
            match trust {
                Some(i) => lines[i] = TRUSTED.into(),
                None => lines.insert(at + 1, TRUSTED.into()),
            }
        }
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[projects.{}]", quote(project)));
            lines.push(TRUSTED.into());
        }
    }
    if !top_keys.iter().any(|k| *k == "check_for_update_on_startup") {
        lines.insert(0, "check_for_update_on_startup = false".into());
        if lines
            .get(1)
            .is_some_and(|l| l.trim_start().starts_with('['))
        {
            lines.insert(1, String::new());
        }
    }
    Ok(lines.join("\n") + "\n")
}

/// Makes `[model_providers.<id>]` exactly `entries` (`key = <TOML value>`, replacing whatever
/// the table held) and the top-level `model_provider` `id`, so Codex talks to that provider.
pub(super) fn use_provider(
    text: &str,
    id: &str,
    entries: &[(&str, String)],
) -> anyhow::Result<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let kinds = classify(&lines);
    let table = ["model_providers".to_string(), id.to_string()];
    let mut current: &[String] = &[];
    let (mut header, mut top_key) = (None, None);
    for (i, kind) in kinds.iter().enumerate() {
        match kind {
            Line::Header { path, .. } => {
                current = path;
                if path[..] == table {
                    header = Some(i);
                }
            }
            Line::Key(key) if current.is_empty() && key[..] == ["model_provider"] => {
                top_key = Some(i)
            }
            Line::Key(key) if current.is_empty() && key[0] == "model_providers" => {
                bail!("`model_providers` is set as a key; add [model_providers.{id}] by hand")
            }
            Line::Key(key) if current == &table[..1] && key[0] == id => {
                bail!("the provider {id:?} is set inside [model_providers]; set it there by hand")
            }
            _ => {}
        }
    }
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    match header {
        Some(at) => {
            let end = (at + 1..kinds.len())
                .find(|&i| matches!(kinds[i], Line::Header { .. }))
                .unwrap_or(kinds.len());
            lines.splice(at + 1..end, body.into_iter().chain([String::new()]));
        }
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[model_providers.{}]", quote_key(id)));
            lines.extend(body);
        }
    }
    let chosen = format!("model_provider = {}", quote(id));
    match top_key {
        Some(i) => lines[i] = chosen,
        None => lines.insert(0, chosen),
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    Ok(lines.join("\n") + "\n")
}

/// A key as written in a header: bare when it can be.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match bare {
        true => key.to_string(),
        false => quote(key),
    }
}

/// A TOML basic string.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn classify(lines: &[String]) -> Vec<Line> {
    // Inside a multi-line string (its closing delimiter), or the depth of an open array.
    let mut string: Option<&str> = None;
    let mut depth = 0i32;
    let mut kinds = Vec::with_capacity(lines.len());
    for line in lines {
        if let Some(delim) = string {
            if line.contains(delim) {
                string = None;
            }
            kinds.push(Line::Other);
            continue;
        }
        if depth > 0 {
            depth += brackets(line);
            kinds.push(Line::Other);
            continue;
        }
        let kind = parse_line(line.trim_start());
        if let Line::Key(_) = kind {
            let value = line.split_once('=').map_or("", |(_, v)| v).trim_start();
            for delim in ["\"\"\"", "'''"] {
                if value.starts_with(delim) && !value[3..].contains(delim) {
                    string = Some(delim);
                }
            }
            if value.starts_with('[') {
                depth = brackets(value);
            }
        }
        kinds.push(kind);
    }
    kinds
}

fn parse_line(line: &str) -> Line {
    let header = |rest: &str, close: &str, array| {
        let (path, rest) = key_path(rest)?;
        rest.trim_start()
            .starts_with(close)
            .then_some(Line::Header { path, array })
    };
    let parsed = if let Some(rest) = line.strip_prefix("[[") {
        header(rest, "]]", true)
    } else if let Some(rest) = line.strip_prefix('[') {
        header(rest, "]", false)
    } else {
        key_path(line)
            .filter(|(_, rest)| rest.trim_start().starts_with('='))
            .map(|(path, _)| Line::Key(path))
    };
    parsed.unwrap_or(Line::Other)
}

/// A dotted key (`a."b c".'d'`) and what follows it.
fn key_path(mut s: &str) -> Option<(Vec<String>, &str)> {
    let mut path = Vec::new();
    loop {
        s = s.trim_start();
        let (segment, rest) = if let Some(rest) = s.strip_prefix('"') {
            basic_string(rest)?
        } else if let Some(rest) = s.strip_prefix('\'') {
            let end = rest.find('\'')?;
            (rest[..end].to_string(), &rest[end + 1..])
        } else {
            let end = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(s.len());
            if end == 0 {
                return None;
            }
            (s[..end].to_string(), &s[end..])
        };
        path.push(segment);
        match rest.trim_start().strip_prefix('.') {
            Some(next) => s = next,
            None => return Some((path, rest)),
        }
    }
}

/// The rest of a basic string after its opening quote: its value and what follows it.
fn basic_string(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'b' => out.push('\u{8}'),
                't' => out.push('\t'),
                'n' => out.push('\n'),
                'f' => out.push('\u{c}'),
                'r' => out.push('\r'),
                'e' => out.push('\u{1b}'),
                c @ ('"' | '\\') => out.push(c),
                c @ ('u' | 'U') => {
                    let len = if c == 'u' { 4 } else { 8 };
                    let hex: String = (0..len).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// Opening minus closing brackets outside strings and comments.
fn brackets(s: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '[') => depth += 1,
            (None, ']') => depth -= 1,
            _ => {}
        }
        escaped = false;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gets_the_recipe() {
        assert_eq!(
            trust_project("", "/workspace").unwrap(),
            "check_for_update_on_startup = false\n\n[projects.\"/workspace\"]\n\
             trust_level = \"trusted\"\n"
        );
    }

    #[test]
    fn an_existing_file_keeps_everything_else() {
        let text = "# my settings\nmodel = \"o3\"\ncheck_for_update_on_startup = true\n\n\
                    [projects.\"/other\"]\ntrust_level = \"trusted\"\n\n[tui]\nx = 1\n";
        assert_eq!(
            trust_project(text, "/workspace").unwrap(),
            format!("{text}\n[projects.\"/workspace\"]\ntrust_level = \"trusted\"\n")
        );
    }

    #[test]
    fn an_existing_entry_is_set_to_trusted_in_place() {
        let text = "[projects.'/workspace']\nfoo = 1\ntrust_level = \"untrusted\"\n[x]\n\
                    trust_level = \"untrusted\"\n";
        assert_eq!(
            trust_project(text, "/workspace").unwrap(),
            "check_for_update_on_startup = false\n\n[projects.'/workspace']\nfoo = 1\n\
             trust_level = \"trusted\"\n[x]\ntrust_level = \"untrusted\"\n"
        );
        let text = "check_for_update_on_startup = false\n[ projects . \"/w\" ]\n";
        assert_eq!(
            trust_project(text, "/w").unwrap(),
            "check_for_update_on_startup = false\n[ projects . \"/w\" ]\ntrust_level = \"trusted\"\n"
        );
        // Idempotent.
        let once = trust_project("", "/w").unwrap();
        assert_eq!(trust_project(&once, "/w").unwrap(), once);
    }

    #[test]
    fn strings_and_arrays_that_look_like_headers_are_not_headers() {
        let text = "notes = \"\"\"\n[projects.\"/w\"]\n\"\"\"\nlist = [\n  [\"a\"],\n  \"]\",\n]\n";
        let out = trust_project(text, "/w").unwrap();
        assert!(
            out.ends_with("]\n\n[projects.\"/w\"]\ntrust_level = \"trusted\"\n"),
            "{out}"
        );
    }

    #[test]
    fn odd_paths_are_quoted_and_found_again() {
        let project = "/tmp/a \"b\"\\c";
        let once = trust_project("", project).unwrap();
        assert!(
            once.contains("[projects.\"/tmp/a \\\"b\\\"\\\\c\"]"),
            "{once}"
        );
        assert_eq!(trust_project(&once, project).unwrap(), once);
    }

    fn catty_entries() -> Vec<(&'static str, String)> {
        vec![
            ("base_url", quote("http://gw/openai/v1")),
            ("requires_openai_auth", "false".into()),
        ]
    }

    #[test]
    fn a_provider_is_added_and_chosen() {
        let trusted = trust_project("", "/w").unwrap();
        let out = use_provider(&trusted, "catty", &catty_entries()).unwrap();
        assert_eq!(
            out,
            format!(
                "model_provider = \"catty\"\n{trusted}\n[model_providers.catty]\n\
                 base_url = \"http://gw/openai/v1\"\nrequires_openai_auth = false\n"
            )
        );
        // Idempotent, and trusting again leaves it as it is.
        assert_eq!(use_provider(&out, "catty", &catty_entries()).unwrap(), out);
        assert_eq!(trust_project(&out, "/w").unwrap(), out);
    }

    #[test]
    fn a_provider_already_there_is_replaced_and_the_rest_kept() {
        let text = "model_provider = \"openai\"\nmodel = \"o3\"\n\n[model_providers.catty]\n\
                    base_url = \"http://old\"\nenv_key = \"X\"\n\n[tui]\nx = 1\n";
        assert_eq!(
            use_provider(text, "catty", &catty_entries()).unwrap(),
            "model_provider = \"catty\"\nmodel = \"o3\"\n\n[model_providers.catty]\n\
             base_url = \"http://gw/openai/v1\"\nrequires_openai_auth = false\n\n[tui]\nx = 1\n"
        );
        assert!(use_provider("model_providers = {}\n", "catty", &[]).is_err());
        let inside = "[model_providers]\ncatty.base_url = \"x\"\n";
        assert!(use_provider(inside, "catty", &[]).is_err());
    }

    #[test]
    fn inline_definitions_are_not_guessed_at() {
        assert!(trust_project("projects = { }\n", "/w").is_err());
        assert!(trust_project("[projects]\n\"/w\".trust_level = \"x\"\n", "/w").is_err());
        assert!(trust_project("[projects]\n\"/other\" = {}\n", "/w").is_ok());
    }
}
