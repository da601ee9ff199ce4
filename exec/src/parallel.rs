//! Independent pieces of one operator's work (sorted runs, join table partitions, merge
//! partitions) run as the tasks of one group on the scheduler; their results come back in the
//! order the pieces were given, whichever finished first.

use std::sync::{Arc, Mutex, PoisonError};

use sabot_scheduler::Scheduler;

use crate::error::Result;

/// Runs each of `pieces` as a task on `scheduler` and returns their results in `pieces`' order.
pub(crate) fn in_parallel<T, F>(
    scheduler: &Scheduler,
    pieces: impl IntoIterator<Item = F>,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let results: Arc<Mutex<Vec<(usize, T)>>> = Arc::new(Mutex::new(Vec::new()));
    let group = scheduler.group();
    for (index, piece) in pieces.into_iter().enumerate() {
        let results = Arc::clone(&results);
        group.spawn(move |_| {
            let result = piece();
            results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((index, result));
        });
    }
    group.wait()?;
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(PoisonError::into_inner));
    results.sort_unstable_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_order_of_the_pieces() {
        let scheduler = Scheduler::new(2).unwrap();
        let pieces = (0..50u64).map(|piece| {
            move || {
                // Later pieces finish sooner.
                std::thread::sleep(std::time::Duration::from_micros(50 * (50 - piece)));
                piece * piece
            }
        });
        let squares = in_parallel(&scheduler, pieces).unwrap();
        assert_eq!(
            squares,
            (0..50u64).map(|piece| piece * piece).collect::<Vec<_>>()
        );
    }
}
