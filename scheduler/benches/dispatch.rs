//! Dispatch cost of Sabot's scheduler beside rayon's and tokio's, in the same run and with the
//! same number of worker threads: one empty task spawned and awaited (round trip), and a
//! fork-join of 1e6 tiny tasks.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use sabot_scheduler::Scheduler;

const FORK_JOIN_TASKS: u64 = 1_000_000;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn spawn_and_complete_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_complete_empty_task");
    let sabot = Scheduler::new(threads()).unwrap();
    group.bench_function("sabot", |b| {
        b.iter(|| {
            let tasks = sabot.group();
            tasks.spawn(|_| {});
            tasks.wait().unwrap();
        })
    });
    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build()
        .unwrap();
    group.bench_function("rayon_spawn", |b| {
        b.iter(|| {
            let (done, finished) = std::sync::mpsc::sync_channel(1);
            rayon_pool.spawn(move || done.send(()).unwrap());
            finished.recv().unwrap();
        })
    });
    group.bench_function("rayon_scope", |b| {
        b.iter(|| rayon_pool.scope(|scope| scope.spawn(|_| {})))
    });
    let tokio_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads())
        .build()
        .unwrap();
    group.bench_function("tokio_spawn", |b| {
        b.iter(|| tokio_runtime.block_on(async { tokio::spawn(async {}).await.unwrap() }))
    });
    group.finish();
}

fn fork_join_tiny_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("fork_join_1e6_tiny_tasks");
    group.sample_size(10);
    let sabot = Scheduler::new(threads()).unwrap();
    group.bench_function("sabot", |b| {
        b.iter(|| {
            let sum = Arc::new(AtomicU64::new(0));
            let tasks = sabot.group();
            for value in 0..FORK_JOIN_TASKS {
                let sum = Arc::clone(&sum);
                tasks.spawn(move |_| {
                    sum.fetch_add(black_box(value), Ordering::Relaxed);
                });
            }
            tasks.wait().unwrap();
            sum.load(Ordering::Relaxed)
        })
    });
    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build()
        .unwrap();
    group.bench_function("rayon_scope", |b| {
        b.iter(|| {
            let sum = AtomicU64::new(0);
            rayon_pool.scope(|scope| {
                for value in 0..FORK_JOIN_TASKS {
                    let sum = &sum;
                    scope.spawn(move |_| {
                        sum.fetch_add(black_box(value), Ordering::Relaxed);
                    });
                }
            });
            sum.load(Ordering::Relaxed)
        })
    });
    let tokio_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads())
        .build()
        .unwrap();
    group.bench_function("tokio_spawn", |b| {
        b.iter(|| {
            tokio_runtime.block_on(async {
                let sum = Arc::new(AtomicU64::new(0));
                let mut handles = Vec::with_capacity(FORK_JOIN_TASKS as usize);
                for value in 0..FORK_JOIN_TASKS {
                    let sum = Arc::clone(&sum);
                    handles.push(tokio::spawn(async move {
                        sum.fetch_add(black_box(value), Ordering::Relaxed);
                    }));
                }
                for handle in handles {
                    handle.await.unwrap();
                }
                sum.load(Ordering::Relaxed)
            })
        })
    });
    group.finish();
}

criterion_group!(dispatch, spawn_and_complete_one, fork_join_tiny_tasks);
criterion_main!(dispatch);
