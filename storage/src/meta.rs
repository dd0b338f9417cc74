//! Stream configuration and the metadata persisted in the `streams` column family.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::state::StateMode;

/// What a client fixes when it creates a stream. Two creates of the same name
/// are idempotent exactly when their configs are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// MIME type of the stream's records, e.g. `application/json`.
    pub content_type: String,
    /// Sliding time-to-live in seconds: the stream expires this long after
    /// its last read or append.
    pub ttl_secs: Option<u64>,
    /// Absolute expiry, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

impl StreamConfig {
    /// A config with the given content type and no expiry.
    pub fn new(content_type: impl Into<String>) -> Self {
        StreamConfig {
            content_type: content_type.into(),
            ttl_secs: None,
            expires_at_ms: None,
        }
    }

    /// Checks the documented limits of a config.
    pub fn validate(&self) -> Result<()> {
        if self.content_type.is_empty() || self.content_type.len() > 256 {
            return Err(Error::Invalid("content type must be 1..=256 bytes".into()));
        }
        if self.ttl_secs.is_some() && self.expires_at_ms.is_some() {
            return Err(Error::Invalid(
                "a stream has a TTL or an absolute expiry, not both".into(),
            ));
        }
        Ok(())
    }
}

/// The media type of a content type, lower-cased, without parameters: the
/// part that must match between a stream and an append.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Public description of a stream, as returned by `head` and `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// Internal numeric id (stable for the stream's lifetime, never reused).
    pub id: u64,
    /// The config given at creation.
    pub config: StreamConfig,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The offset the next appended record will get.
    pub next_offset: u64,
    /// Whether the stream has been closed to further appends.
    pub closed: bool,
    /// The last accepted `Stream-Seq`, if any.
    pub last_stream_seq: Option<Vec<u8>>,
    /// The stream's key-value state, if it keeps one.
    pub state: crate::state::StateStatus,
}

/// Metadata persisted per stream. `next_offset` is deliberately absent: it is
/// derived from the `wal` column family on open, so it can never lag the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    /// Internal numeric id, the prefix of every per-stream key.
    pub id: u64,
    /// Creation config.
    pub config: StreamConfig,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Closed to further appends.
    pub closed: bool,
    /// Last accepted `Stream-Seq`.
    pub last_stream_seq: Option<Vec<u8>>,
    /// Key-value state mode (see `state/`).
    pub state: StateMode,
    /// The profile document last stored with `_profile`, verbatim JSON.
    pub profile: Option<String>,
}

/// Version 2 added the state mode and the profile; version 1 values (no
/// state) are still read.
const META_VERSION: u8 = 2;

impl StreamMeta {
    /// Encodes for the `streams` column family.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(META_VERSION)
            .u64(self.id)
            .bytes(self.config.content_type.as_bytes())
            .opt_u64(self.config.ttl_secs)
            .opt_u64(self.config.expires_at_ms)
            .u64(self.created_at_ms)
            .u8(self.closed as u8)
            .opt_bytes(self.last_stream_seq.as_deref())
            .u8(self.state.code())
            .opt_bytes(self.profile.as_deref().map(str::as_bytes));
        w.finish()
    }

    /// Decodes a value written by [`StreamMeta::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "stream metadata");
        let version = r.u8()?;
        if version != 1 && version != META_VERSION {
            return Err(Error::Corrupt(format!(
                "unknown stream metadata version {version}"
            )));
        }
        let mut meta = StreamMeta {
            id: r.u64()?,
            config: StreamConfig {
                content_type: r.string()?,
                ttl_secs: r.opt_u64()?,
                expires_at_ms: r.opt_u64()?,
            },
            created_at_ms: r.u64()?,
            closed: r.u8()? != 0,
            last_stream_seq: r.opt_bytes()?.map(|b| b.to_vec()),
            state: StateMode::None,
            profile: None,
        };
        if version >= 2 {
            let code = r.u8()?;
            meta.state = StateMode::from_code(code)
                .ok_or_else(|| Error::Corrupt(format!("unknown state mode {code}")))?;
            meta.profile = match r.opt_bytes()? {
                Some(b) => Some(
                    String::from_utf8(b.to_vec())
                        .map_err(|_| Error::Corrupt("non-UTF-8 stream profile".into()))?,
                ),
                None => None,
            };
        }
        Ok(meta)
    }
}

/// Checks a stream name: 1..=1024 bytes, no NUL (reserved for engine keys).
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > crate::config::MAX_NAME_LEN {
        return Err(Error::Invalid(format!(
            "stream name must be 1..={} bytes",
            crate::config::MAX_NAME_LEN
        )));
    }
    if name.as_bytes().contains(&0) {
        return Err(Error::Invalid("stream name may not contain NUL".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let m = StreamMeta {
            id: 9,
            config: StreamConfig {
                content_type: "application/json".into(),
                ttl_secs: Some(60),
                expires_at_ms: None,
            },
            created_at_ms: 1234,
            closed: true,
            last_stream_seq: Some(b"0007".to_vec()),
            state: StateMode::Keyed,
            profile: Some("{}".into()),
        };
        assert_eq!(StreamMeta::decode(&m.encode()).unwrap(), m);
        let enc = m.encode();
        for cut in 0..enc.len() {
            assert!(StreamMeta::decode(&enc[..cut]).is_err());
        }
    }

    #[test]
    fn media_type_ignores_case_and_parameters() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert_eq!(media_type("text/plain"), "text/plain");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("a/b/c").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\0b").is_err());
        assert!(validate_name(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn ttl_and_expiry_are_exclusive() {
        let mut c = StreamConfig::new("text/plain");
        c.ttl_secs = Some(1);
        c.expires_at_ms = Some(1);
        assert!(c.validate().is_err());
    }
}
