//! Task groups: the unit of completion and cancellation. A query submits its tasks to one
//! group; waiting on the group waits for all of them, cancelling it skips every task not yet
//! started and tells running ones (through [`TaskGroup::is_cancelled`]) to stop at their next
//! morsel.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::error::SchedulerError;
use crate::pool::{Priority, Shared};

type Task = Box<dyn FnOnce(&TaskGroup) + Send + 'static>;

/// A set of tasks that complete, fail or are cancelled together. Cloning gives another handle
/// to the same group.
#[derive(Clone)]
pub struct TaskGroup {
    state: Arc<GroupState>,
}

struct GroupState {
    pool: Arc<Shared>,
    pending: AtomicUsize,
    cancelled: AtomicBool,
    failure: Mutex<Option<String>>,
    finished: Mutex<()>,
    finished_signal: Condvar,
}

/// A queued task with the group it belongs to. A job dropped without running (its pool shut
/// down) still counts as finished, and cancels its group.
pub(crate) struct Job {
    task: Option<Task>,
    group: TaskGroup,
}

impl Job {
    pub(crate) fn run(mut self) {
        if let Some(task) = self.task.take() {
            if !self.group.is_cancelled() {
                let group = &self.group;
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| task(group))) {
                    group.fail(panic_message(panic.as_ref()));
                }
            }
            self.group.finish_one();
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.task.take().is_some() {
            self.group.cancel();
            self.group.finish_one();
        }
    }
}

impl TaskGroup {
    pub(crate) fn new(pool: Arc<Shared>) -> TaskGroup {
        TaskGroup {
            state: Arc::new(GroupState {
                pool,
                pending: AtomicUsize::new(0),
                cancelled: AtomicBool::new(false),
                failure: Mutex::new(None),
                finished: Mutex::new(()),
                finished_signal: Condvar::new(),
            }),
        }
    }

    /// Runs `task` on a worker at normal priority. The task gets its group, to spawn more
    /// tasks or to check for cancellation.
    pub fn spawn(&self, task: impl FnOnce(&TaskGroup) + Send + 'static) {
        self.spawn_with_priority(Priority::Normal, task);
    }

    /// Runs `task` on a worker at `priority`.
    pub fn spawn_with_priority(
        &self,
        priority: Priority,
        task: impl FnOnce(&TaskGroup) + Send + 'static,
    ) {
        self.state.pending.fetch_add(1, Ordering::AcqRel);
        self.state.pool.task_spawned();
        let job = Job {
            task: Some(Box::new(task)),
            group: self.clone(),
        };
        self.state.pool.submit(job, priority);
    }

    /// Cancels the group: tasks not yet started are skipped, running tasks see
    /// [`TaskGroup::is_cancelled`] return true.
    pub fn cancel(&self) {
        self.state.cancelled.store(true, Ordering::Release);
    }

    /// Whether the group was cancelled (or one of its tasks panicked).
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.load(Ordering::Acquire)
    }

    /// Tasks spawned and not yet finished.
    pub fn pending(&self) -> usize {
        self.state.pending.load(Ordering::Acquire)
    }

    /// Waits until every task spawned so far has finished. Called on a worker of the same pool,
    /// it runs queued tasks while it waits instead of blocking the thread.
    pub fn wait(&self) -> Result<(), SchedulerError> {
        let finished = || self.pending() == 0;
        if !self.state.pool.help_until(finished) {
            let mut guard = self
                .state
                .finished
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while !finished() {
                guard = self
                    .state
                    .finished_signal
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let failure = self
            .state
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match failure {
            Some(message) => Err(SchedulerError::TaskPanicked { message }),
            None if self.is_cancelled() => Err(SchedulerError::Cancelled),
            None => Ok(()),
        }
    }

    fn fail(&self, message: String) {
        let mut failure = self
            .state
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert(message);
        self.cancel();
    }

    fn finish_one(&self) {
        self.state.pool.task_finished();
        if self.state.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _guard = self
                .state
                .finished
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.state.finished_signal.notify_all();
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| message.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_string())
}
