//! Cancelling a running query stops all of its tasks.

use std::time::Duration;

use sabot::{CancelHandle, Sabot, SabotError};

use crate::common::tpch_dir;

#[test]
fn a_cancelled_query_stops_and_leaves_no_task_running() {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot::tpch::register(&sabot, tpch_dir()).unwrap();
    let cancel = CancelHandle::new();
    let frame = sabot.sql(sabot::tpch::query(9).unwrap()).unwrap();
    let running = {
        let cancel = cancel.clone();
        std::thread::spawn(move || frame.execute_with_cancel(&cancel))
    };
    while sabot.pending_tasks() == 0 && !running.is_finished() {
        std::thread::yield_now();
    }
    cancel.cancel();
    let result = running.join().unwrap();
    assert!(
        matches!(result, Err(SabotError::Cancelled)),
        "{:?}",
        result.map(|executed| executed.batches.len())
    );
    assert_eq!(
        sabot.pending_tasks(),
        0,
        "tasks of the cancelled query are still queued or running"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(sabot.pending_tasks(), 0);
    assert_eq!(sabot.stats().queries_failed, 1);
}

#[test]
fn cancelling_stops_a_subtree_datafusion_runs() {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot::tpch::register(&sabot, tpch_dir()).unwrap();
    // Window functions have no Sabot operator yet: DataFusion runs this subtree, sorting every
    // lineitem row by its comment, which takes seconds in a debug build.
    let query = "SELECT count(*) FROM (SELECT row_number() OVER (ORDER BY l_comment, l_orderkey) AS n FROM lineitem) WHERE n % 2 = 0";
    let frame = sabot.sql(query).unwrap();
    let plan = sabot.sql(query).unwrap().explain(false).unwrap();
    assert!(plan.contains("fallback: "), "{plan}");
    let cancel = CancelHandle::new();
    let running = {
        let cancel = cancel.clone();
        std::thread::spawn(move || frame.execute_with_cancel(&cancel))
    };
    std::thread::sleep(Duration::from_millis(100));
    cancel.cancel();
    let result = running.join().unwrap();
    assert!(
        matches!(result, Err(SabotError::Cancelled)),
        "{:?}",
        result.map(|executed| executed.batches.len())
    );
}
