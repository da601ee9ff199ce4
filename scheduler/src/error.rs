//! Errors of the scheduler: a group that was cancelled or whose task panicked, a pool that
//! could not start.

/// Why a task group did not complete normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The group was cancelled before all its tasks ran.
    #[error("the task group was cancelled")]
    Cancelled,
    /// A task of the group panicked; the group was cancelled.
    #[error("a task panicked: {message}")]
    TaskPanicked { message: String },
    /// The worker threads could not be started.
    #[error("cannot start worker thread {index}: {message}")]
    ThreadStart { index: usize, message: String },
    /// A pool needs at least one worker thread.
    #[error("a scheduler needs at least one worker thread")]
    NoThreads,
}
