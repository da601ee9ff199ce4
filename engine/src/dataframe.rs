//! `DataFrame`: a lazy query with a Spark-style builder API. Builders only plan; the actions
//! (`collect`, `show`, `count`, `explain`) run the plan on the session's engine.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::{Expr, LogicalPlan, SortExpr};

use sabot_exec::{CancelHandle, PhysicalNode};

use crate::error::{Result, SabotError};
use crate::execution::{Engine, ExecutedQuery, PreparedQuery};
use crate::session::{Cluster, SessionInner};

/// How rows of two DataFrames are matched in [`DataFrame::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Rows with a match on both sides.
    Inner,
    /// Every left row; right columns null where nothing matches.
    Left,
    /// Every right row; left columns null where nothing matches.
    Right,
    /// Every row of both sides.
    Full,
    /// Left rows that have a match (left columns only).
    Semi,
    /// Left rows that have no match (left columns only).
    Anti,
}

impl From<JoinType> for datafusion::common::JoinType {
    fn from(join_type: JoinType) -> Self {
        use datafusion::common::JoinType as DataFusionJoin;
        match join_type {
            JoinType::Inner => DataFusionJoin::Inner,
            JoinType::Left => DataFusionJoin::Left,
            JoinType::Right => DataFusionJoin::Right,
            JoinType::Full => DataFusionJoin::Full,
            JoinType::Semi => DataFusionJoin::LeftSemi,
            JoinType::Anti => DataFusionJoin::LeftAnti,
        }
    }
}

/// The keys of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOn {
    /// Columns named the same on both sides; the result keeps one column per key, as
    /// SQL's `USING` and Spark's `join(other, on)` do.
    Columns(Vec<String>),
    /// (left column, right column) pairs; the result keeps every column of both sides.
    Pairs(Vec<(String, String)>),
}

impl From<&str> for JoinOn {
    fn from(column: &str) -> Self {
        JoinOn::Columns(vec![column.to_string()])
    }
}

impl<const N: usize> From<[&str; N]> for JoinOn {
    fn from(columns: [&str; N]) -> Self {
        JoinOn::Columns(columns.iter().map(|column| column.to_string()).collect())
    }
}

impl From<&[&str]> for JoinOn {
    fn from(columns: &[&str]) -> Self {
        JoinOn::Columns(columns.iter().map(|column| column.to_string()).collect())
    }
}

impl<const N: usize> From<[(&str, &str); N]> for JoinOn {
    fn from(pairs: [(&str, &str); N]) -> Self {
        JoinOn::Pairs(
            pairs
                .iter()
                .map(|(left, right)| (left.to_string(), right.to_string()))
                .collect(),
        )
    }
}

/// A lazy query. Cloning is cheap; builder methods return a new DataFrame.
#[derive(Clone)]
pub struct DataFrame {
    frame: datafusion::dataframe::DataFrame,
    session: Arc<SessionInner>,
    engine: Engine,
    /// The SQL text the frame was planned from, while no transformation changed it.
    sql: Option<String>,
}

/// A DataFrame grouped by keys, waiting for its aggregates: see [`DataFrame::group_by`].
pub struct GroupedData {
    frame: DataFrame,
    keys: Vec<Expr>,
}

impl GroupedData {
    /// One row per group: the keys, then `aggregates` (e.g. `sum(col("x")).alias("total")`).
    pub fn agg(self, aggregates: impl IntoIterator<Item = Expr>) -> Result<DataFrame> {
        let aggregates = aggregates.into_iter().collect();
        self.frame
            .map(|frame| frame.aggregate(self.keys, aggregates))
    }
}

impl DataFrame {
    pub(crate) fn new(
        frame: datafusion::dataframe::DataFrame,
        session: Arc<SessionInner>,
        engine: Engine,
    ) -> Self {
        DataFrame {
            frame,
            session,
            engine,
            sql: None,
        }
    }

    /// Remembers the SQL text the frame was planned from (a distributed session sends it).
    pub(crate) fn with_sql(mut self, sql: String) -> Self {
        self.sql = Some(sql);
        self
    }

    fn map(
        self,
        build: impl FnOnce(
            datafusion::dataframe::DataFrame,
        ) -> datafusion::error::Result<datafusion::dataframe::DataFrame>,
    ) -> Result<DataFrame> {
        let frame = build(self.frame)?;
        Ok(DataFrame {
            frame,
            sql: None,
            ..self
        })
    }

    /// The engine that will run this DataFrame's actions.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Runs this DataFrame's actions on `engine` instead of the session's default.
    pub fn with_engine(self, engine: Engine) -> Self {
        DataFrame { engine, ..self }
    }

