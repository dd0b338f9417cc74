//! Version-2 touch calls of the client: `wait` and `activate_templates`.
//! Both send the same JSON documents as the HTTP routes and get the
//! structured answers of PROTOCOL.md 5.2.

use std::time::Duration;

use serde_json::Value;

use super::{unexpected, Client, ClientError};
use crate::proto::{ActivateTemplates, Message, TemplatesActivated, Wait, WaitResult};

/// The longest wait the server allows (`timeoutMs` is clamped to it).
const MAX_WAIT: Duration = Duration::from_secs(120);

impl Client {
    /// Waits for a touch on `stream` with the wait document `request`
    /// (`cursor`, `keys` or `keyIds`, `timeoutMs`, `interestMode`...).
    /// The call is given the server's longest wait on top of the client's
    /// request timeout, since the server answers at `timeoutMs` at the latest.
    pub async fn wait(&self, stream: &str, request: &Value) -> Result<WaitResult, ClientError> {
        self.require_state().await?;
        let wait = Wait {
            stream: stream.into(),
            request: request.to_string(),
        };
        let timeout = self.inner.config.request_timeout + MAX_WAIT;
        match self.unary_for(Message::Wait(wait), timeout).await? {
            Message::WaitResult(w) => Ok(w),
            m => Err(unexpected(&m)),
        }
    }

    /// Activates the templates of the activation document `request`
    /// (`templates`, `inactivityTtlMs`) on `stream`.
    pub async fn activate_templates(
        &self,
        stream: &str,
        request: &Value,
    ) -> Result<TemplatesActivated, ClientError> {
        self.require_state().await?;
        let a = ActivateTemplates {
            stream: stream.into(),
            request: request.to_string(),
        };
        match self.unary(Message::ActivateTemplates(a)).await? {
            Message::TemplatesActivated(t) => Ok(t),
            m => Err(unexpected(&m)),
        }
    }
}
