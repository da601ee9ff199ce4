//! Expressions for the DataFrame API: column references, literals, aggregates and sort keys.
//! They are DataFusion's logical expressions, re-exported so users need no other import.

pub use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
pub use datafusion::logical_expr::{Expr, SortExpr, case, when};
pub use datafusion::prelude::{cast, col, lit};

/// Ascending sort key, nulls last.
pub fn asc(expr: Expr) -> SortExpr {
    expr.sort(true, false)
}

/// Descending sort key, nulls first.
pub fn desc(expr: Expr) -> SortExpr {
    expr.sort(false, true)
}
