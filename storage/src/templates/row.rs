//! The stored template row (`templates` CF) and its strict check: a
//! malformed active row fails the processor batch instead of being skipped.

use crate::touch::encode::Encoding;
use crate::touch::keys;

/// Whether a template is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Derives fine touches.
    Active,
    /// Retired by inactivity or a cap; can be re-activated.
    Retired,
}

/// Why a template was retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetiredReason {
    /// Unused past its TTL.
    Inactivity,
    /// Pushed out by a cap.
    CapExceeded,
}

impl RetiredReason {
    /// The reason as events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RetiredReason::Inactivity => "inactivity",
            RetiredReason::CapExceeded => "cap_exceeded",
        }
    }
}

/// One template of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub id: u64,
    pub entity: String,
    /// Sorted field names.
    pub fields: Vec<String>,
    pub encodings: Vec<Encoding>,
    pub state: State,
    pub created_at_ms: u64,
    pub last_seen_at_ms: u64,
    pub inactivity_ttl_ms: u64,
    pub active_from_source_offset: u64,
    pub retired_at_ms: Option<u64>,
    pub retired_reason: Option<RetiredReason>,
}

const VERSION: u8 = 1;

fn enc_code(e: Encoding) -> u8 {
    match e {
        Encoding::String => 0,
        Encoding::Int64 => 1,
        Encoding::Bool => 2,
        Encoding::Datetime => 3,
        Encoding::Bytes => 4,
    }
}

fn enc_of(c: u8) -> Option<Encoding> {
    Some(match c {
        0 => Encoding::String,
        1 => Encoding::Int64,
        2 => Encoding::Bool,
        3 => Encoding::Datetime,
        4 => Encoding::Bytes,
        _ => return None,
    })
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated template row".into());
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "bad u64")?,
        ))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "bad len")?) as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| "template row text is not UTF-8".into())
    }
}

impl TemplateRow {
    /// The stored bytes (little-endian, versioned).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![VERSION];
        b.extend_from_slice(&self.id.to_le_bytes());
        put_str(&mut b, &self.entity);
        b.push(self.fields.len() as u8);
        for (f, e) in self.fields.iter().zip(&self.encodings) {
            put_str(&mut b, f);
            b.push(enc_code(*e));
        }
        b.push(u8::from(self.state == State::Retired));
        for v in [
            self.created_at_ms,
            self.last_seen_at_ms,
            self.inactivity_ttl_ms,
            self.active_from_source_offset,
            self.retired_at_ms.unwrap_or(u64::MAX),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(match self.retired_reason {
            None => 0,
            Some(RetiredReason::Inactivity) => 1,
            Some(RetiredReason::CapExceeded) => 2,
        });
        b
    }

    /// Decodes stored bytes.
    pub fn decode(b: &[u8]) -> Result<TemplateRow, String> {
        let mut r = Reader(b);
        if r.u8()? != VERSION {
            return Err("unknown template row version".into());
        }
        let id = r.u64()?;
        let entity = r.str()?;
        let n = r.u8()? as usize;
        let mut fields = Vec::with_capacity(n);
        let mut encodings = Vec::with_capacity(n);
        for _ in 0..n {
            fields.push(r.str()?);
            encodings.push(enc_of(r.u8()?).ok_or("unknown encoding in template row")?);
        }
        let state = match r.u8()? {
            0 => State::Active,
            1 => State::Retired,
            _ => return Err("bad template state".into()),
        };
        let created_at_ms = r.u64()?;
        let last_seen_at_ms = r.u64()?;
        let inactivity_ttl_ms = r.u64()?;
        let active_from_source_offset = r.u64()?;
        let retired_at_ms = Some(r.u64()?).filter(|v| *v != u64::MAX);
        let retired_reason = match r.u8()? {
            0 => None,
            1 => Some(RetiredReason::Inactivity),
            2 => Some(RetiredReason::CapExceeded),
            _ => return Err("bad retired reason".into()),
        };
        if !r.0.is_empty() {
            return Err("trailing bytes in template row".into());
        }
        Ok(TemplateRow {
            id,
            entity,
            fields,
            encodings,
            state,
            created_at_ms,
            last_seen_at_ms,
            inactivity_ttl_ms,
            active_from_source_offset,
            retired_at_ms,
            retired_reason,
        })
    }

    /// The strict check the processor applies to active rows.
    pub fn validate_active(&self) -> Result<(), String> {
        let bad = |why: &str| {
            Err(format!(
                "invalid live template metadata: {why} ({})",
                keys::hex16(self.id)
            ))
        };
        if self.entity.trim().is_empty() {
            return bad("empty entity");
        }
        if self.fields.is_empty()
            || self.fields.len() > 3
            || self.fields.len() != self.encodings.len()
        {
            return bad("fields and encodings do not align");
        }
        let names: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        if keys::template_id(&self.entity, &names) != self.id {
            return bad("id does not match entity and fields");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TemplateRow {
        TemplateRow {
            id: keys::template_id("posts", &["tenantId"]),
            entity: "posts".into(),
            fields: vec!["tenantId".into()],
            encodings: vec![Encoding::String],
            state: State::Retired,
            created_at_ms: 1,
            last_seen_at_ms: 2,
            inactivity_ttl_ms: 3,
            active_from_source_offset: 4,
            retired_at_ms: Some(5),
            retired_reason: Some(RetiredReason::CapExceeded),
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let r = row();
        let e = r.encode();
        assert_eq!(TemplateRow::decode(&e).unwrap(), r);
        for cut in 0..e.len() {
            assert!(TemplateRow::decode(&e[..cut]).is_err(), "cut {cut}");
        }
        assert!(r.validate_active().is_ok());
        let mut bad = r.clone();
        bad.entity = "other".into();
        assert!(bad
            .validate_active()
            .unwrap_err()
            .starts_with("invalid live template metadata"));
    }
}
