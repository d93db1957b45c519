//! The README against the binary: every command, flag and endpoint that exists is documented,
//! and everything documented exists.
//!
//! The commands come from the built `quiver`'s own help (each `--help` lists its subcommands
//! under "Commands:" and its flags under "Options:"), the endpoints from the OpenAPI document
//! the server serves (`crates/quiver-server/src/openapi.json`) and the routes from the server's
//! router source. The README's CLI table and HTTP table are the other side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Flags every command takes; the README lists them once, under "Global flags".
const GLOBAL_FLAGS: &[&str] = &["--repo", "--quiet", "--json", "--help", "--version"];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `quiver PATH... --help`.
fn help(path: &[String]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(path)
        .arg("--help")
        .output()
        .expect("runs quiver");
    assert!(o.status.success(), "quiver {path:?} --help failed");
    String::from_utf8(o.stdout).unwrap()
}

/// The names under a help text's "Commands:" heading (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Continuation lines of a description are indented further than the names.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags under a help text's "Options:" heading.
fn flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Options:")
        // Flags are indented at most 6 spaces; their descriptions further.
        .filter(|l| l.len() - l.trim_start().len() <= 6)
        .filter_map(|l| {
            let t = l.trim_start();
            let t = t
                .strip_prefix('-')
                .filter(|r| r.len() > 2 && r.as_bytes()[1] == b',')
                .map_or(t, |r| r[2..].trim_start());
            let name: String = t
                .strip_prefix("--")?
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .collect()
}

/// The text a help page shows before its usage line (what the command says about itself).
fn about(help: &str) -> &str {
    help.split("\nUsage:").next().unwrap_or(help)
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let joined = |c: Option<char>| c == Some('-');
        boundary(before) && boundary(after) && !joined(before) && !joined(after)
    })
}

/// Every command of the binary: path (e.g. `models rollout`) -> its help text.
fn command_tree() -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        tree.insert(path.join(" "), text);
    }
    tree
}

