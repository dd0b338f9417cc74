//! The listener: accepts loopback or other TCP connections, serves HTTP/1.1
//! on each, and shuts down in order: stop accepting, end live reads, give
//! in-flight requests a grace period.

use std::future::Future;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use weir_storage::Engine;

use super::config::HttpConfig;
use super::io::set_congestion;
use super::limit::Slots;
use super::router::{handle, Ctx};
use super::stall::StallLimit;
use super::subscriptions::Subscriptions;

/// Serves the Durable Streams HTTP API on `listener` until `shutdown`
/// resolves, then stops accepting, ends long-polls and SSE streams, and
/// waits up to `config.shutdown_grace` for in-flight requests.
pub async fn serve(
    engine: Engine,
    config: HttpConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with_ops(engine, config, listener, None, shutdown).await
}

/// [`serve`], with the operations routes (`/metrics`, `/healthz`,
/// `/readyz`) also served on `ops`, without authentication (see `ops.rs`).
pub async fn serve_with_ops(
    engine: Engine,
    config: HttpConfig,
    listener: TcpListener,
    ops: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if let Some(cc) = &config.tcp_congestion {
        // A tuning: an unprivileged process may not be allowed the
        // algorithm (`net.ipv4.tcp_allowed_congestion_control`).
        if let Err(e) = set_congestion(&listener, cc) {
            tracing::warn!(error = %e, "keeping the kernel's TCP congestion control");
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let grace = config.shutdown_grace;
    let slots = Slots::new(config.max_connections);
    let output = super::output::OutputBudget::new(config.output_budget_bytes);
    let intake = super::intake::IntakeBudget::new(config.intake_budget_bytes, config.intake_wait);
    let ctx = Arc::new(Ctx {
        ws_slots: Arc::new(Slots::new(config.ws.max_connections)),
        subs: Subscriptions::new(),
        metrics: super::metrics::Metrics::new(
            engine.clone(),
            Arc::clone(&output),
            Arc::clone(&intake),
        ),
        output,
        intake,
        engine,
        config,
        stop: stop_rx,
    });
    // Every connection task holds a clone of `drain`; `drained` yields None
    // once all of them ended. (hyper-util's GracefulShutdown cannot watch a
    // connection that may upgrade to a WebSocket.)
    let (drain, mut drained) = mpsc::channel::<()>(1);
    let _sampler = AbortOnDrop(tokio::spawn(sample_loop_lag(ctx.engine.clone())));
    let _feed = AbortOnDrop(super::subscriptions::watch_commits(&ctx.subs, &ctx.engine));
    let _ops = ops.map(|l| AbortOnDrop(tokio::spawn(super::ops::serve(Arc::clone(&ctx), l))));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (io, _peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Some(slot) = slots.try_take() else {
                    slots.refuse(io);
                    continue;
                };
                let _ = io.set_nodelay(true);
                let stop = ctx.stop.clone();
                let ctx = Arc::clone(&ctx);
                let drain = drain.clone();
                tokio::spawn(async move {
                    let (_drain, _slot) = (drain, slot);
                    let stall = ctx.config.write_stall_limit;
                    match ctx.config.tls.clone() {
                        None => super::hibernate::serve(ctx, io, stall, stop).await,
                        // Boxed: a plain connection's task need not have
                        // room for a TLS session.
                        Some(tls) => Box::pin(async move {
                            match super::tls::handshake(&tls, io).await {
                                // No sendfile under TLS: the bytes must be encrypted.
                                Ok(s) => serve_connection(ctx, StallLimit::new(TokioIo::new(s), stall), stop).await,
                                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                            }
                        })
                        .await,
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(drain);
    let _ = stop_tx.send(true);
    tokio::select! {
        _ = drained.recv() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed with requests in flight"),
    }
    Ok(())
}

/// Serves HTTP/1.1 on one TLS connection until it closes, or until
/// shutdown lets its request in flight finish (plain connections are served
/// in turns, `hibernate.rs`).
async fn serve_connection<I>(ctx: Arc<Ctx>, io: I, mut stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(Arc::clone(&ctx), req));
    let conn = http_connection(io, svc);
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        () = crate::session::signalled(&mut stop) => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// hyper's HTTP/1.1 connection over `io`, as every connection is served
/// (plain ones in turns, `hibernate.rs`; TLS ones whole).
pub(super) fn http_connection<I, S>(io: I, svc: S) -> http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = super::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(io, svc)
        // `/v1/ws` takes the socket over after its 101 answer.
        .with_upgrades()
}

/// Samples the runtime's scheduling delay every 100 ms for `live.metrics`
/// (its `eventLoopLag` fields: Prisma measures its event loop, Weir the
/// lateness of a tokio timer).
async fn sample_loop_lag(engine: Engine) {
    let step =
        std::time::Duration::from_millis(weir_storage::touch::defaults::LOOP_LAG_INTERVAL_MS);
    let mut every = tokio::time::interval(step);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        engine.sample_loop_lag(weir_storage::now_ms());
    }
}

/// A background task of the server, aborted when the server ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
