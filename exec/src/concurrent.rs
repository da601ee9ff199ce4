//! Pieces of a plan that each wait on the scheduler (a join's build side, a pipeline's source,
//! a union's inputs) run at once, each on a scoped thread of its own: their pipelines' tasks
//! share the scheduler's workers, and the serial steps between those pipelines (building a
//! table from its rows) overlap the other pieces' parallel work instead of idling the workers.
//! When one piece fails, the others are cancelled instead of run to their end.

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{ExecError, Result};
use crate::executor::CancelHandle;

/// A piece of a plan to run on a thread of its own.
pub(crate) type Job<'a, T> = Box<dyn FnOnce() -> Result<T> + Send + 'a>;

/// Runs `jobs` at once, each but the first on a thread of its own (the first on this one),
/// and returns their results in order, or the first error among them that is not a
/// cancellation (else a cancellation). A job that fails cancels `cancel`, which the others'
/// pipelines watch. Their pipelines' tasks share the scheduler's workers; these threads only
/// wait for them and do the serial steps between them, which then overlap other jobs' parallel
/// work.
pub(crate) fn concurrently<'a, T: Send>(
    jobs: Vec<Job<'a, T>>,
    cancel: &CancelHandle,
) -> Result<Vec<T>> {
    if jobs.len() <= 1 {
        return jobs.into_iter().map(|job| job()).collect();
    }
    let slots: Vec<Arc<Mutex<Option<Job<'a, T>>>>> = jobs
        .into_iter()
        .map(|job| Arc::new(Mutex::new(Some(job))))
        .collect();
    let take = |slot: &Mutex<Option<Job<'a, T>>>| {
        let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        job.map_or_else(
            || {
                Err(ExecError::Internal {
                    operator: "Executor",
                    message: "part of the plan was taken twice".to_string(),
                })
            },
            |job| {
                let result = job();
                if matches!(&result, Err(error) if !matches!(error, ExecError::Cancelled)) {
                    cancel.cancel();
                }
                result
            },
        )
    };
    std::thread::scope(|scope| {
        // A job whose thread cannot start runs on this thread instead.
        let threads: Vec<_> = slots[1..]
            .iter()
            .map(|slot| {
                let slot = Arc::clone(slot);
                std::thread::Builder::new()
                    .name("sabot-plan".to_string())
                    .spawn_scoped(scope, move || take(&slot))
                    .ok()
            })
            .collect();
        let mut results = vec![take(&slots[0])];
        for (slot, thread) in slots[1..].iter().zip(threads) {
            results.push(match thread {
                Some(thread) => thread.join().unwrap_or_else(|_| {
                    Err(ExecError::Internal {
                        operator: "Executor",
                        message: "a thread running part of the plan panicked".to_string(),
                    })
                }),
                None => take(slot),
            });
        }
        let failed = results.iter().position(
            |result| matches!(result, Err(error) if !matches!(error, ExecError::Cancelled)),
        );
        match failed {
            Some(position) => results.swap_remove(position).map(|_| Vec::new()),
            None => results.into_iter().collect(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_at_once_and_their_results_come_in_order() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let receiver = Mutex::new(receiver);
        // The first job waits for the second: run one after the other, it would time out.
        let jobs: Vec<Job<'_, u32>> = vec![
            Box::new(|| {
                receiver
                    .lock()
                    .unwrap()
                    .recv_timeout(std::time::Duration::from_secs(30))
                    .map_err(|error| ExecError::Internal {
                        operator: "test",
                        message: error.to_string(),
                    })
            }),
            Box::new(move || {
                sender.send(7).unwrap();
                Ok(8)
            }),
        ];
        assert_eq!(
            concurrently(jobs, &CancelHandle::new()).unwrap(),
            vec![7, 8]
        );
    }

    #[test]
    fn the_first_failing_job_gives_the_error() {
        let failing = |message: &'static str| -> Job<'static, u32> {
            Box::new(move || {
                Err(ExecError::Internal {
                    operator: "test",
                    message: message.to_string(),
                })
            })
        };
        let succeeding: Job<'static, u32> = Box::new(|| Ok(1));
        let jobs = vec![succeeding, failing("second"), failing("third")];
        let error = concurrently(jobs, &CancelHandle::new()).unwrap_err();
        assert!(error.to_string().contains("second"), "{error}");
    }

    #[test]
    fn a_failing_job_cancels_the_others_and_its_error_wins_over_their_cancellation() {
        let cancel = CancelHandle::new();
        let stopped_early = std::sync::atomic::AtomicBool::new(false);
        let jobs: Vec<Job<'_, u32>> = vec![
            // Waits for the cancellation, as a pipeline stops at its next batch.
            Box::new(|| {
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_secs(30) {
                    if cancel.is_cancelled() {
                        stopped_early.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Err(ExecError::Cancelled);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(1)
            }),
            Box::new(|| {
                Err(ExecError::Internal {
                    operator: "test",
                    message: "broken".to_string(),
                })
            }),
        ];
        let error = concurrently(jobs, &cancel).unwrap_err();
        assert!(error.to_string().contains("broken"), "{error}");
        assert!(stopped_early.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn an_inner_handle_is_cancelled_with_its_outer_one_but_not_the_other_way() {
        let outer = CancelHandle::new();
        let first = outer.inner();
        first.cancel();
        assert!(first.is_cancelled());
        assert!(!outer.is_cancelled());
        let second = outer.inner();
        assert!(!second.is_cancelled());
        outer.cancel();
        assert!(second.is_cancelled());
    }
}
