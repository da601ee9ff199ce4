//! Join ordering by cost over a join graph: relations with estimated rows, and equi-join edges
//! with selectivities. Up to [`DP_MAX_RELATIONS`] relations, dynamic programming over connected
//! subgraphs and their connected complements (DPccp, Moerkotte & Neumann, VLDB 2006) finds the
//! cheapest bushy tree without ever considering a cross product; beyond, a greedy pass joins the
//! pair with the smallest result first. The cost of a tree is the rows of every intermediate
//! result, plus the rows of every hash table built (the smaller input of each join), plus the
//! rows probing each table weighted by whether the table stays in cache ([`join_cost`]).

use std::collections::HashMap;

/// Relations above which the greedy order is used.
pub(crate) const DP_MAX_RELATIONS: usize = 12;

/// An equi-join predicate between two relations, and the fraction of pairs it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge {
    pub(crate) left: usize,
    pub(crate) right: usize,
    pub(crate) selectivity: f64,
}

/// A join tree over relation indexes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JoinTree {
    Relation(usize),
    Join(Box<JoinTree>, Box<JoinTree>),
}

impl JoinTree {
    /// The relations under this tree, as a bit set.
    pub(crate) fn relations(&self) -> u64 {
        match self {
            JoinTree::Relation(relation) => 1 << relation,
            JoinTree::Join(left, right) => left.relations() | right.relations(),
        }
    }
}

/// The join graph and the estimates its plans are costed with.
pub(crate) struct JoinGraph {
    rows: Vec<f64>,
    edges: Vec<Edge>,
    /// Per relation, its neighbours as a bit set.
    neighbours: Vec<u64>,
    cardinalities: HashMap<u64, f64>,
}

/// The best plan found for a set of relations.
#[derive(Clone)]
struct Plan {
    tree: JoinTree,
    cost: f64,
}

impl JoinGraph {
    pub(crate) fn new(rows: Vec<f64>, edges: Vec<Edge>) -> JoinGraph {
        let mut neighbours = vec![0u64; rows.len()];
        for edge in &edges {
            neighbours[edge.left] |= 1 << edge.right;
            neighbours[edge.right] |= 1 << edge.left;
        }
        JoinGraph {
            rows,
            edges,
            neighbours,
            cardinalities: HashMap::new(),
        }
    }

    /// Whether every relation is reachable from every other through edges.
    pub(crate) fn is_connected(&self) -> bool {
        let all = self.all();
        let mut reached = 1u64;
        loop {
            let next = reached | self.neighbourhood(reached);
            if next == reached {
                return reached == all;
            }
            reached = next;
        }
    }

    fn all(&self) -> u64 {
        if self.rows.len() == 64 {
            u64::MAX
        } else {
            (1u64 << self.rows.len()) - 1
        }
    }

    /// The relations joined to some relation of `set`, outside it.
    fn neighbourhood(&self, set: u64) -> u64 {
        let mut around = 0;
        for relation in members(set) {
            around |= self.neighbours[relation];
        }
        around & !set
    }

    /// The estimated rows of joining `set`: the product of its relations' rows and of the
    /// selectivities of the edges inside it.
    pub(crate) fn cardinality(&mut self, set: u64) -> f64 {
        if let Some(known) = self.cardinalities.get(&set) {
            return *known;
        }
        let mut rows: f64 = members(set).map(|relation| self.rows[relation]).product();
        for edge in &self.edges {
            if set & (1 << edge.left) != 0 && set & (1 << edge.right) != 0 {
                rows *= edge.selectivity;
            }
        }
        let rows = rows.max(1.0);
        self.cardinalities.insert(set, rows);
        rows
    }

    /// The cheapest join tree of a connected graph (`None` for an empty or unconnected one).
    pub(crate) fn best_tree(&mut self) -> Option<JoinTree> {
        if self.rows.is_empty() || self.rows.len() > 64 || !self.is_connected() {
            return None;
        }
        if self.rows.len() > DP_MAX_RELATIONS {
            return Some(self.greedy_tree());
        }
        let mut best: HashMap<u64, Plan> = (0..self.rows.len())
            .map(|relation| {
                (
                    1u64 << relation,
                    Plan {
                        tree: JoinTree::Relation(relation),
                        cost: 0.0,
                    },
                )
            })
            .collect();
        for (left, right) in self.connected_pairs() {
            self.consider(&mut best, left, right);
        }
        best.remove(&self.all()).map(|plan| plan.tree)
    }

    /// Records `left ⋈ right` as the plan of their union if it is the cheapest so far.
    fn consider(&mut self, best: &mut HashMap<u64, Plan>, left: u64, right: u64) {
        let (Some(left_plan), Some(right_plan)) = (best.get(&left), best.get(&right)) else {
            return;
        };
        let (left_rows, right_rows) = (self.cardinality(left), self.cardinality(right));
        let union = left | right;
        let cost = left_plan.cost
            + right_plan.cost
            + join_cost(left_rows, right_rows, self.cardinality(union));
        if best.get(&union).is_none_or(|known| cost < known.cost) {
            let tree = JoinTree::Join(
                Box::new(left_plan.tree.clone()),
                Box::new(right_plan.tree.clone()),
            );
            best.insert(union, Plan { tree, cost });
        }
    }

