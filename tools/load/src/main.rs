//! The `weir-load` binary: parse flags, run, print the summary, write the
//! JSON report and the plot. Exits 1 on a failed run and 2 when the run
//! found lost, duplicated or damaged records (or, for `--workload state`,
//! a failed check), so scripts can gate on it.

use std::io::IsTerminal;

use clap::Parser;
use weir_load::cli::{Args, WorkloadArg};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    let terminal = std::io::stdout().is_terminal();
    let code = match run(&args, terminal) {
        Ok(clean) => {
            if clean {
                0
            } else {
                2
            }
        }
        Err(e) => {
            eprintln!("weir-load: {e:#}");
            if refused(&e) {
                eprintln!(
                    "weir-load: nothing listens at {}: start a server with `weir serve` \
                     (HTTP and WebSocket on 127.0.0.1:4437, QUIC on 127.0.0.1:4438 by default)",
                    args.target
                );
            }
            1
        }
    };
    std::process::exit(code);
}

/// Whether the run failed because the target refused the connection.
fn refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            || c.to_string().contains("Connection refused")
    })
}

fn run(args: &Args, terminal: bool) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.workload == WorkloadArg::Touch {
        let report = rt.block_on(weir_load::touch::run(args.to_touch_config()?))?;
        print!("{}", report.summary());
        write_json(args, &report)?;
        return Ok(report.errors == 0 && report.stale == 0);
    }
    if args.workload == WorkloadArg::Idle {
        let report = rt.block_on(weir_load::idle::run(args.to_idle_config()?))?;
        print!("{}", report.summary());
        write_json(args, &report)?;
        return Ok(true);
    }
    if args.workload == WorkloadArg::State {
        let report = rt.block_on(weir_load::state::run(args.to_state_config()?))?;
        print!("{}", report.summary());
        write_json(args, &report)?;
        return Ok(report.passed());
    }
    let config = args.to_config(terminal)?;
    let outcome = rt.block_on(weir_load::run(config))?;
    let report = &outcome.report;
    print!("{}", report.summary());
    write_json(args, report)?;
    if let Some(path) = &args.plot {
        let title = format!("weir-load {} latency ({})", report.transport, report.target);
        weir_load::plot::write_svg(path, &title, &outcome.ack, &outcome.e2e)?;
    }
    Ok(report.is_clean())
}

/// Writes the full report as JSON where `--json` says, if it does.
fn write_json(args: &Args, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
