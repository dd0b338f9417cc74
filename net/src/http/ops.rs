//! The operations door: `/metrics`, `/healthz` and `/readyz` on an address
//! of their own (`--ops-addr`), so a scraper or a load balancer's health
//! check reaches them on a private interface without credentials, while the
//! public door keeps requiring its own. It shares the main door's context:
//! the same request counters, the same draining state. Anything else is a
//! 404 that names what this door serves.

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::reply::Reply;
use super::router::Ctx;

/// Serves the operations routes on `listener` until the door's stop signal.
pub(super) async fn serve(ctx: Arc<Ctx>, listener: TcpListener) {
    let mut stop = ctx.stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((io, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let ctx = Arc::clone(&ctx);
                        async move {
                            Ok::<_, std::convert::Infallible>(route(&ctx, &req).into_response())
                        }
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(10))
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
            }
            () = &mut stopped => return,
        }
    }
}

fn route<B>(ctx: &Ctx, req: &hyper::Request<B>) -> Reply {
    let path = req.uri().path();
    if let Some(r) = super::health::handle(ctx, path) {
        return r;
    }
    if path == super::metrics::PATH {
        let accept = req.headers().get(hyper::header::ACCEPT);
        return ctx.metrics.reply(accept.and_then(|v| v.to_str().ok()));
    }
    Reply::error(
        StatusCode::NOT_FOUND,
        "this is the operations door: /metrics, /healthz and /readyz",
    )
}
