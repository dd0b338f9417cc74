//! The `live.metrics` model (touches spec §3): per-interval counters, the
//! latency histogram, the loop-lag sampler and the JSON of every event.
//! Sans-IO: the shell owns timers, the clock and the metrics stream.

pub mod counters;
pub mod events;
pub mod histogram;
pub mod looplag;
pub mod tick;
