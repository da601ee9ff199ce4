//! Row-at-a-time streaming operators: filter, projection and a program's own batch function.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::PhysicalExpr;

use super::operator::{StreamEvent, StreamOperator};
use crate::error::{ExecError, Result};

const FILTER: &str = "stream filter";
const PROJECT: &str = "stream projection";

/// Keeps the rows for which a predicate is true.
pub struct FilterOperator {
    schema: SchemaRef,
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    /// Filters rows of `schema` by `predicate`, which must be boolean.
    pub fn try_new(schema: SchemaRef, predicate: Arc<dyn PhysicalExpr>) -> Result<FilterOperator> {
        let data_type = predicate
            .data_type(&schema)
            .map_err(ExecError::datafusion(FILTER))?;
        if data_type != DataType::Boolean {
            return Err(ExecError::InvalidStream(format!(
                "a filter predicate must be boolean, {predicate} is {data_type}"
            )));
        }
        Ok(FilterOperator { schema, predicate })
    }
}

impl StreamOperator for FilterOperator {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Vec<StreamEvent>) -> Result<()> {
        let mask = self
            .predicate
            .evaluate(&batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(ExecError::datafusion(FILTER))?;
        let kept =
            filter_record_batch(&batch, mask.as_boolean()).map_err(ExecError::arrow(FILTER))?;
        if kept.num_rows() > 0 {
            out.push(StreamEvent::Batch(kept));
        }
        Ok(())
    }
}

/// Computes new columns from each row.
pub struct ProjectOperator {
    schema: SchemaRef,
    expressions: Vec<Arc<dyn PhysicalExpr>>,
}

impl ProjectOperator {
    /// Projects rows of `input` onto `expressions`, named `names`.
    pub fn try_new(
        input: &Schema,
        expressions: Vec<Arc<dyn PhysicalExpr>>,
        names: Vec<String>,
    ) -> Result<ProjectOperator> {
        let fields = expressions
            .iter()
            .zip(names)
            .map(|(expression, name)| {
                let data_type = expression.data_type(input)?;
                let nullable = expression.nullable(input)?;
                Ok(Field::new(name, data_type, nullable))
            })
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(ExecError::datafusion(PROJECT))?;
        Ok(ProjectOperator {
            schema: Arc::new(Schema::new(fields)),
            expressions,
        })
    }
}

impl StreamOperator for ProjectOperator {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Vec<StreamEvent>) -> Result<()> {
        let columns = self
            .expressions
            .iter()
            .map(|expression| {
                expression
                    .evaluate(&batch)
                    .and_then(|value| value.into_array(batch.num_rows()))
            })
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(ExecError::datafusion(PROJECT))?;
        let projected = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(ExecError::arrow(PROJECT))?;
        out.push(StreamEvent::Batch(projected));
        Ok(())
    }
}

/// The batch function of a [`MapOperator`].
pub type BatchFunction = Box<dyn FnMut(RecordBatch) -> Result<RecordBatch> + Send>;

/// Applies a program's function to every batch.
pub struct MapOperator {
    schema: SchemaRef,
    function: BatchFunction,
}

impl MapOperator {
    /// Maps batches with `function`, which must return batches of `schema`.
    pub fn new(schema: SchemaRef, function: BatchFunction) -> MapOperator {
        MapOperator { schema, function }
    }
}

impl StreamOperator for MapOperator {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Vec<StreamEvent>) -> Result<()> {
        let mapped = (self.function)(batch)?;
        if mapped.schema().fields() != self.schema.fields() {
            return Err(ExecError::InvalidStream(format!(
                "a map function returned schema {:?}, not the declared {:?}",
                mapped.schema(),
                self.schema
            )));
        }
        out.push(StreamEvent::Batch(mapped));
        Ok(())
    }
}
