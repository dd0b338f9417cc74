//! `weir verify`: the offline state check, with a report a person can act on.

use std::process::ExitCode;

use weir_storage::{Engine, EngineConfig};

use crate::cli::VerifyArgs;

/// Runs the check and prints one line per state stream.
pub fn run(args: &VerifyArgs) -> ExitCode {
    if !args.data_dir.join("CURRENT").exists() {
        eprintln!(
            "weir verify: {} is not a Weir data directory (no RocksDB CURRENT file)",
            args.data_dir.display()
        );
        return ExitCode::from(2);
    }
    let engine = match Engine::open(&args.data_dir, EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "weir verify: cannot open {}: {e} (is a server still running on it?)",
                args.data_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let reports = match engine.verify_state() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir verify: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bad = 0;
    for r in &reports {
        if let Some(why) = &r.skipped {
            println!("{}: not checked: {why}", r.stream);
        } else if r.differences == 0 {
            println!("{}: ok ({} rows at offset {})", r.stream, r.rows, r.fence);
        } else {
            bad += 1;
            println!(
                "{}: {} differences at offset {}",
                r.stream, r.differences, r.fence
            );
            for d in &r.details {
                println!("  {d}");
            }
        }
    }
    println!(
        "{} state streams checked, {} with differences",
        reports.len(),
        bad
    );
    engine.shutdown();
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
