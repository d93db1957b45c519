//! Definitions as YAML (as the registry stored them when applied) and a line diff of two.

use serde_json::Value as Json;

/// `value` as block YAML: maps and lists indented by two spaces, scalars quoted when YAML would
/// read them as something else.
pub fn to_yaml(value: &Json) -> String {
    let mut out = String::new();
    match value {
        Json::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Json::Array(a) if !a.is_empty() => write_list(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Json>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a map inside a list sits on the list's dash line.
        if i > 0 || indent == 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&key(k));
        out.push(':');
        write_value(out, v, indent);
    }
}

fn write_value(out: &mut String, v: &Json, indent: usize) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, indent + 2);
        }
        Json::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_list(out, a, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn write_list(out: &mut String, a: &[Json], indent: usize) {
    for v in a {
        pad(out, indent);
        out.push_str("- ");
        match v {
            Json::Object(m) if !m.is_empty() => write_map(out, m, indent + 2),
            Json::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn key(k: &str) -> String {
    if plain_ok(k) { k.to_string() } else { quote(k) }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if plain_ok(s) => s.clone(),
        Json::String(s) => quote(s),
        Json::Array(_) => "[]".into(),
        Json::Object(_) => "{}".into(),
    }
}

/// Whether a string can be written unquoted and read back as the same string.
fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "null" | "~" | "true" | "false" | "yes" | "no" | "on" | "off"
    ) || s.parse::<f64>().is_ok()
    {
        return false;
    }
    let first = s.chars().next().expect("not empty");
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.contains('\n') || s.ends_with(':'))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffLine {
    /// `" "` kept, `"-"` only in the old text, `"+"` only in the new.
    pub op: &'static str,
    /// The line.
    pub text: String,
}

/// The line diff of `old` and `new` (longest common subsequence; definitions are short).
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let line = |op, t: &str| DiffLine {
        op,
        text: t.to_string(),
    };
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(line(" ", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(line("-", a[i]));
            i += 1;
        } else {
            out.push(line("+", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_of_a_view() {
        let v = json!({
            "name": "user_stats",
            "entities": ["user"],
            "ttl": "30d",
            "features": [{"name": "f", "type": "float64", "description": "a: b"}],
            "online": true,
            "tags": {},
            "note": "yes",
        });
        assert_eq!(
            to_yaml(&v),
            "name: user_stats\nentities:\n- user\nttl: 30d\nfeatures:\n- name: f\n  type: float64\n  description: \"a: b\"\nonline: true\ntags: {}\nnote: \"yes\"\n"
        );
    }

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff("a\nb\nc\n", "a\nB\nc\nd\n");
        let ops: Vec<String> = d.iter().map(|l| format!("{}{}", l.op, l.text)).collect();
        assert_eq!(ops, [" a", "-b", "+B", " c", "+d"]);
    }
}
