//! The small grammar shared by the monitors' targets: time ranges (`START..END`, half-open) and
//! prediction-log targets (`MODEL[:VERSION]@START..END`), as `quiver drift` (`log:...`,
//! `service:...@...`, `FILE@...`) and `quiver consistency --log` write them.

/// `START..END` (times as `quiver_online::parse_time` reads them: RFC 3339, a date, `now`) as
/// UTC microseconds, `[start, end)`. `spec` names the whole argument in messages.
pub fn time_range(spec: &str, range: &str) -> Result<(i64, i64), String> {
    let (start, end) = range
        .split_once("..")
        .ok_or_else(|| format!("{spec}: expected a time range START..END"))?;
    let start = quiver_online::parse_time(start).map_err(|e| format!("{spec}: {e}"))?;
    let end = quiver_online::parse_time(end).map_err(|e| format!("{spec}: {e}"))?;
    if end <= start {
        return Err(format!(
            "{spec}: the range ends before it starts (END must be after START)"
        ));
    }
    Ok((start, end))
}

/// A model's prediction log over a time range: `MODEL[:VERSION]@START..END`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// The model.
    pub model: String,
    /// One version, or every version the log holds.
    pub version: Option<i64>,
    /// Start of the range (UTC microseconds, included).
    pub start: i64,
    /// End of the range (excluded).
    pub end: i64,
}

impl LogTarget {
    /// Parses `MODEL[:VERSION]@START..END`; `spec` names the argument in messages.
    pub fn parse(spec: &str, text: &str) -> Result<LogTarget, String> {
        let (model, range) = text
            .split_once('@')
            .ok_or_else(|| format!("{spec}: expected MODEL[:VERSION]@START..END"))?;
        let (start, end) = time_range(spec, range)?;
        let (name, version) = match model.split_once(':') {
            Some((n, v)) => (
                n,
                Some(
                    v.parse::<i64>()
                        .map_err(|_| format!("{spec}: version '{v}' is not a number"))?,
                ),
            ),
            None => (model, None),
        };
        if name.is_empty() {
            return Err(format!(
                "{spec}: no model named (expected MODEL[:VERSION]@START..END)"
            ));
        }
        Ok(LogTarget {
            model: name.to_string(),
            version,
            start,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_ranges() {
        let t = LogTarget::parse("x", "churn:2@2025-01-01..2025-02-01").unwrap();
        assert_eq!((t.model.as_str(), t.version), ("churn", Some(2)));
        assert_eq!(t.end - t.start, 31 * 86_400_000_000);
        assert_eq!(
            LogTarget::parse("x", "churn@2025-01-01..2025-02-01")
                .unwrap()
                .version,
            None
        );
        assert!(
            LogTarget::parse("x", "churn")
                .unwrap_err()
                .contains("MODEL[:VERSION]@START..END")
        );
        assert!(
            LogTarget::parse("x", "churn:v2@2025-01-01..2025-02-01")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            time_range("x", "2025-02-01..2025-01-01")
                .unwrap_err()
                .contains("ends before it starts")
        );
        assert!(time_range("x", "2025-02-01").is_err());
        assert!(time_range("x", "yesterday..2025-01-01").is_err());
    }
}
