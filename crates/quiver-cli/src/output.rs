//! How the CLI talks to people and scripts: tables, progress bars, summaries, JSON.

use std::time::{Duration, Instant};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Writes `text` and a newline to stdout. When stdout is a closed pipe (`quiver ... | head`),
/// the process ends quietly with status 0, as ripgrep and other Unix tools do, instead of
/// panicking as `println!` does; any other write error is reported on stderr and ends the
/// process with status 1.
pub fn stdout_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

/// Output settings of one invocation.
pub struct Output {
    quiet: bool,
    json: bool,
}

impl Output {
    pub fn new(quiet: bool, json: bool) -> Self {
        Output { quiet, json }
    }

    /// The output of the steps of a command made of other commands (`demo run`): the same,
    /// except that with --json the steps print nothing, so that the command prints one JSON
    /// document of its own.
    pub fn steps(&self) -> Output {
        Output {
            quiet: self.quiet || self.json,
            json: false,
        }
    }

    /// Human text on stdout (not with --quiet or --json).
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            stdout_line(text.as_ref());
        }
    }

    /// A JSON document on stdout (only with --json).
    pub fn emit(&self, value: &serde_json::Value) {
        if self.json {
            stdout_line(&serde_json::to_string_pretty(value).expect("json"));
        }
    }

    /// A table on stdout (not with --quiet or --json).
    pub fn table(&self, header: &[&str], rows: Vec<Vec<String>>) {
        if self.quiet || self.json {
            return;
        }
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header);
        for r in rows {
            t.add_row(r);
        }
        stdout_line(&t.to_string());
    }

    /// The error, with its causes, on stderr.
    pub fn error(&self, e: &anyhow::Error) {
        let mut msg = format!("error: {e}");
        for cause in e.chain().skip(1) {
            msg.push_str(&format!("\n  caused by: {cause}"));
        }
        if self.json {
            stdout_line(
                &serde_json::json!({"error": msg.trim_start_matches("error: ")}).to_string(),
            );
        }
        eprintln!("{msg}");
    }

    /// A progress bar counting `unit` on stderr; hidden with --quiet/--json or off a terminal.
    pub fn progress(&self, message: &str, total: Option<u64>, unit: &str) -> ProgressBar {
        let pb = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        };
        if self.quiet || self.json {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        let template = match total {
            Some(_) => format!(
                "{{spinner}} {{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}} left)"
            ),
            None => format!("{{spinner}} {{msg}} {{human_pos}} {unit} ({{per_sec}}) {{elapsed}}"),
        };
        pb.set_style(
            ProgressStyle::with_template(&template)
                .expect("template")
                .progress_chars("=> "),
        );
        pb.set_message(message.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }
}

/// Progress of a pipeline run (`train`, `models predict`): each step as a `== ...` line, rows
/// read as a bar.
pub struct PipelineProgress {
    out: Output,
    bar: ProgressBar,
}

impl Output {
    /// Progress for a pipeline run; call [`PipelineProgress::finish`] when it ends.
    pub fn pipeline_progress(&self) -> std::sync::Arc<PipelineProgress> {
        let out = Output {
            quiet: self.quiet,
            json: self.json,
        };
        let bar = out.progress("reading features", None, "rows");
        // Drawn from the first rows read on: a run that reads nothing shows no bar.
        bar.disable_steady_tick();
        std::sync::Arc::new(PipelineProgress { out, bar })
    }
}

impl PipelineProgress {
    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl quiver_pipeline::Progress for PipelineProgress {
    fn step(&self, step: &quiver_pipeline::Step<'_>) {
        use quiver_pipeline::Step;
        let line = match step {
            Step::TrainingSet {
                service,
                label_rows,
                features,
            } => format!(
                "building the training set: {} x {} of service {service}",
                plural(*label_rows as u64, "label row"),
                plural(*features as u64, "feature"),
            ),
            Step::FrequencyForLinear { features } => format!(
                "logistic: text features encoded by their frequency in the training split: {}",
                features.join(", ")
            ),
            Step::Training {
                algorithm,
                objective,
                train_rows,
                early_stopping_rows,
            } => format!(
                "training {} ({}) on {} rows{}",
                algorithm.name(),
                quiver_pipeline::labels::task_name(*objective),
                thousands(*train_rows as u64),
                early_stopping_rows
                    .map(|n| format!(
                        ", early stopping on {} validation rows",
                        thousands(n as u64)
                    ))
                    .unwrap_or_default()
            ),
        };
        self.bar.suspend(|| self.out.say(format!("== {line}")));
    }

    fn rows_read(&self, view: &str, rows: usize) {
        if self.bar.position() == 0 {
            self.bar.enable_steady_tick(Duration::from_millis(120));
        }
        self.bar.set_message(format!("reading {view}"));
        self.bar.inc(rows as u64);
    }
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 view`, `2 views`, `1,000 entities`: a count with its noun in the right number (nouns
/// ending in a consonant and `y` take `ies`).
pub fn plural(n: u64, noun: &str) -> String {
    let word = if n == 1 {
        noun.to_string()
    } else if let Some(stem) = noun.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    };
    format!("{} {word}", thousands(n))
}

/// `rows in 1.23 s (456,789 rows/s)`.
pub fn rate(rows: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    let per = if secs > 0.0 {
        (rows as f64 / secs) as u64
    } else {
        rows
    };
    format!(
        "{} rows in {secs:.2} s ({}/s)",
        thousands(rows),
        thousands(per)
    )
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn counts_take_their_noun_in_the_right_number() {
        use super::plural;
        assert_eq!(plural(1, "view"), "1 view");
        assert_eq!(plural(0, "view"), "0 views");
        assert_eq!(plural(2, "entity"), "2 entities");
        assert_eq!(plural(1, "entity"), "1 entity");
        assert_eq!(plural(3, "key"), "3 keys");
        assert_eq!(plural(1200, "aggregation"), "1,200 aggregations");
    }

    #[test]
    fn groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
