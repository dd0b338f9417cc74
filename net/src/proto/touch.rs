//! Version-2 touch messages: `Wait`, a long-lived request answered when a
//! key of interest is touched, at its timeout or at once for a stale
//! cursor, and `ActivateTemplates`, which declares live-query templates.
//!
//! Both requests carry the same JSON document as the HTTP routes
//! (`touch/wait`, `touch/templates/activate`; README, "Touches"). The
//! documents are Prisma Streams' by definition, template declarations are
//! JSON by nature, and one parser on every door gives every door the same
//! rules and the same messages. The answers are structured.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weir_storage::{Activation, WaitOutcome, WaitStatus};

/// `Wait` (0x0d): wait for a touch on a touch-enabled stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// Name of the stream.
    pub stream: String,
    /// The wait document as JSON text (`cursor`, `keys` or `keyIds`,
    /// `timeoutMs`, `interestMode`, `templateIdsUsed`, `declareTemplates`...).
    pub request: String,
}

/// How a wait ended (tags 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireWaitStatus {
    /// A key of the wait was touched after its cursor.
    Touched,
    /// The timeout passed without a touch.
    Timeout,
    /// The cursor is from another epoch or older than the retained history.
    Stale,
}

/// `WaitResult` (0x8d): the answer to a `Wait`, with the fields of the HTTP
/// route's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResult {
    /// Touched, timeout or stale.
    pub status: WireWaitStatus,
    /// The cursor to wait with next.
    pub cursor: String,
    /// The journal's epoch (16 hex characters).
    pub epoch: String,
    /// The journal's generation.
    pub generation: u32,
    /// `fineKey`, `templateKey` or `tableKey`.
    pub effective_wait_kind: String,
    /// The largest source offset of the bucket that answered (`"-1"` before any flush).
    pub bucket_max_source_offset_seq: String,
    /// When that bucket was flushed (ms since the Unix epoch).
    pub flush_at_ms: u64,
    /// When that bucket opened (ms since the Unix epoch).
    pub bucket_start_ms: u64,
}

impl From<&WaitOutcome> for WaitResult {
    fn from(o: &WaitOutcome) -> Self {
        WaitResult {
            status: match o.status {
                WaitStatus::Touched => WireWaitStatus::Touched,
                WaitStatus::Timeout => WireWaitStatus::Timeout,
                WaitStatus::Stale => WireWaitStatus::Stale,
            },
            cursor: o.cursor.clone(),
            epoch: o.epoch.clone(),
            generation: o.generation,
            effective_wait_kind: o.effective_wait_kind.to_string(),
            bucket_max_source_offset_seq: o.bucket_max_source_offset_seq.clone(),
            flush_at_ms: o.flush_at_ms,
            bucket_start_ms: o.bucket_start_ms,
        }
    }
}

/// `ActivateTemplates` (0x0e): declare live-query templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateTemplates {
    /// Name of the stream.
    pub stream: String,
    /// The activation document as JSON text (`templates`, `inactivityTtlMs`).
    pub request: String,
}

/// One template made (or kept) active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivatedTemplate {
    /// The template id, 16 lowercase hex characters.
    pub template_id: String,
    /// The journal cursor when the activation began.
    pub active_from_touch_offset: String,
}

/// One refused template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedTemplate {
    /// The template id, or sixteen zeros when the declaration had none.
    pub template_id: String,
    /// `invalid` or `rate_limited`.
    pub reason: String,
}

/// `TemplatesActivated` (0x8e): what an activation did, template by template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatesActivated {
    /// Templates now active.
    pub activated: Vec<ActivatedTemplate>,
    /// Templates refused, with the reason.
    pub denied: Vec<DeniedTemplate>,
    /// The stream's cap on active templates.
    pub max_active_templates_per_stream: u64,
    /// The per-entity cap on active templates.
    pub max_active_templates_per_entity: u64,
}

impl From<&Activation> for TemplatesActivated {
    fn from(a: &Activation) -> Self {
        TemplatesActivated {
            activated: a
                .activated
                .iter()
                .map(|t| ActivatedTemplate {
                    template_id: t.template_id.clone(),
                    active_from_touch_offset: t.active_from_touch_offset.clone(),
                })
                .collect(),
            denied: a
                .denied
                .iter()
                .map(|(id, reason)| DeniedTemplate {
                    template_id: id.clone(),
                    reason: reason.to_string(),
                })
                .collect(),
            max_active_templates_per_stream: a.max_active_templates_per_stream,
            max_active_templates_per_entity: a.max_active_templates_per_entity,
        }
    }
}

impl WaitResult {
    /// The HTTP route's response body for this answer (touches.md 1.8),
    /// which the WebSocket JSON form also uses.
    pub fn to_json(&self) -> Value {
        match self.status {
            WireWaitStatus::Touched | WireWaitStatus::Timeout => json!({
                "touched": self.status == WireWaitStatus::Touched,
                "cursor": self.cursor,
                "effectiveWaitKind": self.effective_wait_kind,
                "bucketMaxSourceOffsetSeq": self.bucket_max_source_offset_seq,
                "flushAtMs": self.flush_at_ms,
                "bucketStartMs": self.bucket_start_ms,
            }),
            WireWaitStatus::Stale => json!({
                "stale": true,
                "cursor": self.cursor,
                "epoch": self.epoch,
                "generation": self.generation,
                "effectiveWaitKind": self.effective_wait_kind,
                "bucketMaxSourceOffsetSeq": self.bucket_max_source_offset_seq,
                "flushAtMs": self.flush_at_ms,
                "bucketStartMs": self.bucket_start_ms,
                "error": {
                    "code": "stale",
                    "message": "cursor epoch mismatch; rerun/re-subscribe and start from cursor",
                },
            }),
        }
    }
}

impl TemplatesActivated {
    /// The HTTP route's response body (touches.md 2.1), which the WebSocket
    /// JSON form also uses.
    pub fn to_json(&self) -> Value {
        json!({
            "activated": self.activated.iter().map(|t| json!({
                "templateId": t.template_id,
                "state": "active",
                "activeFromTouchOffset": t.active_from_touch_offset,
            })).collect::<Vec<_>>(),
            "denied": self.denied.iter().map(|d| json!({
                "templateId": d.template_id,
                "reason": d.reason,
            })).collect::<Vec<_>>(),
            "limits": {
                "maxActiveTemplatesPerStream": self.max_active_templates_per_stream,
                "maxActiveTemplatesPerEntity": self.max_active_templates_per_entity,
            },
        })
    }
}
