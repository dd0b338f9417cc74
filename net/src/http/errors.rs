//! Engine errors to status codes (and the headers some of them carry).

use hyper::StatusCode;
use weir_storage::Error;

use super::reply::Reply;

/// The reply for an engine error.
pub fn reply(e: &Error) -> Reply {
    let status = match e {
        Error::NotFound | Error::TouchNotEnabled => StatusCode::NOT_FOUND,
        Error::Gone => StatusCode::GONE,
        Error::ConfigConflict
        | Error::NameReserved
        | Error::Closed { .. }
        | Error::ContentTypeMismatch { .. }
        | Error::StreamSeqRegression { .. }
        | Error::SequenceGap { .. } => StatusCode::CONFLICT,
        Error::StaleEpoch { .. } => StatusCode::FORBIDDEN,
        Error::EpochMustStartAtZero { .. }
        | Error::EmptyAppend
        | Error::OffsetOutOfRange { .. }
        | Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::NotStateStream => StatusCode::CONFLICT,
        Error::ShutDown | Error::StateBuilding { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Storage(_) | Error::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "engine error");
    }
    let r = Reply::error(status, e);
    match e {
        Error::Closed { next_offset } => r.closed(true).next_offset(*next_offset),
        Error::StaleEpoch { current } => r.header("producer-epoch", current.to_string()),
        Error::SequenceGap { expected, received } => r
            .header("producer-expected-seq", expected.to_string())
            .header("producer-received-seq", received.to_string()),
        // Recovery polls for space every few seconds.
        Error::NoSpace(_) => r.header("retry-after", "5"),
        Error::StateBuilding { done, total } => r
            .header("retry-after", "1")
            .header("stream-state-progress", format!("{done}/{total}")),
        _ => r,
    }
}
