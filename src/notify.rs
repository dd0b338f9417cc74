//! systemd integration (`Type=notify`): `READY=1` once every door listens,
//! `STOPPING=1` when a drain starts, and watchdog pings while the engine
//! still commits. Without `NOTIFY_SOCKET` (not under systemd) every call is
//! a no-op, so the same binary runs anywhere.

use std::time::Duration;

use sd_notify::NotifyState;
use weir_storage::Engine;

/// Tells systemd the server is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd a graceful stop has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half its interval while the engine's commit thread
/// is alive, so a wedged engine is restarted by systemd rather than left
/// answering errors. Returns at once when no watchdog is configured.
pub async fn watchdog(engine: Engine) {
    let Some(every) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval((every / 2).max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        if !engine.is_running() {
            tracing::error!("storage engine stopped; withholding the watchdog ping");
            return;
        }
        send(&[NotifyState::Watchdog]);
    }
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
