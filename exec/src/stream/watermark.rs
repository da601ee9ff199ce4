//! Watermarks: each source partition's is its latest event time less the allowed
//! out-of-orderness; the pipeline's is the minimum over partitions, leaving out partitions that
//! have been idle longer than a timeout (so a quiet partition does not stall every window).

use std::time::{Duration, Instant};

/// How watermarks are made for a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkSpec {
    /// The source column holding event times.
    pub column: String,
    /// How far behind the newest event time rows may still arrive, in the column's units.
    pub max_out_of_orderness: i64,
    /// A partition without rows for this long stops holding the watermark back, until it
    /// has rows again.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
struct PartitionClock {
    newest: Option<i64>,
    last_rows_at: Instant,
    idle: bool,
}

/// The watermark of a source with several partitions.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    partitions: Vec<PartitionClock>,
    max_out_of_orderness: i64,
    idle_timeout: Duration,
    emitted: Option<i64>,
}

impl WatermarkTracker {
    /// A tracker for `partitions` partitions, none of which has rows yet, as of `now`.
    pub fn new(
        partitions: usize,
        max_out_of_orderness: i64,
        idle_timeout: Duration,
        now: Instant,
    ) -> WatermarkTracker {
        WatermarkTracker {
            partitions: vec![
                PartitionClock {
                    newest: None,
                    last_rows_at: now,
                    idle: false,
                };
                partitions.max(1)
            ],
            max_out_of_orderness,
            idle_timeout,
            emitted: None,
        }
    }

    /// Partition `partition` delivered rows whose latest event time is `newest`, at `now`.
    pub fn observe(&mut self, partition: usize, newest: i64, now: Instant) {
        if let Some(clock) = self.partitions.get_mut(partition) {
            clock.newest = Some(clock.newest.map_or(newest, |seen| seen.max(newest)));
            clock.last_rows_at = now;
            clock.idle = false;
        }
    }

    /// Marks partitions that have had no rows for the idle timeout as idle, as of `now`.
    pub fn mark_idle(&mut self, now: Instant) {
        for clock in &mut self.partitions {
            if now.duration_since(clock.last_rows_at) >= self.idle_timeout {
                clock.idle = true;
            }
        }
    }

    /// The combined watermark, when it has moved past the last one returned.
    pub fn advance(&mut self) -> Option<i64> {
        let mut combined: Option<i64> = None;
        for clock in self.partitions.iter().filter(|clock| !clock.idle) {
            let partition = clock.newest?.saturating_sub(self.max_out_of_orderness);
            combined = Some(combined.map_or(partition, |low: i64| low.min(partition)));
        }
        let watermark = combined?;
        if self.emitted.is_some_and(|emitted| watermark <= emitted) {
            return None;
        }
        self.emitted = Some(watermark);
        Some(watermark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_minimum_over_partitions_less_the_delay() {
        let start = Instant::now();
        let mut tracker = WatermarkTracker::new(2, 5, Duration::from_secs(10), start);
        tracker.observe(0, 100, start);
        assert_eq!(tracker.advance(), None, "partition 1 has no rows yet");
        tracker.observe(1, 40, start);
        assert_eq!(tracker.advance(), Some(35));
        tracker.observe(1, 30, start);
        assert_eq!(
            tracker.advance(),
            None,
            "an older row does not move it back"
        );
        tracker.observe(1, 200, start);
        assert_eq!(tracker.advance(), Some(95));
    }

    #[test]
    fn idle_partitions_do_not_hold_the_watermark_back_until_they_have_rows_again() {
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut tracker = WatermarkTracker::new(2, 0, timeout, start);
        tracker.observe(0, 10, start);
        tracker.observe(1, 5, start);
        assert_eq!(tracker.advance(), Some(5));
        let later = start + Duration::from_secs(2);
        tracker.observe(0, 50, later);
        tracker.mark_idle(later);
        assert_eq!(tracker.advance(), Some(50), "partition 1 is idle");
        tracker.observe(1, 20, later);
        assert_eq!(
            tracker.advance(),
            None,
            "partition 1 is back at 20: the watermark stays at 50, never going back"
        );
        tracker.observe(1, 70, later);
        assert_eq!(tracker.advance(), None, "partition 0 is at 50");
        tracker.observe(0, 80, later);
        assert_eq!(tracker.advance(), Some(70));
    }

    #[test]
    fn all_partitions_idle_keep_the_watermark_where_it_is() {
        let start = Instant::now();
        let mut tracker = WatermarkTracker::new(1, 0, Duration::from_millis(1), start);
        tracker.observe(0, 10, start);
        assert_eq!(tracker.advance(), Some(10));
        tracker.mark_idle(start + Duration::from_secs(1));
        assert_eq!(tracker.advance(), None);
    }
}
