//! Plans a distributed query in one process: a session of its own with the query's tables
//! registered, Sabot's physical plan, and its stages. Every process that plans the same
//! request gets the same stages, which their fingerprints confirm.

use arrow::datatypes::SchemaRef;
use sabot_planner::StagePlan;
use sabot_shuffle::QueryRequest;

use crate::error::{Result, SabotError};
use crate::session::Sabot;

/// A query planned for `partitions` partitions.
pub(crate) struct PlannedQuery {
    /// The session that plans and runs this query's tasks in this process.
    pub(crate) session: Sabot,
    pub(crate) stages: StagePlan,
    /// The schema of the statement's result.
    pub(crate) schema: SchemaRef,
    /// Whether the statement was `EXPLAIN`: its result is the stages as text.
    pub(crate) explain: bool,
}

/// Plans `request`; the session runs tasks on `threads` threads.
pub(crate) fn plan_query(
    request: &QueryRequest,
    partitions: usize,
    threads: usize,
) -> Result<PlannedQuery> {
    let session = Sabot::builder().threads(threads.max(1)).build()?;
    for table in &request.tables {
        if !std::path::Path::new(&table.path).is_absolute() {
            return Err(SabotError::invalid_argument(format!(
                "table {} must be given by an absolute path (every process opens it), not {}",
                table.name, table.path
            )));
        }
        session.register_parquet(&table.name, &table.path)?;
    }
    let frame = session.sql(&request.sql)?;
    let schema = frame.schema();
    let (root, explain) = frame.sabot_plan()?;
    Ok(PlannedQuery {
        session,
        stages: StagePlan::cut(&root, partitions),
        schema,
        explain,
    })
}
