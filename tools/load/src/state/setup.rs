//! The stream's preparation: created in the chosen state mode over the
//! binary door (version 2 carries the mode in `Create`), then every key
//! inserted in its initial group.

use futures::stream::{self, StreamExt, TryStreamExt};
use weir_net::proto::WireStateMode;

use super::data;
use super::door::Door;
use super::StateModeArg;

/// Keys per loading append.
const LOAD_BATCH: u32 = 1000;

/// Loading appends in flight.
const LOAD_INFLIGHT: usize = 4;

/// Creates `stream` and inserts `keys` keys; returns the tail after the
/// load, where the changes will start.
pub(crate) async fn prepare(
    door: &Door,
    stream: &str,
    mode: StateModeArg,
    keys: u32,
    groups: u8,
    value_size: usize,
) -> anyhow::Result<u64> {
    let wire_mode = match mode {
        StateModeArg::StateProtocol => WireStateMode::StateProtocol,
        StateModeArg::Keyed => WireStateMode::Keyed,
    };
    door.create(stream, wire_mode).await?;
    let batches: Vec<(u32, u32)> = (0..keys)
        .step_by(LOAD_BATCH as usize)
        .map(|a| (a, (a + LOAD_BATCH).min(keys)))
        .collect();
    let tails: Vec<u64> = stream::iter(batches)
        .map(|(a, b)| async move {
            let records = (a..b)
                .map(|i| {
                    // `s` of the initial values is the key's own index.
                    let v = data::value(data::initial_group(i, groups), u64::from(i), value_size);
                    data::record(mode, i, &v, true)
                })
                .collect();
            let first = door.append(stream, records).await?;
            anyhow::Ok(first + u64::from(b - a))
        })
        .buffer_unordered(LOAD_INFLIGHT)
        .try_collect()
        .await?;
    Ok(tails.into_iter().max().unwrap_or(0))
}