/// One section of the README: from its `## ` heading to the next.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no '## {heading}' section"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// A Markdown table row's cells (a `\|` inside a cell is not a separator).
fn cells(row: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

/// The `code spans` of a text.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `/registry/views[/NAME]` -> `/registry/views`, `/registry/views/{name}`; `/x/NAME` ->
/// `/x/{name}`.
fn expand_path(path: &str) -> Vec<String> {
    let path = path.trim_end_matches(['.', ',', ';', ':', ')']);
    match path.split_once("[/NAME]") {
        Some((base, _)) => vec![base.to_string(), format!("{base}/{{name}}")],
        None => vec![path.replace("/NAME", "/{name}")],
    }
}

/// The README's CLI table: each row's command paths (e.g. `models rollout`) and every `--flag`
/// it mentions.
fn readme_rows(readme: &str) -> Vec<(Vec<String>, BTreeSet<String>)> {
    let mut out = Vec::new();
    for row in section(readme, "CLI")
        .lines()
        .filter(|l| l.starts_with("| `quiver"))
    {
        let cells = cells(row);
        // The row's flags: those in its command spans, and description spans that start with
        // a flag (`--workers` sets ...); a span such as `historical --out FILE.csv` in the
        // description names another command's flag.
        let spans = code_spans(&cells[0]).into_iter().chain(
            cells[1..]
                .iter()
                .flat_map(|c| code_spans(c))
                .filter(|s| s.starts_with("--")),
        );
        let row_flags: BTreeSet<String> = spans
            .flat_map(|s| s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(str::to_string)
            .collect();
        let mut paths = Vec::new();
        for span in code_spans(&cells[0]) {
            let Some(rest) = span.strip_prefix("quiver ") else {
                continue;
            };
            let path: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| {
                    w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
                .collect();
            assert!(!path.is_empty(), "README CLI row names no command: {span}");
            paths.push(path.join(" "));
        }
        out.push((paths, row_flags));
    }
    out
}

/// The README's CLI table: command path -> every `--flag` its rows mention.
fn readme_commands(readme: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (paths, row_flags) in readme_rows(readme) {
        for p in paths {
            out.entry(p).or_default().extend(row_flags.iter().cloned());
        }
    }
    out
}

/// The README's HTTP table: `METHOD /path` (paths as in OpenAPI, `{name}` for a parameter).
fn readme_endpoints(readme: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for row in section(readme, "HTTP API")
        .lines()
        .filter(|l| l.starts_with("| `"))
    {
        let cells = cells(row);
        let mut method = None;
        for span in code_spans(&cells[0]) {
            let path = match span.split_once(' ') {
                Some((m, p)) if m.chars().all(|c| c.is_ascii_uppercase()) => {
                    method = Some(m.to_string());
                    p
                }
                _ => span,
            };
            assert!(
                path.starts_with('/'),
                "README HTTP row: '{span}' is not an endpoint"
            );
            let method = method
                .clone()
                .unwrap_or_else(|| panic!("README HTTP row: '{span}' has no method"));
            for p in expand_path(path) {
                out.insert(format!("{method} {p}"));
            }
        }
    }
    out
}

/// openapi.json's operations: `METHOD /path`.
fn openapi_endpoints() -> BTreeSet<String> {
    let doc: serde_json::Value =
        serde_json::from_str(&read("crates/quiver-server/src/openapi.json")).unwrap();
    let mut out = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            out.insert(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    out
}

/// What only one of two sets holds, each item followed by what that means.
fn differences(
    a: &BTreeSet<String>,
    only_in_a: &str,
    b: &BTreeSet<String>,
    only_in_b: &str,
) -> Vec<String> {
    let a_only = a.difference(b).map(|x| format!("{x} {only_in_a}"));
    a_only
        .chain(b.difference(a).map(|x| format!("{x} {only_in_b}")))
        .collect()
}

fn path_of(endpoint: &str) -> &str {
    endpoint.split_once(' ').map_or(endpoint, |(_, p)| p)
}

#[test]
fn every_command_and_flag_is_in_the_readme_and_every_documented_one_exists() {
    let tree = command_tree();
    let readme = read("README.md");
    let documented = readme_commands(&readme);
    let mut problems = Vec::new();
    let mut leaves = 0;
    for (path, text) in &tree {
        let subs = subcommands(text);
        if !subs.is_empty() {
            // A group's own description names all its commands (`quiver models --help` is
            // where a user looks for them), and so does the top-level help.
            for sub in &subs {
                if !has_word(about(text), sub) {
                    problems.push(format!(
                        "`quiver {path} --help` does not name its command `{sub}` before its usage line"
                    ));
                }
            }
            continue;
        }
        leaves += 1;
        let Some(doc_flags) = documented.get(path.as_str()) else {
            problems.push(format!("`quiver {path}` is not in the README's CLI table"));
            continue;
        };
        for flag in flags(text) {
            if !GLOBAL_FLAGS.contains(&flag.as_str()) && !doc_flags.contains(&flag) {
                problems.push(format!(
                    "`quiver {path} {flag}` is not in the README's CLI table (its row)"
                ));
            }
        }
    }
    assert!(
        leaves >= 20,
        "only {leaves} commands found in the help:\n{tree:#?}"
    );
    for path in documented.keys() {
        if !tree.contains_key(path) {
            problems.push(format!(
                "the README's CLI table names `quiver {path}`, which does not exist"
            ));
        }
    }
    // A row that documents two commands mentions the flags of both: each must exist in one.
    for (paths, row_flags) in readme_rows(&readme) {
        let real: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| tree.get(p))
            .flat_map(|t| flags(t))
            .collect();
        for flag in row_flags
            .difference(&real)
            .filter(|f| !GLOBAL_FLAGS.contains(&f.as_str()))
        {
            problems.push(format!(
                "the README's row for `quiver {}` documents {flag}, which its --help does not list",
                paths.join("`, `quiver ")
            ));
        }
    }
    let cli = section(&readme, "CLI");
    for flag in ["--repo", "--quiet", "--json"] {
        if !cli.contains(&format!("`{flag}")) {
            problems.push(format!(
                "the global flag {flag} is not in the README's CLI section"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "README vs `quiver --help`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_endpoint_is_in_the_readme_serve_help_and_router_and_every_documented_one_exists() {
    let api = openapi_endpoints();
    assert!(api.len() >= 19, "openapi.json: only {api:?}");
    let readme = read("README.md");
    let documented = readme_endpoints(&readme);
    let mut problems = differences(
        &api,
        "(openapi.json) is not in the README's HTTP table",
        &documented,
        "is in the README's HTTP table, not in openapi.json",
    );
    // `quiver serve --help` lists every endpoint.
    let serve = help(&["serve".to_string()]);
    let listed: BTreeSet<String> = about(&serve)
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| w.starts_with('/'))
        .flat_map(expand_path)
        .collect();
    for e in &api {
        if !listed.contains(path_of(e)) {
            problems.push(format!(
                "`quiver serve --help` does not list {}",
                path_of(e)
            ));
        }
    }
    // The router serves exactly the documented paths (quiver-server's tests call each
    // documented operation; this catches a route nobody documented).
    let router = read("crates/quiver-server/src/lib.rs");
    let routed: BTreeSet<String> = router
        .split(".route(")
        .skip(1)
        .filter_map(|r| r.trim_start().strip_prefix('"')?.split('"').next())
        .map(str::to_string)
        .collect();
    assert!(
        routed.len() >= 10,
        "no routes found in quiver-server/src/lib.rs: {routed:?}"
    );
    let api_paths: BTreeSet<String> = api.iter().map(|e| path_of(e).to_string()).collect();
    problems.extend(differences(
        &api_paths,
        "is in openapi.json but not routed in quiver-server/src/lib.rs",
        &routed,
        "is routed (quiver-server/src/lib.rs) but not in openapi.json",
    ));
    assert!(problems.is_empty(), "endpoints:\n{}", problems.join("\n"));
}

#[test]
fn the_parsers_read_what_they_should() {
    let row = "| `quiver models list [NAME]`, `quiver models show NAME[:VERSION\\|@ALIAS]` | a \\| b `--x` (not `historical --out F`) |";
    assert_eq!(
        cells(row)[0],
        "`quiver models list [NAME]`, `quiver models show NAME[:VERSION|@ALIAS]`"
    );
    let readme = format!(
        "# x\n\n## CLI\n\n{row}\n| `quiver demo run [--dir DIR]` | d |\n\n## HTTP API\n\n| `GET /a`, `/b[/NAME]` | x |\n| `POST /c/d` (token) | y |\n\n## Next\n"
    );
    let c = readme_commands(&readme);
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        ["demo run", "models list", "models show"]
    );
    assert!(c["models list"].contains("--x") && c["demo run"].contains("--dir"));
    assert!(!c["models list"].contains("--out"));
    let e: Vec<String> = readme_endpoints(&readme).into_iter().collect();
    assert_eq!(e, ["GET /a", "GET /b", "GET /b/{name}", "POST /c/d"]);
    let h = "About\n\nUsage: quiver x\n\nCommands:\n  list  Every model\n        more text\n  show  One\n  help  Print\n\nOptions:\n  -q, --quiet  Quiet\n      --views <V>  Views\n";
    assert_eq!(subcommands(h), ["list", "show"]);
    assert_eq!(
        flags(h).into_iter().collect::<Vec<_>>(),
        ["--quiet", "--views"]
    );
    assert!(has_word("list, show", "show") && !has_word("showing", "show"));
    assert!(!has_word("materialize-incremental", "materialize"));
}
