//! Numeric transforms: `safe_log`, `log1p` and `bucketize`.

/// `safe_log(x)`: `ln(x)` for `x > 0` (so `+inf` gives `+inf`); null for 0, negatives and NaN.
pub fn safe_log(x: f64) -> Option<f64> {
    (x > 0.0).then(|| x.ln())
}

/// `log1p(x)`: `ln(1 + x)`, accurate for small `x` (`f64::ln_1p`); `-1` gives `-inf` and
/// anything below `-1` gives NaN, as in IEEE arithmetic.
pub fn log1p(x: f64) -> f64 {
    x.ln_1p()
}

/// The boundaries of `bucketize(x, '0,10,100')`: finite, strictly increasing numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundaries(Vec<f64>);

impl Boundaries {
    /// Parses a comma-separated list such as `'0,10,100'` (spaces around entries allowed).
    pub fn parse(list: &str) -> Result<Boundaries, String> {
        let mut out: Vec<f64> = Vec::new();
        for entry in list.split(',') {
            let e = entry.trim();
            let v: f64 = e
                .parse()
                .map_err(|_| format!("boundary '{e}' in '{list}' is not a number"))?;
            if !v.is_finite() {
                return Err(format!("boundary '{e}' in '{list}' is not finite"));
            }
            if let Some(&last) = out.last()
                && v <= last
            {
                return Err(format!(
                    "boundaries '{list}' are not strictly increasing ({e} after {last})"
                ));
            }
            out.push(v);
        }
        Ok(Boundaries(out))
    }

    /// The boundaries in increasing order.
    pub fn values(&self) -> &[f64] {
        &self.0
    }

    /// `bucketize(x, b)`: the number of boundaries `<= x`, i.e. `i` with `b[i-1] <= x < b[i]`,
    /// like `numpy.digitize(x, b, right=False)`: with `'0,10,100'`, `-5 → 0`, `0 → 1`, `9.9 → 1`,
    /// `10 → 2`, `100 → 3`. NaN has no bucket and gives null (numpy would say 3).
    pub fn bucket(&self, x: f64) -> Option<i64> {
        if x.is_nan() {
            return None;
        }
        Some(self.0.partition_point(|b| *b <= x) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_values() {
        let b = Boundaries::parse("0, 10,100").unwrap();
        let got: Vec<_> = [
            -5.0,
            0.0,
            9.9,
            10.0,
            100.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ]
        .into_iter()
        .map(|x| b.bucket(x))
        .collect();
        assert_eq!(
            got,
            [
                Some(0),
                Some(1),
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(0),
                None
            ]
        );
        assert!(Boundaries::parse("1,1").is_err());
        assert!(Boundaries::parse("1,x").is_err());
        assert!(Boundaries::parse("").is_err());
        assert_eq!(safe_log(1.0), Some(0.0));
        assert_eq!(safe_log(0.0), None);
        assert_eq!(safe_log(-1.0), None);
        assert_eq!(safe_log(f64::NAN), None);
        assert_eq!(log1p(0.0), 0.0);
    }
}
