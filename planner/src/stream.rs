//! Streaming plans: DataFusion's optimized logical plan of a query over one stream table
//! becomes a chain of streaming operators. Scans, filters, projections and aliases map one to
//! one; an aggregation must group by one window function (`tumble`, `hop`, `session`) and may
//! group by columns besides, which become the window's keys. Each operator's output has the
//! columns of its logical node, in order, so expressions planned against the logical schemas
//! read the right columns.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, TableScan};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::PhysicalExpr;
use sabot_exec::stream::{
    AggregateCall, AggregateKind, FilterOperator, ProjectOperator, SessionWindowAggregate,
    StreamOperator, WindowAggregate, WindowSpec,
};

use crate::error::{PlanError, Result};
use crate::window_functions::{WindowFunctionKind, window_spec};

/// A streaming query: the stream table it reads and the operators its rows go through.
pub struct StreamPlan {
    pub source_table: String,
    pub operators: Vec<Box<dyn StreamOperator>>,
    /// The schema of the query's output rows.
    pub schema: SchemaRef,
}

/// Plans `plan`, which reads one of the stream tables `is_stream` recognises.
pub fn plan_stream(
    plan: &LogicalPlan,
    props: &ExecutionProps,
    is_stream: &dyn Fn(&str) -> bool,
) -> Result<StreamPlan> {
    let mut planner = StreamPlanner {
        props,
        is_stream,
        source_table: None,
        operators: Vec::new(),
    };
    planner.plan(plan)?;
    let Some(source_table) = planner.source_table else {
        return Err(unsupported("a streaming query must read a stream table"));
    };
    Ok(StreamPlan {
        source_table,
        operators: planner.operators,
        schema: Arc::new(plan.schema().as_arrow().clone()),
    })
}

/// Whether `plan` reads any table `is_stream` recognises.
pub fn reads_stream(plan: &LogicalPlan, is_stream: &dyn Fn(&str) -> bool) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && is_stream(scan.table_name.table())
        {
            found = true;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

struct StreamPlanner<'a> {
    props: &'a ExecutionProps,
    is_stream: &'a dyn Fn(&str) -> bool,
    source_table: Option<String>,
    operators: Vec<Box<dyn StreamOperator>>,
}