    /// Every pair of disjoint connected sets joined by an edge, each pair once, in an order
    /// where both sets' own pairs come first (DPccp's enumeration).
    fn connected_pairs(&self) -> Vec<(u64, u64)> {
        let mut pairs = Vec::new();
        let count = self.rows.len();
        for start in (0..count).rev() {
            let first = 1u64 << start;
            let below = (first << 1) - 1;
            let mut subgraphs = vec![first];
            self.grow(first, below, &mut subgraphs);
            for subgraph in subgraphs {
                self.complements(subgraph, &mut pairs);
            }
        }
        pairs
    }

    /// Adds every connected set that extends `set` by neighbours outside `excluded`
    /// (EnumerateCsgRec).
    fn grow(&self, set: u64, excluded: u64, found: &mut Vec<u64>) {
        let around = self.neighbourhood(set) & !excluded;
        if around == 0 {
            return;
        }
        let subsets: Vec<u64> = non_empty_subsets(around).collect();
        for subset in &subsets {
            found.push(set | subset);
        }
        for subset in subsets {
            self.grow(set | subset, excluded | around, found);
        }
    }

    /// The connected sets joined to `subgraph` that complete it into a pair (EnumerateCmp).
    fn complements(&self, subgraph: u64, pairs: &mut Vec<(u64, u64)>) {
        let lowest = subgraph.trailing_zeros();
        let up_to_lowest = (1u64 << (lowest + 1)) - 1;
        let excluded = up_to_lowest | subgraph;
        let around = self.neighbourhood(subgraph) & !excluded;
        for relation in members(around).collect::<Vec<_>>().into_iter().rev() {
            let start = 1u64 << relation;
            pairs.push((subgraph, start));
            let below_start = ((start << 1) - 1) & around;
            let mut grown = Vec::new();
            self.grow(start, excluded | below_start, &mut grown);
            for complement in grown {
                pairs.push((subgraph, complement));
            }
        }
    }

    /// Joins, again and again, the two connected trees whose join is smallest.
    fn greedy_tree(&mut self) -> JoinTree {
        let mut trees: Vec<JoinTree> = (0..self.rows.len()).map(JoinTree::Relation).collect();
        while trees.len() > 1 {
            let mut chosen: Option<(usize, usize, f64)> = None;
            for left in 0..trees.len() {
                for right in left + 1..trees.len() {
                    let (left_set, right_set) = (trees[left].relations(), trees[right].relations());
                    if self.neighbourhood(left_set) & right_set == 0 {
                        continue;
                    }
                    let rows = self.cardinality(left_set | right_set);
                    if chosen.is_none_or(|(_, _, best)| rows < best) {
                        chosen = Some((left, right, rows));
                    }
                }
            }
            let Some((left, right, _)) = chosen else {
                break;
            };
            let right_tree = trees.remove(right);
            let left_tree = trees.remove(left);
            trees.push(JoinTree::Join(Box::new(left_tree), Box::new(right_tree)));
        }
        trees.remove(0)
    }
}

/// Build rows up to which a join's hash table stays in a core's cache (a few MiB of keys and
/// row references).
const CACHED_BUILD_ROWS: f64 = 65_536.0;
/// What probing a row costs, in output rows: little while the table is cached, about a cache
/// miss beyond.
const CACHED_PROBE: f64 = 0.1;
const UNCACHED_PROBE: f64 = 0.5;

/// The cost of one join of inputs of `left_rows` and `right_rows` rows into `output_rows`, in
/// output rows: the hash table is built on the smaller input (a row inserted costs about an
/// output row) and the larger probes it.
fn join_cost(left_rows: f64, right_rows: f64, output_rows: f64) -> f64 {
    let (build, probe) = (left_rows.min(right_rows), left_rows.max(right_rows));
    let probe_cost = if build <= CACHED_BUILD_ROWS {
        CACHED_PROBE
    } else {
        UNCACHED_PROBE
    };
    output_rows + build + probe * probe_cost
}

/// The members of a bit set, ascending.
fn members(set: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |bit| set & (1u64 << bit) != 0)
}

