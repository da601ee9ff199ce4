//! The fraction of row pairs an equi-join keeps, from what is known of its key columns: each
//! column's distinct count in its table and that table's rows (both unfiltered; filters are in
//! the inputs' row counts). Used by the join-size estimates of plans and by the join-order
//! search.
//!
//! - One key column: each value matches its rows on the other side, spread over the larger of
//!   the two domains (a foreign key's values lie among its key's).
//! - Several columns, one of which is a key of its table on its own (distinct count at least
//!   90% of the table's rows; `c_custkey` in TPC-H Q5's `o_custkey = c_custkey AND
//!   s_nationkey = c_nationkey`): that column matches as above, and the others filter the
//!   pairs as independent equalities.
//! - Several columns, none a key alone: the columns are taken together, not as independent
//!   conditions. Each side's domain is the product of its distinct counts, at most its table's
//!   rows, and the smaller domain holds the other's values: `(ps_partkey, ps_suppkey)` keys
//!   `partsupp`, and every `lineitem` row finds its row there.

/// What is known of one side's key columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyColumn {
    /// Distinct values in the column's table.
    pub distinct: f64,
    /// Rows of the column's table.
    pub table_rows: f64,
}

/// The fraction of pairs of `left` × `right` rows that equal keys join, where `left[i]` and
/// `right[i]` are the columns of the `i`-th key equality; `None` without keys.
pub fn equi_join_selectivity(left: &[KeyColumn], right: &[KeyColumn]) -> Option<f64> {
    let at_least_one = |value: f64| value.max(1.0);
    let column_selectivity =
        |column: usize| 1.0 / at_least_one(left[column].distinct.max(right[column].distinct));
    match left.len().min(right.len()) {
        0 => None,
        1 => Some(column_selectivity(0)),
        columns => {
            let is_key = |side: &KeyColumn| side.distinct >= 0.9 * side.table_rows;
            if (0..columns).any(|column| is_key(&left[column]) || is_key(&right[column])) {
                return Some((0..columns).map(column_selectivity).product());
            }
            let domain = |side: &[KeyColumn]| {
                let combinations: f64 = side.iter().map(|column| column.distinct).product();
                let rows = side
                    .iter()
                    .map(|column| column.table_rows)
                    .fold(f64::INFINITY, f64::min);
                at_least_one(combinations.min(rows))
            };
            Some(1.0 / domain(left).min(domain(right)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(distinct: f64, table_rows: f64) -> KeyColumn {
        KeyColumn {
            distinct,
            table_rows,
        }
    }

    #[test]
    fn tpch_joins_get_the_sizes_their_keys_imply() {
        let (lineitem, orders, customer, partsupp) = (6e6, 1.5e6, 1.5e5, 8e5);
        // lineitem ⋈ orders: every line finds its order.
        let selectivity =
            equi_join_selectivity(&[column(1.5e6, lineitem)], &[column(1.5e6, orders)]).unwrap();
        assert_eq!(lineitem * orders * selectivity, lineitem);
        // orders ⋈ customer: two thirds of the customers have orders; every order one customer.
        let selectivity =
            equi_join_selectivity(&[column(1e5, orders)], &[column(1.5e5, customer)]).unwrap();
        assert_eq!(orders * customer * selectivity, orders);
        // lineitem ⋈ partsupp on both columns: one partsupp row per line.
        let selectivity = equi_join_selectivity(
            &[column(2e5, lineitem), column(1e4, lineitem)],
            &[column(2e5, partsupp), column(1e4, partsupp)],
        )
        .unwrap();
        assert!((lineitem * partsupp * selectivity - lineitem).abs() < 1.0);
        // Q5's cycle: a customer key, and a nation key that keeps one pair in 25.
        let selectivity = equi_join_selectivity(
            &[column(1e5, orders), column(25.0, 1e4)],
            &[column(1.5e5, customer), column(25.0, customer)],
        )
        .unwrap();
        assert!((orders * customer * selectivity - orders / 25.0).abs() < 1.0);
        assert_eq!(equi_join_selectivity(&[], &[]), None);
    }
}
