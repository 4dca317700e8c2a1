//! Why a write was refused, and the status a reply to it gets.

use hyper::StatusCode;

use crate::wire::WriteBodyError;

/// Why a write was refused, with the status it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("{0}")]
    BadBody(#[from] WriteBodyError),
    #[error("value of {size} bytes with its key exceeds the largest entry of group {group}, {limit} bytes")]
    TooLarge {
        group: String,
        size: u64,
        limit: u64,
    },
    #[error("write failed: {0}")]
    Failed(String),
}

impl WriteError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WriteError::BadBody(WriteBodyError::TooManyKeys(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            WriteError::BadBody(_) => StatusCode::BAD_REQUEST,
            WriteError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WriteError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}