    /// The columns of the result.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.frame.schema().as_arrow().clone())
    }

    /// Keeps the given expressions as the result's columns.
    pub fn select(self, columns: impl IntoIterator<Item = Expr>) -> Result<DataFrame> {
        let columns: Vec<Expr> = columns.into_iter().collect();
        self.map(|frame| frame.select(columns))
    }

    /// Keeps the named columns.
    pub fn select_columns(self, columns: &[&str]) -> Result<DataFrame> {
        self.map(|frame| frame.select_columns(columns))
    }

    /// Keeps the rows for which `predicate` is true.
    pub fn filter(self, predicate: Expr) -> Result<DataFrame> {
        self.map(|frame| frame.filter(predicate))
    }

    /// Adds column `name` computed by `expr`, replacing a column of that name if there is one.
    pub fn with_column(self, name: &str, expr: Expr) -> Result<DataFrame> {
        self.map(|frame| frame.with_column(name, expr))
    }

    /// Gives the DataFrame a table name, so that its columns can be qualified (`alias.column`).
    pub fn alias(self, name: &str) -> Result<DataFrame> {
        self.map(|frame| frame.alias(name))
    }

    /// Groups rows by `keys`; finish with [`GroupedData::agg`].
    pub fn group_by(self, keys: impl IntoIterator<Item = Expr>) -> GroupedData {
        GroupedData {
            frame: self,
            keys: keys.into_iter().collect(),
        }
    }

    /// Joins with `right` on `on` (column names, or column pairs), keeping rows as `how` says.
    ///
    /// An input with unqualified columns (the output of `select`, `group_by`, …) is given the
    /// table name `left` or `right` first, so that columns of the same name stay distinguishable.
    pub fn join(self, right: DataFrame, on: impl Into<JoinOn>, how: JoinType) -> Result<DataFrame> {
        let left = self.qualified_as("left")?;
        let right = right.qualified_as("right")?;
        left.join_qualified(right, on.into(), how)
    }

    fn qualified_as(self, name: &str) -> Result<DataFrame> {
        let has_unqualified = self
            .frame
            .schema()
            .iter()
            .any(|(qualifier, _)| qualifier.is_none());
        if has_unqualified {
            self.alias(name)
        } else {
            Ok(self)
        }
    }

    fn join_qualified(self, right: DataFrame, on: JoinOn, how: JoinType) -> Result<DataFrame> {
        match on {
            JoinOn::Pairs(pairs) => {
                let left_columns: Vec<&str> = pairs.iter().map(|(left, _)| left.as_str()).collect();
                let right_columns: Vec<&str> =
                    pairs.iter().map(|(_, right)| right.as_str()).collect();
                self.map(|frame| {
                    frame.join(right.frame, how.into(), &left_columns, &right_columns, None)
                })
            }
            JoinOn::Columns(keys) => self.join_using(right, &keys, how),
        }
    }

    fn join_using(self, right: DataFrame, keys: &[String], how: JoinType) -> Result<DataFrame> {
        if keys.is_empty() {
            return Err(SabotError::invalid_argument(
                "a join needs at least one key column",
            ));
        }
        let left_columns = qualified_columns(&self.frame);
        let right_columns = qualified_columns(&right.frame);
        let mut key_columns = Vec::with_capacity(keys.len());
        for key in keys {
            let left_key = find_column(&left_columns, key, "left")?;
            let right_key = find_column(&right_columns, key, "right")?;
            key_columns.push((key.as_str(), left_key, right_key));
        }
        let key_names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let joined =
            self.map(|frame| frame.join(right.frame, how.into(), &key_names, &key_names, None))?;
        if matches!(how, JoinType::Semi | JoinType::Anti) {
            return Ok(joined);
        }

        let is_key = |column: &Column| keys.contains(&column.name);
        let mut projection: Vec<Expr> = key_columns
            .into_iter()
            .map(|(name, left_key, right_key)| {
                let left_key = Expr::Column(left_key);
                let right_key = Expr::Column(right_key);
                let merged = match how {
                    JoinType::Right => right_key,
                    JoinType::Full => coalesce(vec![left_key, right_key]),
                    _ => left_key,
                };
                merged.alias(name)
            })
            .collect();
        projection.extend(
            left_columns
                .into_iter()
                .chain(right_columns)
                .filter(|column| !is_key(column))
                .map(Expr::Column),
        );
        joined.select(projection)
    }

    /// Sorts by the given keys (e.g. `col("x").sort(false, true)` for descending).
    pub fn order_by(self, keys: impl IntoIterator<Item = SortExpr>) -> Result<DataFrame> {
        let keys: Vec<SortExpr> = keys.into_iter().collect();
        self.map(|frame| frame.sort(keys))
    }

    /// Keeps the first `rows` rows.
    pub fn limit(self, rows: usize) -> Result<DataFrame> {
        self.map(|frame| frame.limit(0, Some(rows)))
    }

    /// Keeps one copy of each distinct row.
    pub fn distinct(self) -> Result<DataFrame> {
        self.map(|frame| frame.distinct())
    }

    /// Appends the rows of `other` (columns matched by position, duplicates kept: `UNION ALL`).
    pub fn union(self, other: DataFrame) -> Result<DataFrame> {
        self.map(|frame| frame.union(other.frame))
    }

    /// Runs the query and returns its result.
    pub fn collect(self) -> Result<Vec<RecordBatch>> {
        if self.reads_stream() {
            return self.stream()?.collect();
        }
        Ok(self.execute()?.batches)
    }

    /// Whether the query reads a stream table (it then runs as a stream).
    pub fn reads_stream(&self) -> bool {
        let streams = &self.session.streams;
        sabot_planner::reads_stream(self.frame.logical_plan(), &|name| streams.contains(name))
    }

    /// The query, which reads one stream table, as a [`Stream`](crate::Stream): filters,
    /// projections and a GROUP BY with one window function (`tumble(time, size)`,
    /// `hop(time, slide, size)` or `session(time, gap)`) become streaming operators.
    pub fn stream(self) -> Result<crate::Stream> {
        let (state, plan) = self.frame.into_parts();
        let optimized = state.optimize(&plan)?;
        let streams = &self.session.streams;
        let planned = sabot_planner::plan_stream(&optimized, state.execution_props(), &|name| {
            streams.contains(name)
        })?;
        let table = streams.get(&planned.source_table).ok_or_else(|| {
            SabotError::invalid_argument(format!("{} is not a stream table", planned.source_table))
        })?;
        let source = (table.factory)()?;
        let mut stream = crate::Stream::new(self.session.context().clone(), source);
        if let Some((column, delay)) = &table.watermark {
            stream = stream.with_watermark(column, *delay)?;
        }
        Ok(stream.then_all(planned.operators))
    }

    /// Runs the query and returns its result with what it scanned and any fallbacks.
    pub fn execute(self) -> Result<ExecutedQuery> {
        self.execute_with_cancel(&CancelHandle::new())
    }

    /// Like [`DataFrame::execute`], stopping with [`SabotError::Cancelled`] once `cancel` is
    /// cancelled from another thread: every task of the query stops at its next batch. (On
    /// `Engine::DataFusion` the query runs to its end.)
    pub fn execute_with_cancel(self, cancel: &CancelHandle) -> Result<ExecutedQuery> {
        if let Some(cluster) = &self.session.cluster {
            return self.execute_on_cluster(cluster);
        }
        if let Some(explained) = self.explain_statement()? {
            return explained;
        }
        let session = Arc::clone(&self.session);
        let started = Instant::now();
        let executed = self
            .prepare()
            .and_then(|prepared| prepared.run(&session, cancel));
        record(&session, &executed, started);
        executed
    }

    /// Sends the query to the session's coordinator: its SQL text, or for a frame built with
    /// DataFrame methods, SQL unparsed from its logical plan.
    fn execute_on_cluster(&self, cluster: &Cluster) -> Result<ExecutedQuery> {
        let sql = match &self.sql {
            Some(sql) => sql.clone(),
            None => datafusion::sql::unparser::plan_to_sql(self.frame.logical_plan())?.to_string(),
        };
        let tables = cluster
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let started = Instant::now();
        let request = sabot_shuffle::QueryRequest { sql, tables };
        let executed =
            crate::distributed::run_remote(&cluster.coordinator, &cluster.security, request).map(
                |batches| ExecutedQuery {
                    batches,
                    rows_scanned: 0,
                    bytes_scanned: 0,
                    fallbacks: Vec::new(),
                    estimates: Vec::new(),
                },
            );
        record(&self.session, &executed, started);
        executed
    }

    /// For an SQL `EXPLAIN [ANALYZE] <query>` on Sabot's engine, Sabot's own plan of the query
    /// (DataFusion's `EXPLAIN` would show DataFusion's plan), as the statement's two text
    /// columns; `None` for any other statement.
    fn explain_statement(&self) -> Result<Option<Result<ExecutedQuery>>> {
        if self.engine != Engine::Sabot {
            return Ok(None);
        }
        let (query, analyze) = match self.frame.logical_plan() {
            LogicalPlan::Explain(explain) => (Arc::clone(&explain.plan), false),
            LogicalPlan::Analyze(analyze) => (Arc::clone(&analyze.input), true),
            _ => return Ok(None),
        };
        let schema = self.schema();
        let inner = datafusion::dataframe::DataFrame::new(
            self.frame.clone().into_parts().0,
            query.as_ref().clone(),
        );
        let text =
            DataFrame::new(inner, Arc::clone(&self.session), self.engine).explain(analyze)?;
        let plan_type = if analyze {
            "Plan with Metrics"
        } else {
            "physical_plan"
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![plan_type])),
            Arc::new(StringArray::from(vec![text])),
        ];
        let batch = RecordBatch::try_new(schema, columns)?;
        Ok(Some(Ok(ExecutedQuery {
            batches: vec![batch],
            rows_scanned: 0,
            bytes_scanned: 0,
            fallbacks: Vec::new(),
            estimates: Vec::new(),
        })))
    }

    /// Sabot's physical plan of the query, and whether the statement was an `EXPLAIN` of it
    /// (for distributed runs, which plan the same query in every process).
    pub(crate) fn sabot_plan(self) -> Result<(Arc<PhysicalNode>, bool)> {
        let (frame, explain) = match self.frame.logical_plan() {
            LogicalPlan::Explain(explain) => (
                datafusion::dataframe::DataFrame::new(
                    self.frame.clone().into_parts().0,
                    explain.plan.as_ref().clone(),
                ),
                true,
            ),
            LogicalPlan::Analyze(_) => {
                return Err(SabotError::NotSupported {
                    message: "EXPLAIN ANALYZE of a distributed query (EXPLAIN shows its stages)"
                        .to_string(),
                });
            }
            _ => (self.frame, false),
        };
        let prepared = DataFrame::new(frame, self.session, Engine::Sabot).prepare()?;
        let root = prepared
            .sabot_root()
            .cloned()
            .ok_or_else(|| SabotError::Execution {
                message: "the query was not planned for Sabot's engine".to_string(),
            })?;
        Ok((root, explain))
    }

    /// Plans the query for this DataFrame's engine.
    fn prepare(self) -> Result<PreparedQuery> {
        let engine = self.engine;
        let runtime = self.session.runtime_handle();
        let (state, plan) = self.frame.into_parts();
        self.session
            .block_on(async move { PreparedQuery::plan(state, &plan, engine, runtime).await })
    }

    /// Runs the query and prints its result as a table.
    pub fn show(self) -> Result<()> {
        let batches = self.collect()?;
        println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
        Ok(())
    }

    /// Runs the query and returns how many rows it produces.
    pub fn count(self) -> Result<usize> {
        let batches = self
            .map(|frame| frame.aggregate(vec![], vec![count_all().alias("count")]))?
            .collect()?;
        let count = batches
            .iter()
            .find(|batch| batch.num_rows() > 0)
            .and_then(|batch| batch.column(0).as_any().downcast_ref::<Int64Array>())
            .filter(|counts| !counts.is_null(0))
            .map(|counts| counts.value(0))
            .ok_or_else(|| SabotError::Execution {
                message: "count(*) returned no value".to_string(),
            })?;
        usize::try_from(count).map_err(|_| SabotError::Execution {
            message: format!("count(*) returned a negative count {count}"),
        })
    }

    /// The plan as text: the optimized logical plan and the physical plan of this DataFrame's
    /// engine, with any fallbacks. With `analyze`, the query runs and each operator shows its
    /// measured rows and time.
    pub fn explain(self, analyze: bool) -> Result<String> {
        let engine = self.engine;
        let session = Arc::clone(&self.session);
        let prepared = self.prepare()?;
        let mut text = format!(
            "== Optimized logical plan ==\n{}\n\n== Physical plan (engine: {engine}) ==\n",
            prepared.optimized().display_indent()
        );
        for fallback in prepared.fallbacks() {
            text.push_str(&format!("fallback: {fallback}\n"));
        }
        if analyze {
            let started = Instant::now();
            let executed = prepared.run(&session, &CancelHandle::new());
            record(&session, &executed, started);
            executed?;
        }
        text.push_str(&prepared.display(analyze));
        Ok(text)
    }
}

/// Counts a query that ran (or failed) in the session's statistics.
fn record(session: &SessionInner, executed: &Result<ExecutedQuery>, started: Instant) {
    match executed {
        Ok(executed) => session.stats.record_success(executed, started.elapsed()),
        Err(_) => session.stats.record_failure(started.elapsed()),
    }
}

fn qualified_columns(frame: &datafusion::dataframe::DataFrame) -> Vec<Column> {
    frame
        .schema()
        .iter()
        .map(|(qualifier, field)| Column::new(qualifier.cloned(), field.name()))
        .collect()
}

fn find_column(columns: &[Column], name: &str, side: &str) -> Result<Column> {
    let mut matches = columns.iter().filter(|column| column.name == name);
    match (matches.next(), matches.next()) {
        (Some(column), None) => Ok(column.clone()),
        (None, _) => Err(SabotError::Plan {
            message: format!("join key '{name}' is not a column of the {side} input"),
        }),
        (Some(_), Some(_)) => Err(SabotError::Plan {
            message: format!(
                "join key '{name}' is ambiguous in the {side} input: alias the input first"
            ),
        }),
    }
}