/// Every non-empty subset of `set`.
fn non_empty_subsets(set: u64) -> impl Iterator<Item = u64> {
    let mut subset = 0u64;
    std::iter::from_fn(move || {
        subset = subset.wrapping_sub(set) & set;
        (subset != 0).then_some(subset)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(left: usize, right: usize, selectivity: f64) -> Edge {
        Edge {
            left,
            right,
            selectivity,
        }
    }

    /// Every tree over `set` made of connected parts: the exhaustive reference.
    fn all_trees(graph: &JoinGraph, set: u64) -> Vec<JoinTree> {
        if set.count_ones() == 1 {
            return vec![JoinTree::Relation(set.trailing_zeros() as usize)];
        }
        let mut trees = Vec::new();
        for left in non_empty_subsets(set).filter(|left| *left != set) {
            let right = set & !left;
            if left > right || graph.neighbourhood(left) & right == 0 {
                continue;
            }
            for left_tree in all_trees(graph, left) {
                for right_tree in all_trees(graph, right) {
                    trees.push(JoinTree::Join(
                        Box::new(left_tree.clone()),
                        Box::new(right_tree),
                    ));
                }
            }
        }
        trees
    }

    fn cost(graph: &mut JoinGraph, tree: &JoinTree) -> f64 {
        match tree {
            JoinTree::Relation(_) => 0.0,
            JoinTree::Join(left, right) => {
                let (left_rows, right_rows) = (
                    graph.cardinality(left.relations()),
                    graph.cardinality(right.relations()),
                );
                let output = graph.cardinality(tree.relations());
                cost(graph, left) + cost(graph, right) + join_cost(left_rows, right_rows, output)
            }
        }
    }

    fn connected(tree: &JoinTree, graph: &JoinGraph) -> bool {
        match tree {
            JoinTree::Relation(_) => true,
            JoinTree::Join(left, right) => {
                graph.neighbourhood(left.relations()) & right.relations() != 0
                    && connected(left, graph)
                    && connected(right, graph)
            }
        }
    }

    #[test]
    fn dpccp_finds_the_cheapest_tree_of_every_shape_of_graph() {
        let rows = vec![6e6, 1.5e6, 1.5e5, 1e4, 25.0, 5.0];
        let shapes: Vec<Vec<Edge>> = vec![
            // A chain, a star, a cycle and a clique.
            (0..5).map(|i| edge(i, i + 1, 1.0 / rows[i + 1])).collect(),
            (1..6).map(|i| edge(0, i, 1.0 / rows[i])).collect(),
            (0..6)
                .map(|i| edge(i, (i + 1) % 6, 1.0 / rows[(i + 1) % 6].max(rows[i])))
                .collect(),
            (0..6)
                .flat_map(|i| (i + 1..6).map(move |j| (i, j)))
                .map(|(i, j)| edge(i, j, 1.0 / rows[j]))
                .collect(),
        ];
        for edges in shapes {
            let mut graph = JoinGraph::new(rows.clone(), edges);
            let chosen = graph.best_tree().unwrap();
            assert_eq!(chosen.relations(), graph.all());
            assert!(connected(&chosen, &graph), "no cross products: {chosen:?}");
            let chosen_cost = cost(&mut graph, &chosen);
            let every = all_trees(&graph, graph.all());
            let cheapest = every
                .iter()
                .map(|tree| cost(&mut graph, tree))
                .fold(f64::INFINITY, f64::min);
            assert!(
                (chosen_cost - cheapest).abs() <= cheapest * 1e-9,
                "{chosen_cost} vs {cheapest} for {chosen:?}"
            );
        }
    }

    #[test]
    fn a_large_input_probes_the_cached_table_first_even_for_more_rows_out() {
        // TPC-H Q5's shape: `lineitem` (0) joins a year of `orders` (1, 227K rows) and the
        // suppliers of one region (2, 2,000 rows). Orders first leaves fewer rows (910K against
        // 1.2M), but its table is out of cache for 6M probes; the suppliers' table is not.
        let mut graph = JoinGraph::new(
            vec![6e6, 227_000.0, 2_000.0],
            vec![edge(0, 1, 1.0 / 1.5e6), edge(0, 2, 1.0 / 10_000.0)],
        );
        assert!(graph.cardinality(0b011) < graph.cardinality(0b101));
        let tree = graph.best_tree().unwrap();
        let JoinTree::Join(first, second) = &tree else {
            panic!("{tree:?}")
        };
        let inner = if first.relations() == 0b010 {
            second
        } else {
            first
        };
        assert_eq!(inner.relations(), 0b101, "{tree:?}");
    }

    #[test]
    fn many_relations_get_a_greedy_tree_and_unconnected_graphs_none() {
        let count = DP_MAX_RELATIONS + 3;
        let rows: Vec<f64> = (0..count).map(|i| 10.0 + i as f64).collect();
        let edges = (1..count).map(|i| edge(i - 1, i, 0.1)).collect();
        let mut chain = JoinGraph::new(rows.clone(), edges);
        let tree = chain.best_tree().unwrap();
        assert_eq!(tree.relations(), chain.all());
        assert!(connected(&tree, &chain));
        let mut apart = JoinGraph::new(vec![1.0, 2.0, 3.0], vec![edge(0, 1, 0.5)]);
        assert!(apart.best_tree().is_none());
    }
}
