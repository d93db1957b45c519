//! The volume check's statistic: the robust z-score of the last bucket's row count against the
//! buckets of the lookback, `(count - median) / (1.4826 x MAD)`.
//!
//! 1.4826 makes the MAD estimate a normal distribution's standard deviation. When more than half
//! of the reference buckets are equal the MAD is 0; then the mean absolute deviation times
//! 1.2533 (its own normal consistency constant) takes its place, as in Iglewicz and Hoaglin's
//! modified z-score; when that is 0 too (every bucket equal), a count equal to them scores 0 and
//! any other count scores infinity.

/// The result of [`robust_z`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeScore {
    /// The reference buckets' median count.
    pub median: f64,
    /// Their median absolute deviation from it.
    pub mad: f64,
    /// The scale the deviation is divided by (1.4826 x MAD, or its fallback).
    pub scale: f64,
    /// The robust z-score of the last bucket (signed: negative for a drop).
    pub z: f64,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The robust z-score of `last` against `reference` (the lookback's bucket counts).
pub fn robust_z(last: f64, reference: &[f64]) -> VolumeScore {
    let mut r: Vec<f64> = reference.to_vec();
    r.sort_by(f64::total_cmp);
    let med = median(&r);
    let mut dev: Vec<f64> = r.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median(&dev);
    let mut scale = 1.4826 * mad;
    if scale == 0.0 && !dev.is_empty() {
        scale = 1.2533 * dev.iter().sum::<f64>() / dev.len() as f64;
    }
    let diff = last - med;
    let z = if scale > 0.0 {
        diff / scale
    } else if diff == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(diff)
    };
    VolumeScore {
        median: med,
        mad,
        scale,
        z,
    }
}

#[cfg(test)]
mod tests {
    use super::robust_z;

    #[test]
    fn scores_against_median_and_mad() {
        // median 10, deviations 0,1,1,2,2 -> MAD 1, scale 1.4826.
        let s = robust_z(16.0, &[8.0, 9.0, 10.0, 11.0, 12.0]);
        assert_eq!((s.median, s.mad), (10.0, 1.0));
        assert!((s.z - 6.0 / 1.4826).abs() < 1e-12);
        // A drop is negative.
        assert!(robust_z(4.0, &[8.0, 9.0, 10.0, 11.0, 12.0]).z < -4.0);
        // Even count: the mean of the middle two.
        assert_eq!(robust_z(0.0, &[1.0, 2.0, 3.0, 4.0]).median, 2.5);
        // One outlier in the reference barely moves the scale.
        let s = robust_z(10.0, &[8.0, 9.0, 10.0, 11.0, 12.0, 1000.0]);
        assert!(s.z.abs() < 1.0, "{s:?}");
    }

    #[test]
    fn zero_mad_falls_back_to_mean_absolute_deviation() {
        // MAD 0 (most buckets equal): mean |x - 10| = 5/6, x 1.2533.
        let s = robust_z(20.0, &[10.0, 10.0, 10.0, 10.0, 10.0, 15.0]);
        assert_eq!(s.mad, 0.0);
        assert!((s.scale - 1.2533 * 5.0 / 6.0).abs() < 1e-12);
        // Every bucket equal: equal scores 0, different scores infinity.
        assert_eq!(robust_z(7.0, &[7.0; 5]).z, 0.0);
        assert_eq!(robust_z(8.0, &[7.0; 5]).z, f64::INFINITY);
        assert_eq!(robust_z(0.0, &[7.0; 5]).z, f64::NEG_INFINITY);
        assert_eq!(robust_z(0.0, &[]).z, 0.0);
    }
}
