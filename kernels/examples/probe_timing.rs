use sabot_kernels::JoinHashTable;
use std::time::Instant;
fn main() {
    for build_rows in [25u64, 10_000, 200_000] {
        let keys: Vec<u64> = (0..build_rows).collect();
        let table = JoinHashTable::build(&keys, &vec![true; keys.len()]).unwrap();
        let probe: Vec<u64> = (0..800_000u64).map(|i| (i * 7919) % build_rows).collect();
        let usable = vec![true; probe.len()];
        let (mut p, mut b) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for _ in 0..10 {
            p.clear();
            b.clear();
            table.probe(&probe, &usable, &mut p, &mut b);
        }
        println!("{build_rows}: {:?} per 800k probe", started.elapsed() / 10);
    }
}
