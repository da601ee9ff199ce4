//! Shared fixtures: the SF 0.1 TPC-H data set (generated once, cached under `target/`) and a
//! session with its tables registered.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sabot::Sabot;
use sabot::tpch::generate;

/// Scale factor of the answer tests.
pub const SCALE_FACTOR: f64 = 0.1;

/// The repository's root directory.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The SF 0.1 data set: reused from `target/sabot-test-data/` when complete, else generated there.
pub fn tpch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = repository_root()
            .join("target")
            .join("sabot-test-data")
            .join(format!("tpch-sf{SCALE_FACTOR}"));
        if !generate::is_complete(&dir) {
            generate::generate(SCALE_FACTOR, &dir, 2, &|_| {}).expect("generate TPC-H SF 0.1");
        }
        dir
    })
}

/// One session shared by the TPC-H tests, with the eight tables registered.
pub fn tpch_session() -> &'static Sabot {
    static SESSION: OnceLock<Sabot> = OnceLock::new();
    SESSION.get_or_init(|| {
        let sabot = Sabot::builder()
            .threads(2)
            .build()
            .expect("start a session");
        sabot::tpch::register(&sabot, tpch_dir()).expect("register the TPC-H tables");
        sabot
    })
}
