//! A tiny bounds-checked binary writer/reader for the engine's own values
//! (stream metadata, producer state). Every read checks its length, so a
//! damaged value yields `Error::Corrupt`, never a panic.

use crate::error::{Error, Result};

/// Appends little-endian fields to a byte vector.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts an empty value.
    pub fn new() -> Self {
        Self::default()
    }
    /// Writes one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Writes a u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Writes a length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    /// Writes an optional u64 as a presence byte and the value.
    pub fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(x) => self.u8(1).u64(x),
            None => self.u8(0),
        }
    }
    /// Writes an optional byte string as a presence byte and the bytes.
    pub fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(x) => self.u8(1).bytes(x),
            None => self.u8(0),
        }
    }
    /// The encoded value.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields written by [`Writer`], failing cleanly on truncation.
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::Corrupt(format!("truncated {}", self.what)));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    /// Reads a u64.
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("took 8 bytes")))
    }
    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| Error::Corrupt(format!("huge {}", self.what)))?;
        self.take(n)
    }
    /// Reads a length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::Corrupt(format!("non-UTF-8 {}", self.what)))
    }
    /// Reads an optional u64.
    pub fn opt_u64(&mut self) -> Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(Error::Corrupt(format!("bad option tag in {}", self.what))),
        }
    }
    /// Reads an optional byte string.
    pub fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            _ => Err(Error::Corrupt(format!("bad option tag in {}", self.what))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let mut w = Writer::new();
        w.u8(3)
            .u64(9)
            .bytes(b"abc")
            .opt_u64(None)
            .opt_bytes(Some(b"z"));
        let v = w.finish();
        let mut r = Reader::new(&v, "test");
        assert_eq!(r.u8().unwrap(), 3);
        assert_eq!(r.u64().unwrap(), 9);
        assert_eq!(r.bytes().unwrap(), b"abc");
        assert_eq!(r.opt_u64().unwrap(), None);
        assert_eq!(r.opt_bytes().unwrap(), Some(&b"z"[..]));
        for cut in 0..v.len() {
            let mut r = Reader::new(&v[..cut], "test");
            let all = (|| -> Result<()> {
                r.u8()?;
                r.u64()?;
                r.bytes()?;
                r.opt_u64()?;
                r.opt_bytes()?;
                Ok(())
            })();
            assert!(matches!(all, Err(Error::Corrupt(_))), "cut at {cut}");
        }
    }

    #[test]
    fn huge_length_prefix_is_an_error() {
        let mut w = Writer::new();
        w.u64(u64::MAX);
        let v = w.finish();
        assert!(Reader::new(&v, "test").bytes().is_err());
    }
}
