//! `weir serve`: open the engine, serve until a signal, then shut down in
//! order (stop accepting, drain connections, flush the commit pipeline,
//! close RocksDB).

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use weir_storage::Engine;

use crate::config::Config;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let engine_config = config.engine_config()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let engine = Engine::open(&config.data_dir, engine_config)
        .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir-io")
        .on_thread_park(crate::memory::on_worker_park)
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async {
        // Handlers are installed before readiness is announced, so a signal
        // sent right after the announcement is always handled gracefully.
        let signals = Signals::install()?;
        tracing::info!(
            data_dir = %config.data_dir.display(),
            durability = %config.durability,
            streams = engine.list_streams(None, usize::MAX).len(),
            "weir storage engine open"
        );
        let listener = tokio::net::TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("binding the HTTP door to {}", config.http.addr))?;
        let auth = config.auth()?;
        config.warn_if_open();
        let mut http_config = config.http_config();
        http_config.auth = auth.clone();
        http_config.ws.session.auth = auth.clone();
        http_config.tls = config.http_tls()?;
        let mut quic_config = config.quic_config();
        quic_config.session.auth = auth;
        // `serve` sets it too, best effort; a name the operator chose and the
        // kernel refuses stops startup here instead.
        if let Some(cc) = config
            .http
            .tcp_congestion
            .as_deref()
            .filter(|c| *c != "system")
        {
            weir_net::http::set_congestion(&listener, cc).context("configuring the HTTP door")?;
        }
        tracing::info!(
            addr = %listener.local_addr()?,
            tls = http_config.tls.is_some(),
            "HTTP door listening (Durable Streams at /v1/stream/, the WebSocket door at /v1/ws)"
        );
        let quic = weir_net::quic::QuicServer::bind(engine.clone(), quic_config)
            .with_context(|| format!("binding the QUIC door to {}", config.quic.addr))?;
        // One signal stops every door; each drains its own connections.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let ops = match config.http.ops_addr {
            None => None,
            Some(a) => {
                let l = tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding the operations door to {a}"))?;
                tracing::info!(addr = %l.local_addr()?, "operations door listening (/metrics, /healthz, /readyz)");
                Some(l)
            }
        };
        let http = weir_net::http::serve_with_ops(
            engine.clone(),
            http_config,
            listener,
            ops,
            stopped(stop_rx.clone()),
        );
        let quic = quic.run(stopped(stop_rx));
        crate::notify::ready("serving");
        let watchdog = tokio::spawn(crate::notify::watchdog(engine.clone()));
        let signal = async {
            signals.recv().await;
            tracing::info!("shutdown requested; draining");
            crate::notify::stopping();
            watchdog.abort();
            let _ = stop_tx.send(true);
        };
        let ((), http, quic) = tokio::join!(signal, http, quic);
        http.context("serving HTTP")?;
        quic.context("serving QUIC")
    });
    engine.shutdown();
    drop(engine);
    served?;
    tracing::info!("weir stopped cleanly");
    Ok(())
}

/// SIGINT and SIGTERM, registered together.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Resolves on the first of either signal.
    async fn recv(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
