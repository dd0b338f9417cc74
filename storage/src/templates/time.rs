//! Millisecond timestamps as ISO-8601 UTC text (`2026-03-23T10:30:00.000Z`),
//! the form of every `ts` and `lastSeenAt` in lifecycle events.

pub use crate::touch::metrics::events::iso_ms;
