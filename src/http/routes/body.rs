//! Reading a request's body, which only writes have: within the listener's
//! body-read deadline, at most a size limit, holding the node's load
//! budget while it is read; and which transfer codings this server reads.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_LENGTH, RETRY_AFTER, TRANSFER_ENCODING};
use hyper::StatusCode;

use crate::http::reply::{closing, text, InFlight, Reply};
use crate::http_client::Reservation;
use crate::node::Node;

/// How long a client may take to send a request's body, unless the
/// listener says otherwise (`--body-read-timeout`).
pub(crate) const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How a request's body is read: within `timeout`, and once it has
/// arrived the request is `in_flight`.
pub(super) struct Reading<'a> {
    pub(super) timeout: Duration,
    pub(super) in_flight: &'a mut InFlight,
}

/// Reads a request body of at most `limit` bytes, holding its size of the
/// node's load budget until the returned [`Reservation`] drops. A larger
/// body is 413, one the budget has no room for 503, one that does not
/// arrive within the body-read timeout 408; each of these closes the
/// connection.
pub(super) async fn read_body<B>(
    node: &Node,
    head: &hyper::http::request::Parts,
    body: B,
    limit: u64,
    reading: Reading<'_>,
) -> Result<(Bytes, Reservation), Reply>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = limit.min(usize::MAX as u64);
    let refuse = |status, message: String| {
        let mut reply = text(status, message.into());
        closing(&mut reply);
        reply
    };
    let too_large = || {
        let message = format!("request body exceeds {limit} bytes");
        refuse(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let busy = |e: crate::http_client::HttpError| {
        let mut reply = refuse(StatusCode::SERVICE_UNAVAILABLE, format!("busy: {e}"));
        reply
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        reply
    };
    let declared = head.headers.get(CONTENT_LENGTH);
    let declared = declared.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut held = node.peers().load_budget().reservation();
    if let Some(length) = declared {
        held.cover(length).map_err(busy)?;
    }
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut bytes = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let message = format!("reading body: {}", e.into());
                refuse(StatusCode::BAD_REQUEST, message)
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let size = (bytes.len() + data.len()) as u64;
            if size > limit {
                return Err(too_large());
            }
            held.cover(size).map_err(busy)?;
            if bytes.is_empty() {
                // The declared length at once, so the buffer never doubles.
                let expected = declared.unwrap_or(0).min(limit) as usize;
                bytes.reserve(expected.max(data.len()));
            }
            bytes.extend_from_slice(&data);
        }
        Ok(bytes.freeze())
    };
    match tokio::time::timeout(reading.timeout, read).await {
        Ok(Ok(bytes)) => {
            reading.in_flight.begin();
            Ok((bytes, held))
        }
        Ok(Err(reply)) => Err(reply),
        Err(_) => {
            let message = format!("request body not received within {:?}", reading.timeout);
            Err(refuse(StatusCode::REQUEST_TIMEOUT, message))
        }
    }
}

/// Whether a request's `Transfer-Encoding` is one this server reads: none,
/// or `chunked` alone (as Go's server, which answers others 501).
pub(super) fn transfer_coding_is_supported(headers: &hyper::HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(coding), None) => coding
            .to_str()
            .is_ok_and(|c| c.trim().eq_ignore_ascii_case("chunked")),
        (Some(_), Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;

    fn codings(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(TRANSFER_ENCODING, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn reads_no_coding_or_chunked_alone() {
        assert!(transfer_coding_is_supported(&codings(&[])));
        assert!(transfer_coding_is_supported(&codings(&[" Chunked "])));
        assert!(!transfer_coding_is_supported(&codings(&["gzip"])));
        assert!(!transfer_coding_is_supported(&codings(&["gzip, chunked"])));
        assert!(!transfer_coding_is_supported(&codings(&[
            "chunked", "chunked"
        ])));
    }
}
