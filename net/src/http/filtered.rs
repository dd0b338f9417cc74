//! A catch-up read of a State Protocol stream with `filter`: the records
//! from the offset on, as membership changes of the filter. A change whose
//! row matches is sent as an `update` with the row's value; any other
//! change of a row is sent as a `delete`, because a stateless read cannot
//! know which rows its client holds (a materializer treats a delete of an
//! absent row as nothing); a `reset` passes through. Offsets stay the
//! stream's: `Stream-Next-Offset` is the record offset after the page, so
//! a client alternates `snapshot=true&filter=F` once, then `offset=…&filter=F`.

use hyper::StatusCode;
use weir_storage::{changes_of, Filter, StateChange, StateMode};

use super::body::full;
use super::errors;
use super::offsets::OffsetParam;
use super::reply::Reply;
use super::router::Ctx;
use super::state::change_message;

/// Answers a filtered catch-up read.
pub async fn handle(ctx: &Ctx, name: &str, offset: OffsetParam, filter: &Filter) -> Reply {
    let info = match ctx.engine.head(name) {
        Ok(i) => i,
        Err(e) => return errors::reply(&e),
    };
    if info.state.mode != StateMode::StateProtocol {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "filter on a read needs a state-protocol stream",
        );
    }
    let from = match offset {
        OffsetParam::Start => 0,
        OffsetParam::At(o) => o,
        OffsetParam::Now => info.next_offset,
    };
    let r = match ctx
        .engine
        .read_async(name, from, ctx.config.read_budget_bytes)
        .await
    {
        Ok(r) => r,
        Err(e) => return errors::reply(&e),
    };
    let mut out = String::from("[");
    for b in &r.batches {
        for c in changes_of(StateMode::StateProtocol, filter, b) {
            if out.len() > 1 {
                out.push(',');
            }
            message(&mut out, &c);
        }
    }
    out.push(']');
    let up = r.up_to_date();
    Reply::new(StatusCode::OK)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .next_offset(r.next_offset)
        .up_to_date(up)
        .closed(r.closed && up)
        .body(full(out))
}

fn message(out: &mut String, c: &StateChange) {
    match c {
        StateChange::Upsert(row) => change_message(out, &row.key, Some(&row.value), "update"),
        StateChange::Delete { key, .. } => change_message(out, key, None, "delete"),
        StateChange::Reset { .. } => out.push_str("{\"headers\":{\"control\":\"reset\"}}"),
    }
}
