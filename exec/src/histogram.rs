//! Equi-depth histograms of integer, date and decimal columns (decimals by their unscaled
//! values), built by `ANALYZE` from a sample of a column's values. Each bucket holds the same
//! share of the column's non-null values, so a skewed column gets narrow buckets where its values
//! crowd; the share of values in a range is read off the buckets it covers, spread evenly within
//! each bucket.

/// An equi-depth histogram: bucket `i` spans `bounds[i]..=bounds[i + 1]` and holds
/// `1 / (bounds.len() - 1)` of the values.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: Vec<i64>,
}

impl Histogram {
    /// The histogram of `buckets` buckets of a column whose sampled values are `sorted`
    /// (ascending) and whose smallest and largest values are `min` and `max`; `None` for an
    /// empty sample.
    pub fn from_sorted_sample(
        sorted: &[i64],
        buckets: usize,
        (min, max): (i64, i64),
    ) -> Option<Histogram> {
        if sorted.is_empty() || buckets == 0 {
            return None;
        }
        let buckets = buckets.min(sorted.len());
        let mut bounds: Vec<i64> = (0..=buckets)
            .map(|bucket| sorted[(bucket * sorted.len() / buckets).min(sorted.len() - 1)])
            .collect();
        // The sample may have missed the extremes; the full read saw them.
        bounds[0] = min;
        bounds[buckets] = max;
        for bound in &mut bounds[1..buckets] {
            *bound = (*bound).clamp(min, max);
        }
        Some(Histogram { bounds })
    }

    /// The number of buckets.
    pub fn buckets(&self) -> usize {
        self.bounds.len() - 1
    }

    /// The bucket boundaries, ascending: the column's smallest value first, its largest last.
    pub fn bounds(&self) -> &[i64] {
        &self.bounds
    }

    /// The share of the values `v` with `low <= v <= high` (an open end is unbounded).
    pub fn share(&self, low: Option<i64>, high: Option<i64>) -> f64 {
        let low = low.unwrap_or(i64::MIN);
        let high = high.unwrap_or(i64::MAX);
        if low > high {
            return 0.0;
        }
        let covered: f64 = self
            .bounds
            .windows(2)
            .map(|bucket| {
                let (start, end) = (bucket[0], bucket[1]);
                let (from, to) = (start.max(low), end.min(high));
                if from > to {
                    0.0
                } else {
                    // Integers of the bucket inside the range, of all the bucket's integers.
                    (to as f64 - from as f64 + 1.0) / (end as f64 - start as f64 + 1.0)
                }
            })
            .sum();
        (covered / self.buckets() as f64).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_values_give_the_share_of_their_range() {
        let values: Vec<i64> = (0..10_000).collect();
        let histogram = Histogram::from_sorted_sample(&values, 64, (0, 9_999)).unwrap();
        assert_eq!(histogram.buckets(), 64);
        assert_eq!(histogram.bounds().first(), Some(&0));
        assert_eq!(histogram.bounds().last(), Some(&9_999));
        assert!((histogram.share(Some(0), Some(2_499)) - 0.25).abs() < 0.01);
        assert!((histogram.share(None, None) - 1.0).abs() < 0.02);
        assert_eq!(histogram.share(Some(20_000), None), 0.0);
        assert_eq!(histogram.share(Some(5), Some(4)), 0.0);
    }

    #[test]
    fn skewed_values_get_their_true_share_where_min_max_would_not() {
        // 90% of the values are 0..100, the rest spread to 1,000,000.
        let mut values: Vec<i64> = (0..9_000).map(|value| value % 100).collect();
        values.extend((0..1_000).map(|value| 100 + value * 1_000));
        values.sort_unstable();
        let histogram = Histogram::from_sorted_sample(&values, 64, (0, 999_100)).unwrap();
        let crowded = histogram.share(None, Some(99));
        assert!((crowded - 0.9).abs() < 0.03, "share {crowded}");
        // A uniform spread over [min, max] would have said 0.01%.
        let tail = histogram.share(Some(500_000), None);
        assert!((tail - 0.05).abs() < 0.02, "share {tail}");
    }

    #[test]
    fn a_single_value_fills_every_bucket() {
        let histogram = Histogram::from_sorted_sample(&[7; 100], 8, (7, 7)).unwrap();
        assert_eq!(histogram.share(Some(7), Some(7)), 1.0);
        assert_eq!(histogram.share(Some(8), None), 0.0);
        assert!(Histogram::from_sorted_sample(&[], 8, (0, 0)).is_none());
    }
}
