//! Version-2 touch requests. `Wait` runs in a task of its own: it is
//! answered once, when a key is touched, at its timeout (at most 120 s) or
//! at once for a stale cursor, and holds one in-flight slot of the
//! connection meanwhile, so the connection's limit bounds its waits. A
//! connection that closes drops the engine's wait future, which removes the
//! waiter. `ActivateTemplates` is answered inline.
//!
//! Both documents are parsed by the same code as the HTTP routes', so the
//! rules and the messages agree on every door.

use std::sync::Arc;

use weir_storage::templates::decl::parse_activate_body;
use weir_storage::touch::request::parse_wait;

use super::{signalled, Session, Transport};
use crate::proto::{
    ActivateTemplates, ErrorKind, Message, TemplatesActivated, Wait, WaitResult, WireError,
};

/// Largest wait or activation document, as on the HTTP routes.
pub const MAX_DOCUMENT: usize = 1 << 20;

fn invalid(why: impl Into<String>) -> Message {
    Message::Error(WireError::new(ErrorKind::Invalid, why.into()))
}

fn too_long(what: &str) -> Message {
    invalid(format!("{what} document exceeds {MAX_DOCUMENT} bytes"))
}

/// Starts a `Wait` (request `id`, admitted); the answer comes from a task.
pub(crate) async fn wait<T: Transport>(
    s: &Arc<Session<T>>,
    id: u32,
    w: Wait,
    reply: &mut T::Reply,
) {
    let parsed = if w.request.len() > MAX_DOCUMENT {
        Err(too_long("wait"))
    } else {
        parse_wait(w.request.as_bytes()).map_err(invalid)
    };
    let req = match parsed {
        Ok(r) => r,
        Err(m) => {
            let _ = s.send(reply, id, m).await;
            s.done(id);
            return;
        }
    };
    let s = Arc::clone(s);
    let mut reply = reply.clone();
    tokio::spawn(async move {
        let mut closed = s.closed_signal();
        let mut shutdown = s.shutdown_signal();
        let engine = s.engine().clone();
        let msg = tokio::select! {
            r = engine.touch_wait(&w.stream, req) => match r {
                Ok(o) => Message::WaitResult(WaitResult::from(&o)),
                Err(e) => Message::Error(WireError::from(&e)),
            },
            // Nobody is left to answer; dropping the wait removes the waiter.
            _ = signalled(&mut closed) => {
                s.done(id);
                return;
            }
            // Answer at once so the client waits again, on the restarted
            // server, where its cursor stays valid.
            _ = signalled(&mut shutdown) => Message::Error(WireError::new(
                ErrorKind::ShutDown,
                "server is shutting down",
            )),
        };
        let _ = s.send(&mut reply, id, msg).await;
        s.done(id);
    });
}

/// Answers an `ActivateTemplates` (request `id`, admitted) on `reply`.
pub(crate) async fn activate<T: Transport>(
    s: &Session<T>,
    id: u32,
    a: ActivateTemplates,
    reply: &mut T::Reply,
) {
    let msg = activate_message(s, &a);
    let _ = s.send(reply, id, msg).await;
    s.done(id);
}

fn activate_message<T: Transport>(s: &Session<T>, a: &ActivateTemplates) -> Message {
    if a.request.len() > MAX_DOCUMENT {
        return too_long("activation");
    }
    let engine = s.engine();
    // As on HTTP: the stream must have touches before the body is judged.
    let default_ttl = match engine.touch_default_ttl(&a.stream) {
        Ok(t) => t,
        Err(e) => return Message::Error(WireError::from(&e)),
    };
    let (templates, ttl) = match parse_activate_body(a.request.as_bytes(), default_ttl) {
        Ok(p) => p,
        Err(m) => return invalid(m),
    };
    match engine.touch_activate(&a.stream, &templates, Some(ttl)) {
        Ok(r) => Message::TemplatesActivated(TemplatesActivated::from(&r)),
        Err(e) => Message::Error(WireError::from(&e)),
    }
}
