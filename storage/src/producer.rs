//! Idempotent producers: the (id, epoch, seq) rules that turn client retries
//! into exactly-once appends, and the state persisted per (stream, producer).

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

/// Producer identity and position carried by one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerTag {
    /// Client-chosen stable producer id (non-empty).
    pub id: String,
    /// Client-declared session epoch; a restart increments it.
    pub epoch: u64,
    /// Sequence of this append within the epoch, from 0.
    pub seq: u64,
}

/// What the stream remembers of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer's current epoch.
    pub epoch: u64,
    /// Highest accepted sequence in that epoch.
    pub last_seq: u64,
    /// First offset written by the append that carried `last_seq`.
    pub last_first_offset: u64,
    /// Tail offset after that append.
    pub last_next_offset: u64,
}

/// Verdict on an append's producer tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerCheck {
    /// A new append: write it and record the tag.
    Accept,
    /// A retry of an accepted append: write nothing, answer with this state.
    Duplicate(ProducerState),
}

/// Applies the epoch and sequence rules to `tag` given the stored `state`.
pub fn check(state: Option<&ProducerState>, tag: &ProducerTag) -> Result<ProducerCheck> {
    let Some(s) = state else {
        // An unknown producer is a new epoch: it must start at 0.
        return if tag.seq == 0 {
            Ok(ProducerCheck::Accept)
        } else {
            Err(Error::EpochMustStartAtZero { received: tag.seq })
        };
    };
    if tag.epoch < s.epoch {
        return Err(Error::StaleEpoch { current: s.epoch });
    }
    if tag.epoch > s.epoch {
        return if tag.seq == 0 {
            Ok(ProducerCheck::Accept)
        } else {
            Err(Error::EpochMustStartAtZero { received: tag.seq })
        };
    }
    if tag.seq <= s.last_seq {
        Ok(ProducerCheck::Duplicate(*s))
    } else if tag.seq == s.last_seq + 1 {
        Ok(ProducerCheck::Accept)
    } else {
        Err(Error::SequenceGap {
            expected: s.last_seq + 1,
            received: tag.seq,
        })
    }
}

/// Checks the documented limits of a tag.
pub fn validate(tag: &ProducerTag, max_id_len: usize) -> Result<()> {
    if tag.id.is_empty() || tag.id.len() > max_id_len {
        return Err(Error::Invalid(format!(
            "producer id must be 1..={max_id_len} bytes"
        )));
    }
    Ok(())
}

impl ProducerState {
    /// Encodes for the `producers` column family.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1)
            .u64(self.epoch)
            .u64(self.last_seq)
            .u64(self.last_first_offset)
            .u64(self.last_next_offset);
        w.finish()
    }

    /// Decodes a value written by [`ProducerState::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "producer state");
        if r.u8()? != 1 {
            return Err(Error::Corrupt("unknown producer state version".into()));
        }
        Ok(ProducerState {
            epoch: r.u64()?,
            last_seq: r.u64()?,
            last_first_offset: r.u64()?,
            last_next_offset: r.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(epoch: u64, seq: u64) -> ProducerTag {
        ProducerTag {
            id: "p".into(),
            epoch,
            seq,
        }
    }
    const S: ProducerState = ProducerState {
        epoch: 2,
        last_seq: 5,
        last_first_offset: 10,
        last_next_offset: 12,
    };

    #[test]
    fn rules() {
        assert_eq!(check(None, &tag(0, 0)), Ok(ProducerCheck::Accept));
        assert_eq!(
            check(None, &tag(0, 3)),
            Err(Error::EpochMustStartAtZero { received: 3 })
        );
        assert_eq!(
            check(Some(&S), &tag(1, 9)),
            Err(Error::StaleEpoch { current: 2 })
        );
        assert_eq!(check(Some(&S), &tag(3, 0)), Ok(ProducerCheck::Accept));
        assert_eq!(
            check(Some(&S), &tag(3, 1)),
            Err(Error::EpochMustStartAtZero { received: 1 })
        );
        assert_eq!(check(Some(&S), &tag(2, 5)), Ok(ProducerCheck::Duplicate(S)));
        assert_eq!(check(Some(&S), &tag(2, 0)), Ok(ProducerCheck::Duplicate(S)));
        assert_eq!(check(Some(&S), &tag(2, 6)), Ok(ProducerCheck::Accept));
        assert_eq!(
            check(Some(&S), &tag(2, 8)),
            Err(Error::SequenceGap {
                expected: 6,
                received: 8
            })
        );
    }

    #[test]
    fn state_round_trips() {
        assert_eq!(ProducerState::decode(&S.encode()).unwrap(), S);
        assert!(ProducerState::decode(&S.encode()[..10]).is_err());
    }

    #[test]
    fn ids_are_bounded() {
        assert!(validate(&tag(0, 0), 8).is_ok());
        let mut t = tag(0, 0);
        t.id.clear();
        assert!(validate(&t, 8).is_err());
        t.id = "x".repeat(9);
        assert!(validate(&t, 8).is_err());
    }
}
