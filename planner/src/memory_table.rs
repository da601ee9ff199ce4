//! In-memory tables with the statistics a Parquet file's footer would give: DataFusion's
//! `MemTable` for scanning and inserting, plus the smallest and largest value of each integer,
//! date and short-decimal column, computed once when the table is registered. Group keys read
//! from such a column then pack into the range it spans, as Parquet columns' keys do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// A table of record batches held in memory, with per-column value bounds.
#[derive(Debug)]
pub struct MemoryTable {
    table: MemTable,
    /// Per column, the smallest and largest value of every batch registered.
    bounds: Vec<Option<(i64, i64)>>,
    /// Set once rows are inserted after registration: the bounds may no longer hold.
    inserted: AtomicBool,
}

impl MemoryTable {
    /// A table of `schema` holding `partitions` (each a list of batches).
    pub fn try_new(schema: SchemaRef, partitions: Vec<Vec<RecordBatch>>) -> Result<MemoryTable> {
        let bounds = (0..schema.fields().len())
            .map(|column| {
                sabot_kernels::union_of_ranges(
                    partitions
                        .iter()
                        .flatten()
                        .filter(|batch| batch.num_rows() > 0)
                        .map(|batch| sabot_kernels::value_range(batch.column(column).as_ref())),
                )
            })
            .collect();
        Ok(MemoryTable {
            table: MemTable::try_new(schema, partitions)?,
            bounds,
            inserted: AtomicBool::new(false),
        })
    }

    /// The smallest and largest value of column `index`, when it is an integer, date or short
    /// decimal column with at least one row and no rows were inserted since registration.
    pub fn column_bounds(&self, index: usize) -> Option<(i64, i64)> {
        if self.inserted.load(Ordering::Acquire) {
            return None;
        }
        self.bounds.get(index).copied().flatten()
    }

    /// DataFusion's table underneath, which holds the batches.
    pub fn batches(&self) -> &MemTable {
        &self.table
    }
}

#[async_trait]
impl TableProvider for MemoryTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.table.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.table.supports_filters_pushdown(filters)
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inserted.store(true, Ordering::Release);
        self.table.insert_into(state, input, insert_op).await
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn bounds_span_every_batch_and_skip_types_that_do_not_pack() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ]));
        let batch = |ids: Vec<Option<i64>>, names: Vec<&str>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(names)),
                ],
            )
            .unwrap()
        };
        let table = MemoryTable::try_new(
            Arc::clone(&schema),
            vec![
                vec![batch(vec![Some(5), None], vec!["a", "b"])],
                vec![batch(vec![Some(-3), Some(40)], vec!["c", "d"])],
            ],
        )
        .unwrap();
        assert_eq!(table.column_bounds(0), Some((-3, 40)));
        assert_eq!(table.column_bounds(1), None);
        assert_eq!(table.column_bounds(2), None);
        let empty = MemoryTable::try_new(Arc::clone(&schema), vec![Vec::new()]).unwrap();
        assert_eq!(empty.column_bounds(0), None);
    }
}
