//! What the memory benches (`idle`, `waiters`) share: the process's
//! resident memory, the count argument, and a throwaway engine.

use weir_storage::{Durability, Engine, EngineConfig};

/// This process's resident set size, bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// The first numeric argument (`cargo bench --bench NAME -- N`), or `default`.
pub fn count_arg(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// An engine in a temporary directory (buffered durability: these benches
/// measure memory, not fsyncs), with its directory and configuration.
pub fn engine() -> (Engine, tempfile::TempDir, EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        durability: Durability::Buffered,
        ..EngineConfig::default()
    };
    let e = Engine::open(dir.path(), config.clone()).unwrap();
    (e, dir, config)
}
