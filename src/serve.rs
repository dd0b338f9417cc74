//! `weir serve`: open the engine, serve until a signal, then shut down in
//! order (stop accepting, drain connections, flush the commit pipeline,
//! close RocksDB).

use anyhow::Context;
use weir_storage::Engine;

use crate::config::Config;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let engine_config = config.engine_config()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let engine = Engine::open(&config.data_dir, engine_config)
        .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        durability = %config.durability,
        streams = engine.list_streams(None, usize::MAX).len(),
        "weir storage engine open"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        shutdown_signal().await;
        tracing::info!("shutdown requested; draining");
    });
    engine.shutdown();
    drop(engine);
    tracing::info!("weir stopped cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
