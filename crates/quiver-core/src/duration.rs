//! Durations as written in definitions: `90s`, `15m`, `12h`, `30d`, `2w`, or `0`.

use std::fmt;

/// A non-negative duration with second resolution. Zero means "unbounded" where a TTL is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    seconds: i64,
}

impl Duration {
    /// From whole seconds.
    pub const fn from_seconds(seconds: i64) -> Self {
        Duration { seconds }
    }

    /// Whole seconds.
    pub const fn seconds(self) -> i64 {
        self.seconds
    }

    /// Microseconds, the unit of Quiver's timestamps.
    pub const fn micros(self) -> i64 {
        self.seconds.saturating_mul(1_000_000)
    }

    /// True for `0`.
    pub const fn is_zero(self) -> bool {
        self.seconds == 0
    }

    /// Parses `<integer><unit>` with unit `s`, `m`, `h`, `d` or `w`; a bare `0` is zero.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "0" {
            return Ok(Duration { seconds: 0 });
        }
        let unit_at = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("'{t}' has no unit: write e.g. 30d, 12h, 15m, 90s, 2w"))?;
        let (num, unit) = t.split_at(unit_at);
        let n: i64 = num
            .parse()
            .map_err(|_| format!("'{t}' is not a duration: write e.g. 30d, 12h, 15m, 90s, 2w"))?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => {
                return Err(format!(
                    "'{t}' has unknown unit '{unit}': use s, m, h, d or w"
                ));
            }
        };
        n.checked_mul(mult)
            .map(|seconds| Duration { seconds })
            .ok_or_else(|| format!("'{t}' is too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s != 0 && s % size == 0 {
                return write!(f, "{}{unit}", s / size);
            }
        }
        if s == 0 {
            write!(f, "0")
        } else {
            write!(f, "{s}s")
        }
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_zero() {
        assert_eq!(Duration::parse("30d").unwrap().seconds(), 30 * 86_400);
        assert_eq!(Duration::parse("2w").unwrap().seconds(), 14 * 86_400);
        assert_eq!(Duration::parse("90s").unwrap().seconds(), 90);
        assert_eq!(Duration::parse("15m").unwrap().seconds(), 900);
        assert_eq!(Duration::parse("12h").unwrap().seconds(), 43_200);
        assert!(Duration::parse("0").unwrap().is_zero());
        assert!(Duration::parse("0d").unwrap().is_zero());
    }

    #[test]
    fn rejects_bad_text() {
        assert!(Duration::parse("30").unwrap_err().contains("no unit"));
        assert!(
            Duration::parse("30y")
                .unwrap_err()
                .contains("unknown unit 'y'")
        );
        assert!(Duration::parse("d").is_err());
        assert!(Duration::parse("-1d").is_err());
        assert!(
            Duration::parse("99999999999999999w")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn displays_in_largest_unit() {
        assert_eq!(Duration::from_seconds(30 * 86_400).to_string(), "30d");
        assert_eq!(Duration::from_seconds(14 * 86_400).to_string(), "14d");
        assert_eq!(Duration::from_seconds(61).to_string(), "61s");
        assert_eq!(Duration::from_seconds(0).to_string(), "0");
    }
}
