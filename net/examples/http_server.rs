//! A minimal standalone HTTP server over a data directory, used by the
//! conformance runner (`tools/conformance/run`) and for manual testing.
//!
//! ```text
//! cargo run --release -p weir-net --example http_server -- \
//!     --data-dir /tmp/weir --addr 127.0.0.1:4437 --long-poll-timeout-ms 30000
//! ```

use std::time::Duration;

use weir_net::http::{serve, HttpConfig};
use weir_storage::{Engine, EngineConfig};

fn usage() -> ! {
    eprintln!(
        "usage: http_server --data-dir DIR [--addr 127.0.0.1:4437] [--long-poll-timeout-ms MS]"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut data_dir = None;
    let mut addr = "127.0.0.1:4437".to_string();
    let mut config = HttpConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--data-dir" => data_dir = Some(value()),
            "--addr" => addr = value(),
            "--long-poll-timeout-ms" => {
                let ms = value().parse().unwrap_or_else(|_| usage());
                config.long_poll_timeout = Duration::from_millis(ms);
            }
            _ => usage(),
        }
    }
    let Some(data_dir) = data_dir else { usage() };
    let engine = match Engine::open(&data_dir, EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot open {data_dir}: {e}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "listening on http://{}",
        listener.local_addr().map(|a| a.to_string()).unwrap_or(addr)
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            () = shutdown => {}
            _ = term.recv() => {}
        }
    };
    if let Err(e) = serve(engine.clone(), config, listener, shutdown).await {
        eprintln!("server error: {e}");
    }
    engine.shutdown();
}
