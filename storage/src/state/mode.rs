//! State modes and the per-stream state status the commit thread stages.

use std::sync::Arc;

use super::kv::Marker;

/// Which key-value state a stream keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum StateMode {
    /// A plain stream: no state, no cost.
    #[default]
    None,
    /// Any content type: a keyed record sets its key's value to its payload,
    /// a tombstone deletes the key, records without a key leave it alone.
    Keyed,
    /// A JSON stream of Durable Streams State Protocol messages, keyed by
    /// (`type`, `key`).
    StateProtocol,
}

impl StateMode {
    /// The name used in headers and profiles: `none`, `keyed`, `state-protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateMode::None => "none",
            StateMode::Keyed => "keyed",
            StateMode::StateProtocol => "state-protocol",
        }
    }

    /// Parses [`StateMode::as_str`]'s names (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<StateMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Some(StateMode::None),
            "keyed" => Some(StateMode::Keyed),
            "state-protocol" => Some(StateMode::StateProtocol),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            StateMode::None => 0,
            StateMode::Keyed => 1,
            StateMode::StateProtocol => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<StateMode> {
        match c {
            0 => Some(StateMode::None),
            1 => Some(StateMode::Keyed),
            2 => Some(StateMode::StateProtocol),
            _ => None,
        }
    }
}

/// A stream's state as reported by `head`: its mode and, while the state is
/// being built from existing history, how far the build has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateStatus {
    /// The state mode.
    pub mode: StateMode,
    /// `Some(applied)` while building: records below `applied` are in the state.
    pub building: Option<u64>,
}

/// The state part of a stream's live status. The commit thread stages a copy
/// per group and publishes it with the group, like the tail.
#[derive(Debug, Clone, Default)]
pub(crate) struct KvStatus {
    pub mode: StateMode,
    /// Bumped by every mode change, so a builder of an older mode stops.
    pub generation: u64,
    /// Being built from history: appends do not write state, the builder does.
    pub building: bool,
    /// Records below this offset are reflected in the state.
    pub applied: u64,
    /// The stored profile document (the `_profile` HTTP route).
    pub profile: Option<Arc<str>>,
}

impl KvStatus {
    pub fn marker(&self) -> Marker {
        Marker {
            applied: self.applied,
            building: self.building,
            generation: self.generation,
            mode: self.mode,
        }
    }

    pub fn status(&self) -> StateStatus {
        StateStatus {
            mode: self.mode,
            building: self.building.then_some(self.applied),
        }
    }
}
