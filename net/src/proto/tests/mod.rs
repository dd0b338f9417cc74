//! Tests of the codec, one concern per file. `samples` holds at least one
//! message of every opcode; the other files check them from every side.

mod batches;
mod chunks;
mod errors;
mod golden;
mod golden_v2;
mod props;
mod robustness;
mod roundtrip;
mod samples;