impl StreamPlanner<'_> {
    fn plan(&mut self, plan: &LogicalPlan) -> Result<()> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::SubqueryAlias(alias) => self.plan(&alias.input),
            LogicalPlan::Filter(filter) => {
                self.plan(&filter.input)?;
                let predicate = self.physical(&filter.predicate, filter.input.schema())?;
                let schema = Arc::new(filter.input.schema().as_arrow().clone());
                self.operators
                    .push(Box::new(FilterOperator::try_new(schema, predicate)?));
                Ok(())
            }
            LogicalPlan::Projection(projection) => {
                self.plan(&projection.input)?;
                let input = projection.input.schema();
                let expressions = projection
                    .expr
                    .iter()
                    .map(|expression| self.physical(expression, input))
                    .collect::<Result<Vec<_>>>()?;
                self.project(input, expressions, projection.schema.as_ref())
            }
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate),
            other => Err(unsupported(&format!(
                "{} in a streaming query (supported: filters, projections and windowed \
                 GROUP BY)",
                other.display()
            ))),
        }
    }

    fn scan(&mut self, scan: &TableScan) -> Result<()> {
        let table = scan.table_name.table();
        if !(self.is_stream)(table) {
            return Err(unsupported(&format!(
                "table {table} in a streaming query: only one stream table can be read"
            )));
        }
        if self.source_table.is_some() {
            return Err(unsupported("joins of streams"));
        }
        if scan.fetch.is_some() {
            return Err(unsupported("LIMIT on a stream"));
        }
        self.source_table = Some(table.to_string());
        let source = DFSchema::try_from_qualified_schema(
            scan.table_name.clone(),
            scan.source.schema().as_ref(),
        )?;
        if let Some(predicate) = scan.filters.iter().cloned().reduce(Expr::and) {
            let predicate = self.physical(&predicate, &source)?;
            let schema = Arc::new(source.as_arrow().clone());
            self.operators
                .push(Box::new(FilterOperator::try_new(schema, predicate)?));
        }
        if let Some(indices) = &scan.projection
            && !indices.iter().copied().eq(0..source.fields().len())
        {
            let expressions = indices
                .iter()
                .map(|&index| {
                    let name = source.field(index).name();
                    Arc::new(Column::new(name, index)) as Arc<dyn PhysicalExpr>
                })
                .collect();
            self.project(&source, expressions, &scan.projected_schema)?;
        }
        Ok(())
    }

    fn aggregate(&mut self, aggregate: &Aggregate) -> Result<()> {
        self.plan(&aggregate.input)?;
        let input = aggregate.input.schema();
        // Keys and aggregate arguments that are not plain columns are computed first, as
        // extra columns after the input's.
        let mut computed: Vec<Expr> = Vec::new();
        let mut column_of = |expression: &Expr| -> Result<usize> {
            match expression {
                Expr::Column(column) => Ok(input.index_of_column(column)?),
                other => {
                    computed.push(other.clone());
                    Ok(input.fields().len() + computed.len() - 1)
                }
            }
        };
        let mut window = None;
        let mut keys = Vec::new();
        // Where each group expression's value is in the window operator's output.
        let mut group_outputs = Vec::new();
        for expression in &aggregate.group_expr {
            let call = match expression {
                Expr::ScalarFunction(call) => {
                    WindowFunctionKind::of(call.func.name()).map(|kind| (kind, &call.args))
                }
                _ => None,
            };
            match call {
                Some((kind, args)) => {
                    if window.is_some() {
                        return Err(unsupported("GROUP BY with two window functions"));
                    }
                    let Some(Expr::Column(time)) = args.first() else {
                        return Err(unsupported(&format!(
                            "{}: the first argument must be the event-time column",
                            kind.name()
                        )));
                    };
                    let time_index = input.index_of_column(time)?;
                    let spec = window_spec(kind, args, input.field(time_index).data_type())?;
                    window = Some((time_index, spec));
                    group_outputs.push(0);
                }
                None => {
                    keys.push(column_of(expression)?);
                    group_outputs.push(1 + keys.len());
                }
            }
        }
        let Some((time_index, spec)) = window else {
            return Err(unsupported(
                "GROUP BY on a stream without a window: add tumble(time, size), \
                 hop(time, slide, size) or session(time, gap)",
            ));
        };
        let groups = aggregate.group_expr.len();
        let calls = aggregate
            .aggr_expr
            .iter()
            .enumerate()
            .map(|(index, expression)| {
                let name = aggregate.schema.field(groups + index).name().clone();
                aggregate_call(expression, &mut column_of, name)
            })
            .collect::<Result<Vec<_>>>()?;
        let window_input = if computed.is_empty() {
            Arc::new(input.as_arrow().clone())
        } else {
            let mut expressions: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
            let mut names = Vec::new();
            for (index, field) in input.fields().iter().enumerate() {
                expressions.push(Arc::new(Column::new(field.name(), index)));
                names.push(field.name().clone());
            }
            for (index, expression) in computed.iter().enumerate() {
                expressions.push(self.physical(expression, input)?);
                names.push(format!("__window_input_{index}"));
            }
            let operator = ProjectOperator::try_new(input.as_arrow(), expressions, names)?;
            let schema = operator.schema();
            self.operators.push(Box::new(operator));
            schema
        };
        let operator: Box<dyn StreamOperator> = match spec {
            WindowSpec::Session { gap } => Box::new(SessionWindowAggregate::try_new(
                &window_input,
                time_index,
                &keys,
                gap,
                &calls,
                0,
            )?),
            spec => Box::new(WindowAggregate::try_new(
                &window_input,
                time_index,
                &keys,
                spec,
                &calls,
                0,
            )?),
        };
        let window_output = operator.schema();
        self.operators.push(operator);
        // Reorder [window_start, window_end, keys, aggregates] into the logical node's
        // [group expressions, aggregates].
        let key_count = keys.len();
        let mut expressions: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        for output in group_outputs {
            let field = window_output.field(output);
            expressions.push(Arc::new(Column::new(field.name(), output)));
        }
        for index in 0..calls.len() {
            let position = 2 + key_count + index;
            let field = window_output.field(position);
            expressions.push(Arc::new(Column::new(field.name(), position)));
        }
        let window_schema = DFSchema::try_from(window_output.as_ref().clone())?;
        self.project(&window_schema, expressions, aggregate.schema.as_ref())
    }

    fn project(
        &mut self,
        input: &DFSchema,
        expressions: Vec<Arc<dyn PhysicalExpr>>,
        output: &DFSchema,
    ) -> Result<()> {
        let names = output
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let operator = ProjectOperator::try_new(input.as_arrow(), expressions, names)?;
        self.operators.push(Box::new(operator));
        Ok(())
    }

    fn physical(&self, expression: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            expression,
            schema,
            self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }
}

/// The window aggregate `expression` computes, named `name`; `column_of` gives the column
/// holding an argument's values.
pub fn aggregate_call(
    expression: &Expr,
    column_of: &mut dyn FnMut(&Expr) -> Result<usize>,
    name: String,
) -> Result<AggregateCall> {
    let inner = match expression {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(function) = inner else {
        return Err(unsupported(&format!(
            "{expression} in a window aggregation"
        )));
    };
    let params = &function.params;
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return Err(unsupported(&format!(
            "{expression} in a window: DISTINCT, FILTER and ORDER BY"
        )));
    }
    let kind = match function.func.name() {
        "count" => AggregateKind::Count,
        "sum" => AggregateKind::Sum,
        "min" => AggregateKind::Min,
        "max" => AggregateKind::Max,
        "avg" => AggregateKind::Avg,
        other => return Err(unsupported(&format!("aggregate {other} in a window"))),
    };
    let (kind, input) = match params.args.as_slice() {
        [Expr::Literal(value, _)] if kind == AggregateKind::Count && !value.is_null() => {
            (AggregateKind::CountRows, None)
        }
        [argument] => (kind, Some(column_of(argument)?)),
        _ => {
            return Err(unsupported(&format!(
                "{expression}: window aggregates take one argument (or count(*))"
            )));
        }
    };
    Ok(AggregateCall { kind, input, name })
}

fn unsupported(what: &str) -> PlanError {
    PlanError::Rewrite(DataFusionError::NotImplemented(what.to_string()))
}
