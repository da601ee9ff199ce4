//! The worker pool: threads, their deques, the shared injector queues, stealing, and parking
//! idle workers without losing a wake-up.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::sync::{Parker, Unparker};

use crate::error::SchedulerError;
use crate::group::{Job, TaskGroup};

/// Rounds an idle worker looks for work, spinning then yielding, before it parks.
const IDLE_ROUNDS_BEFORE_PARK: u32 = 64;
/// Of those rounds, how many only spin; the rest yield the core.
const SPIN_ROUNDS: u32 = 16;

/// Which queue a task enters. High-priority tasks are taken before any other work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Latency-sensitive work (e.g. a short interactive query); runs before normal tasks.
    High,
    /// Everything else.
    #[default]
    Normal,
}

/// State shared by the workers and every handle to the pool.
pub(crate) struct Shared {
    high: Injector<Job>,
    normal: Injector<Job>,
    stealers: Vec<Stealer<Job>>,
    unparkers: Vec<Unparker>,
    /// Indices of parked workers; touched only when `parked` is non-zero.
    parked_workers: Mutex<Vec<usize>>,
    parked: AtomicUsize,
    shutting_down: AtomicBool,
    /// Tasks spawned and not yet finished, over all groups.
    pending_tasks: AtomicUsize,
}

thread_local! {
    /// The deque of the pool worker running on this thread, with its pool's identity.
    static CURRENT_WORKER: RefCell<Option<LocalWorker>> = const { RefCell::new(None) };
}

struct LocalWorker {
    pool: *const Shared,
    index: usize,
    deque: Worker<Job>,
}

/// A pool of worker threads that run tasks submitted through [`TaskGroup`]s.
///
/// Dropping the scheduler lets running tasks finish, then stops its threads; tasks still queued
/// are dropped unrun and their groups report [`SchedulerError::Cancelled`].
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts `threads` worker threads.
    pub fn new(threads: usize) -> Result<Scheduler, SchedulerError> {
        if threads == 0 {
            return Err(SchedulerError::NoThreads);
        }
        let deques: Vec<Worker<Job>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let parkers: Vec<Parker> = (0..threads).map(|_| Parker::new()).collect();
        let shared = Arc::new(Shared {
            high: Injector::new(),
            normal: Injector::new(),
            stealers: deques.iter().map(Worker::stealer).collect(),
            unparkers: parkers
                .iter()
                .map(|parker| parker.unparker().clone())
                .collect(),
            parked_workers: Mutex::new(Vec::with_capacity(threads)),
            parked: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            pending_tasks: AtomicUsize::new(0),
        });
        let mut scheduler = Scheduler {
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(threads),
        };
        for (index, (deque, parker)) in deques.into_iter().zip(parkers).enumerate() {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("sabot-worker-{index}"))
                .spawn(move || run_worker(shared, index, deque, parker))
                .map_err(|error| SchedulerError::ThreadStart {
                    index,
                    message: error.to_string(),
                })?;
            scheduler.threads.push(thread);
        }
        Ok(scheduler)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Tasks queued or running on this pool, over all groups.
    pub fn pending_tasks(&self) -> usize {
        self.shared.pending_tasks.load(Ordering::Acquire)
    }

    /// A new, empty task group on this pool.
    pub fn group(&self) -> TaskGroup {
        TaskGroup::new(Arc::clone(&self.shared))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        for unparker in &self.shared.unparkers {
            unparker.unpark();
        }
        for thread in self.threads.drain(..) {
            // A worker only ends by returning: tasks run under catch_unwind.
            let _ = thread.join();
        }
        self.shared.drop_queued();
    }
}

