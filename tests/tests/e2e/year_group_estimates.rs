//! Groups of a date's year are estimated from the years between the date column's bounds:
//! TPC-H Q9's profit by nation and year makes 25 × 7 groups, and the plan says so.

use crate::common::{estimated_rows, tpch_session};

#[test]
fn groups_by_year_are_the_years_between_the_dates_bounds() {
    let sabot = tpch_session();
    let q9 = sabot::tpch::query(9).unwrap();
    let plan = sabot.sql(q9).unwrap().explain(false).unwrap();
    let (groups, line) = estimated_rows(&plan, |line| line.contains("HashAggregate"));
    // o_orderdate spans 1992-01-01 to 1998-08-02: seven years, for each of 25 nations.
    assert_eq!(groups, 175.0, "{line}");
    let executed = sabot.sql(q9).unwrap().execute().unwrap();
    let actual = executed
        .estimates
        .iter()
        .find(|estimate| estimate.operator == "HashAggregate")
        .unwrap()
        .actual_rows;
    assert_eq!(actual, 175);
}
