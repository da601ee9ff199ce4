//! End-to-end tests of the `sabot` library: TPC-H answers on both engines, bad input, and the
//! DataFrame API. One test binary, so the TPC-H data set is generated once.

mod aggregation_key_filters;
mod analyze_statistics;
mod bad_input;
mod cancellation;
mod common;
mod count_distinct;
mod dataframe_api;
mod facts_and_dims;
mod gpu_joins;
mod having_estimates;
mod join_correlation_estimates;
mod join_key_filters;
mod join_order;
mod narrow_decimals;
mod nexmark_streams;
mod page_pruning;
mod scan_pruning;
mod shared_subqueries;
mod streaming_sql;
mod tpch_answers;
mod year_group_estimates;