impl Shared {
    pub(crate) fn task_spawned(&self) {
        self.pending_tasks.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn task_finished(&self) {
        self.pending_tasks.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues `job`: on the current worker's own deque when called from one of this pool's
    /// workers, else on the injector of its priority. Then wakes a parked worker if any.
    pub(crate) fn submit(self: &Arc<Self>, job: Job, priority: Priority) {
        let job = match priority {
            Priority::High => {
                self.high.push(job);
                None
            }
            Priority::Normal => self.push_local(job),
        };
        if let Some(job) = job {
            self.normal.push(job);
        }
        fence(Ordering::SeqCst);
        if self.shutting_down.load(Ordering::SeqCst) {
            // No worker will take it: drop it (and whatever else is queued) as cancelled.
            self.drop_queued();
            return;
        }
        self.wake_one();
    }

    /// Drops every job left in the shared queues; each counts as cancelled in its group.
    fn drop_queued(&self) {
        while let Some(job) =
            steal_one(|| self.high.steal()).or_else(|| steal_one(|| self.normal.steal()))
        {
            drop(job);
        }
    }

    /// Pushes onto the current thread's deque if it is a worker of this pool; else hands the job back.
    fn push_local(self: &Arc<Self>, job: Job) -> Option<Job> {
        CURRENT_WORKER.with(|current| match &*current.borrow() {
            Some(worker) if std::ptr::eq(worker.pool, Arc::as_ptr(self)) => {
                worker.deque.push(job);
                None
            }
            _ => Some(job),
        })
    }

    fn wake_one(&self) {
        if self.parked.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut parked = self.lock_parked();
            let index = parked.pop();
            if index.is_some() {
                self.parked.fetch_sub(1, Ordering::SeqCst);
            }
            index
        };
        if let Some(index) = woken {
            self.unparkers[index].unpark();
        }
    }

    fn lock_parked(&self) -> MutexGuard<'_, Vec<usize>> {
        self.parked_workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes worker `index` off the parked list if it is still there.
    fn unpark_self(&self, index: usize) {
        let mut parked = self.lock_parked();
        if let Some(position) = parked
            .iter()
            .position(|&parked_index| parked_index == index)
        {
            parked.swap_remove(position);
            self.parked.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The next job for worker `index` (with deque `local`): high-priority work first, then
    /// its own deque, then the shared queue, then the other workers' deques.
    fn find_job(&self, index: usize, local: &Worker<Job>) -> Option<Job> {
        steal_one(|| self.high.steal())
            .or_else(|| local.pop())
            .or_else(|| steal_one(|| self.normal.steal_batch_and_pop(local)))
            .or_else(|| {
                let workers = self.stealers.len();
                (1..workers)
                    .map(|offset| (index + offset) % workers)
                    .find_map(|victim| {
                        steal_one(|| self.stealers[victim].steal_batch_and_pop(local))
                    })
            })
    }

    /// Runs queued jobs on the calling worker until `done` returns true. Used by a worker that
    /// waits for a group, so that waiting never blocks a thread the group needs.
    pub(crate) fn help_until(self: &Arc<Self>, done: impl Fn() -> bool) -> bool {
        CURRENT_WORKER.with(|current| {
            let current = current.borrow();
            let Some(worker) = current
                .as_ref()
                .filter(|worker| std::ptr::eq(worker.pool, Arc::as_ptr(self)))
            else {
                return false;
            };
            let mut idle_rounds = 0u32;
            while !done() {
                match self.find_job(worker.index, &worker.deque) {
                    Some(job) => {
                        job.run();
                        idle_rounds = 0;
                    }
                    None => idle_pause(&mut idle_rounds),
                }
            }
            true
        })
    }
}

fn steal_one(mut steal: impl FnMut() -> Steal<Job>) -> Option<Job> {
    loop {
        match steal() {
            Steal::Success(job) => return Some(job),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

fn idle_pause(idle_rounds: &mut u32) {
    *idle_rounds = idle_rounds.saturating_add(1);
    if *idle_rounds < SPIN_ROUNDS {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn run_worker(shared: Arc<Shared>, index: usize, deque: Worker<Job>, parker: Parker) {
    CURRENT_WORKER.with(|current| {
        *current.borrow_mut() = Some(LocalWorker {
            pool: Arc::as_ptr(&shared),
            index,
            deque,
        });
    });
    CURRENT_WORKER.with(|current| {
        let current = current.borrow();
        let Some(worker) = current.as_ref() else {
            return;
        };
        let local = &worker.deque;
        let mut idle_rounds = 0u32;
        loop {
            if shared.shutting_down.load(Ordering::Relaxed) {
                break;
            }
            if let Some(job) = shared.find_job(index, local) {
                job.run();
                idle_rounds = 0;
                continue;
            }
            if idle_rounds < IDLE_ROUNDS_BEFORE_PARK {
                idle_pause(&mut idle_rounds);
                continue;
            }
            // Announce the park, then look once more: a submitter either sees us parked and
            // wakes us, or we see its job here.
            shared.lock_parked().push(index);
            shared.parked.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if let Some(job) = shared.find_job(index, local) {
                shared.unpark_self(index);
                job.run();
                idle_rounds = 0;
                continue;
            }
            if shared.shutting_down.load(Ordering::SeqCst) {
                shared.unpark_self(index);
                break;
            }
            parker.park();
            shared.unpark_self(index);
            idle_rounds = 0;
        }
        while let Some(job) = local.pop() {
            drop(job);
        }
    });
}
