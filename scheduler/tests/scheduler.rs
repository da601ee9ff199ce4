//! Behaviour of the scheduler: completion, nested fork-join, stealing, priorities,
//! cancellation, panics and shutdown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use sabot_scheduler::{Priority, Scheduler, SchedulerError, TaskGroup};

fn spawn_tree(group: &TaskGroup, depth: u32, leaves: Arc<AtomicUsize>) {
    if depth == 0 {
        leaves.fetch_add(1, Ordering::Relaxed);
        return;
    }
    for _ in 0..2 {
        let leaves = Arc::clone(&leaves);
        group.spawn(move |group| spawn_tree(group, depth - 1, leaves));
    }
}

#[test]
fn nested_spawns_all_complete_before_wait_returns() {
    let scheduler = Scheduler::new(2).unwrap();
    let leaves = Arc::new(AtomicUsize::new(0));
    let group = scheduler.group();
    spawn_tree(&group, 12, Arc::clone(&leaves));
    group.wait().unwrap();
    assert_eq!(leaves.load(Ordering::Relaxed), 1 << 12);
    assert_eq!(group.pending(), 0);
}

#[test]
fn a_task_may_wait_for_its_own_subgroup_on_a_single_thread() {
    let scheduler = Arc::new(Scheduler::new(1).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let outer = scheduler.group();
    let inner = scheduler.group();
    let counted = Arc::clone(&done);
    outer.spawn(move |_| {
        for _ in 0..10 {
            let counted = Arc::clone(&counted);
            inner.spawn(move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            });
        }
        inner.wait().unwrap();
        counted.fetch_add(100, Ordering::Relaxed);
    });
    outer.wait().unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 110);
}

#[test]
fn idle_workers_steal_from_a_busy_one() {
    let scheduler = Scheduler::new(2).unwrap();
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let group = scheduler.group();
    let seen = Arc::clone(&threads);
    group.spawn(move |group| {
        for _ in 0..64 {
            let seen = Arc::clone(&seen);
            group.spawn(move |_| {
                std::thread::sleep(Duration::from_millis(2));
                seen.lock().unwrap().insert(std::thread::current().id());
            });
        }
    });
    group.wait().unwrap();
    assert_eq!(
        threads.lock().unwrap().len(),
        2,
        "both workers ran tasks spawned on one"
    );
}

#[test]
fn high_priority_tasks_run_before_queued_normal_ones() {
    let scheduler = Scheduler::new(1).unwrap();
    let group = scheduler.group();
    let gate = Arc::new(Barrier::new(2));
    let blocked = Arc::clone(&gate);
    group.spawn(move |_| {
        blocked.wait();
    });
    let order = Arc::new(Mutex::new(Vec::new()));
    for index in 0..5 {
        let order = Arc::clone(&order);
        group.spawn(move |_| order.lock().unwrap().push(format!("normal {index}")));
    }
    let first = Arc::clone(&order);
    group.spawn_with_priority(Priority::High, move |_| {
        first.lock().unwrap().push("high".to_string())
    });
    gate.wait();
    group.wait().unwrap();
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 6);
    assert_eq!(order[0], "high", "{order:?}");
}

#[test]
fn cancelling_stops_queued_tasks_and_no_task_runs_after_wait() {
    let scheduler = Scheduler::new(2).unwrap();
    let group = scheduler.group();
    let started = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let (started, running) = (Arc::clone(&started), Arc::clone(&running));
        group.spawn(move |group| {
            started.fetch_add(1, Ordering::SeqCst);
            running.fetch_add(1, Ordering::SeqCst);
            for _ in 0..100 {
                if group.is_cancelled() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            running.fetch_sub(1, Ordering::SeqCst);
        });
    }
    while started.load(Ordering::SeqCst) < 4 {
        std::thread::yield_now();
    }
    group.cancel();
    assert_eq!(group.wait(), Err(SchedulerError::Cancelled));
    assert_eq!(
        running.load(Ordering::SeqCst),
        0,
        "a task was still running after wait"
    );
    let after_wait = started.load(Ordering::SeqCst);
    assert!(
        after_wait < 100,
        "{after_wait} of 1000 tasks started despite the cancel"
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        started.load(Ordering::SeqCst),
        after_wait,
        "a task started after wait returned"
    );
}

#[test]
fn a_panicking_task_fails_its_group_but_not_the_pool() {
    let scheduler = Scheduler::new(2).unwrap();
    let group = scheduler.group();
    group.spawn(|_| panic!("boom in a morsel"));
    match group.wait() {
        Err(SchedulerError::TaskPanicked { message }) => assert_eq!(message, "boom in a morsel"),
        other => panic!("expected the panic to be reported, got {other:?}"),
    }
    let healthy = scheduler.group();
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ran);
    healthy.spawn(move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    healthy.wait().unwrap();
    assert_eq!(ran.load(Ordering::Relaxed), 1);
}

#[test]
fn dropping_the_scheduler_cancels_queued_tasks_instead_of_hanging() {
    let scheduler = Scheduler::new(1).unwrap();
    let group = scheduler.group();
    let (started_sender, started) = std::sync::mpsc::channel();
    let gate = Arc::new(Barrier::new(2));
    let blocked = Arc::clone(&gate);
    group.spawn(move |_| {
        started_sender.send(()).unwrap();
        blocked.wait();
    });
    let queued_ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let queued_ran = Arc::clone(&queued_ran);
        group.spawn(move |_| {
            queued_ran.fetch_add(1, Ordering::SeqCst);
        });
    }
    started.recv().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        gate.wait();
    });
    drop(scheduler);
    releaser.join().unwrap();
    assert_eq!(group.wait(), Err(SchedulerError::Cancelled));
    assert_eq!(group.pending(), 0);
    assert_eq!(
        queued_ran.load(Ordering::SeqCst),
        0,
        "queued tasks ran after shutdown began"
    );
    group.spawn(|_| {});
    assert_eq!(
        group.wait(),
        Err(SchedulerError::Cancelled),
        "a spawn on a stopped pool is cancelled"
    );
}

#[test]
fn a_pool_needs_a_thread() {
    assert!(matches!(Scheduler::new(0), Err(SchedulerError::NoThreads)));
}
