//! TPC-H: the eight tables, the 22 queries (the specification's validation parameters), data
//! generation, the benchmark runner and the check of results against reference answers.

pub mod answers;
pub mod bench;
pub mod generate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Result, SabotError};
use crate::session::Sabot;

/// Number of TPC-H queries.
pub const QUERY_COUNT: usize = 22;

/// The eight TPC-H tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Customer,
    Lineitem,
    Nation,
    Orders,
    Part,
    Partsupp,
    Region,
    Supplier,
}

impl Table {
    /// All tables, in alphabetical order.
    pub const ALL: [Table; 8] = [
        Table::Customer,
        Table::Lineitem,
        Table::Nation,
        Table::Orders,
        Table::Part,
        Table::Partsupp,
        Table::Region,
        Table::Supplier,
    ];

    /// The table's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Customer => "customer",
            Table::Lineitem => "lineitem",
            Table::Nation => "nation",
            Table::Orders => "orders",
            Table::Part => "part",
            Table::Partsupp => "partsupp",
            Table::Region => "region",
            Table::Supplier => "supplier",
        }
    }

    /// Where the table's Parquet file lies in a data set directory.
    pub fn path_in(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.parquet", self.name()))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const QUERIES: [&str; QUERY_COUNT] = [
    include_str!("queries/q1.sql"),
    include_str!("queries/q2.sql"),
    include_str!("queries/q3.sql"),
    include_str!("queries/q4.sql"),
    include_str!("queries/q5.sql"),
    include_str!("queries/q6.sql"),
    include_str!("queries/q7.sql"),
    include_str!("queries/q8.sql"),
    include_str!("queries/q9.sql"),
    include_str!("queries/q10.sql"),
    include_str!("queries/q11.sql"),
    include_str!("queries/q12.sql"),
    include_str!("queries/q13.sql"),
    include_str!("queries/q14.sql"),
    include_str!("queries/q15.sql"),
    include_str!("queries/q16.sql"),
    include_str!("queries/q17.sql"),
    include_str!("queries/q18.sql"),
    include_str!("queries/q19.sql"),
    include_str!("queries/q20.sql"),
    include_str!("queries/q21.sql"),
    include_str!("queries/q22.sql"),
];

/// The SQL text of TPC-H query `number` (1 to 22).
pub fn query(number: usize) -> Result<&'static str> {
    number
        .checked_sub(1)
        .and_then(|index| QUERIES.get(index))
        .copied()
        .ok_or_else(|| {
            SabotError::invalid_argument(format!(
                "there is no TPC-H query {number}: queries are 1 to {QUERY_COUNT}"
            ))
        })
}

/// Registers the eight tables found in `dir` (`<dir>/<table>.parquet`) with `sabot`.
pub fn register(sabot: &Sabot, dir: &Path) -> Result<()> {
    for table in Table::ALL {
        sabot.register_parquet(table.name(), table.path_in(dir))?;
    }
    Ok(())
}

/// The directory under `data_dir` where the data set at scale factor `sf` is cached.
pub fn cache_dir(data_dir: &Path, sf: f64) -> PathBuf {
    data_dir.join("tpch").join(format!("sf{sf}"))
}

/// A list of query numbers such as `1,3,5-9`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySelection(pub Vec<usize>);

impl QuerySelection {
    /// All 22 queries.
    pub fn all() -> Self {
        QuerySelection((1..=QUERY_COUNT).collect())
    }
}

impl FromStr for QuerySelection {
    type Err = SabotError;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |item: &str| {
            SabotError::invalid_argument(format!(
                "bad query list item '{item}': expected numbers 1 to {QUERY_COUNT} or ranges like 5-9"
            ))
        };
        let number = |item: &str, digits: &str| -> Result<usize> {
            match digits.trim().parse::<usize>() {
                Ok(n) if (1..=QUERY_COUNT).contains(&n) => Ok(n),
                _ => Err(bad(item)),
            }
        };
        let mut queries = Vec::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            match item.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (number(item, first)?, number(item, last)?);
                    if first > last {
                        return Err(bad(item));
                    }
                    queries.extend(first..=last);
                }
                None => queries.push(number(item, item)?),
            }
        }
        if queries.is_empty() {
            return Err(SabotError::invalid_argument("the query list is empty"));
        }
        Ok(QuerySelection(queries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lists_parse_numbers_and_ranges() {
        let selection: QuerySelection = "1,3,5-9, 22".parse().unwrap();
        assert_eq!(selection.0, vec![1, 3, 5, 6, 7, 8, 9, 22]);
    }

    #[test]
    fn query_lists_reject_out_of_range_and_backward_ranges() {
        for bad in ["0", "23", "9-5", "x", "", "1-"] {
            assert!(bad.parse::<QuerySelection>().is_err(), "accepted '{bad}'");
        }
    }

    #[test]
    fn every_query_is_embedded() {
        for number in 1..=QUERY_COUNT {
            assert!(query(number).unwrap().to_lowercase().contains("select"));
        }
        assert!(query(0).is_err());
        assert!(query(23).is_err());
    }
}
