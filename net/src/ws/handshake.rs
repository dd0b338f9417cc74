//! The opening handshake (RFC 6455 section 4.2): checks an HTTP/1.1
//! upgrade request, answers `101 Switching Protocols`, and starts the
//! connection once hyper hands the socket over.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use weir_storage::Engine;

use super::WsConfig;
use crate::http::Slots;

/// Bytes read from a WebSocket's socket at a time (see `upgrade`). Every
/// connection holds this much resident once it has read a message; 2 KiB
/// instead of 4 took an idle connection from 10.2 to 8.2 KiB, and 1 MiB
/// appends went at the same 250–266 MB/s (`bench/RESULTS.md`, stop 26).
const WS_READ_BUFFER: usize = 2 << 10;

/// Why an upgrade request was refused: the HTTP answer to send instead.
#[derive(Debug)]
pub struct Refused {
    /// Status of the answer.
    pub status: StatusCode,
    /// Plain-text reason for the body.
    pub reason: &'static str,
    /// Headers the answer must carry (e.g. the supported WebSocket version).
    pub headers: HeaderMap,
}

impl Refused {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Refused {
            status,
            reason,
            headers: HeaderMap::new(),
        }
    }
}

/// Accepts a WebSocket upgrade of `req`: on success returns the headers of
/// the `101` answer and has spawned the connection, which starts once
/// hyper has sent the answer. The HTTP server must serve connections
/// `with_upgrades`.
pub fn accept(
    mut req: Request<Incoming>,
    engine: Engine,
    config: &WsConfig,
    stop: watch::Receiver<bool>,
    slots: &Slots,
) -> Result<HeaderMap, Refused> {
    if req.method() != Method::GET {
        let mut r = Refused::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET to open a WebSocket",
        );
        r.headers
            .insert("allow", HeaderValue::from_static("GET, OPTIONS"));
        return Err(r);
    }
    let h = req.headers();
    if !has_token(h, &UPGRADE, "websocket") || !has_token(h, &CONNECTION, "upgrade") {
        let mut r = Refused::new(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket only",
        );
        r.headers
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        r.headers
            .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        return Err(r);
    }
    if h.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
        let mut r = Refused::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version",
        );
        r.headers
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return Err(r);
    }
    // The key is the base64 of 16 random bytes: 24 characters.
    let key = match h.get("sec-websocket-key") {
        Some(k) if k.len() == 24 => derive_accept_key(k.as_bytes()),
        _ => {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "missing or malformed Sec-WebSocket-Key",
            ))
        }
    };
    if *stop.borrow() {
        return Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ));
    }
    // A token on the upgrade itself stands in for `Hello.auth_token`; one
    // that is already refused is refused here, before any upgrade.
    let token = crate::auth::bearer(
        h.get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .map(str::to_string);
    if let (Some(auth), Some(t)) = (&config.session.auth, &token) {
        if let Err(r) = auth.authenticate(Some(t)) {
            return Err(Refused::new(StatusCode::UNAUTHORIZED, r.message()));
        }
    }
    let Some(slot) = slots.try_take() else {
        return Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is at its limit of concurrent WebSocket connections; retry later",
        ));
    };
    let mut out = HeaderMap::new();
    out.insert(UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    // derive_accept_key yields base64, always valid header text.
    if let Ok(v) = HeaderValue::from_str(&key) {
        out.insert("sec-websocket-accept", v);
    }
    let upgrading = hyper::upgrade::on(&mut req);
    let config = Arc::new(config.clone());
    tokio::spawn(async move {
        let _slot = slot;
        let upgraded = match upgrading.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let max = config.max_message();
        // Frames and messages above the limit are refused from their header,
        // so a peer cannot make the server buffer an announced size.
        // tungstenite's default 128 KiB read buffer is zero-filled before
        // every socket read: 128 KiB resident per idle connection and a
        // 128 KiB memset per small message. A large message reserves its
        // full length anyway, so only the read size shrinks.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        super::conn::serve(ws, engine, config, stop, token).await;
    });
    Ok(out)
}

/// Whether header `name` lists `token` (comma-separated, any case).
fn has_token(h: &HeaderMap, name: &hyper::header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
