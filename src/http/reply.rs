//! A reply and how it is made: [`ReplyBody`] (the bytes of a text or JSON
//! reply, or a peer's `GetResponse` framed around the cached value without
//! copying it), the helpers for common replies, and [`InFlight`], the mark
//! a request holds until its reply is written so that the drain at
//! shutdown waits for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use crate::value::Value;
use crate::wire::ResponsePart;

/// A response with a [`ReplyBody`].
pub(crate) type Reply = Response<ReplyBody>;

/// Whether a request counts as in flight for the drain at shutdown: from
/// when its body (if any) has arrived until its reply is written. A
/// request still waiting for its body is not waited for.
pub(crate) struct InFlight {
    source: mpsc::WeakSender<()>,
    token: Option<mpsc::Sender<()>>,
}

impl InFlight {
    /// A mark no drain waits on: for requests answered outside a listener
    /// of this crate.
    pub(crate) fn untracked() -> InFlight {
        let (sender, _) = mpsc::channel(1);
        InFlight::new(sender.downgrade())
    }

    pub(crate) fn new(source: mpsc::WeakSender<()>) -> InFlight {
        InFlight {
            source,
            token: None,
        }
    }

    /// The request is now in flight (unless the drain is already over).
    /// Hands the mark to `reply`, which holds it until it is written.
    pub(crate) fn attach(self, reply: &mut Reply) {
        reply.body_mut().in_flight = self.token;
    }

    pub(crate) fn begin(&mut self) {
        if self.token.is_none() {
            self.token = self.source.upgrade();
        }
    }
}

/// A reply body: the bytes of a text or JSON reply, or a peer reply's
/// `GetResponse` as its parts, the inline field header, the cached value
/// itself and the inline `expire` field, so answering a hit allocates and
/// copies nothing (hyper writes the parts and the head with one vectored
/// write).
///
/// It also carries the request's in-flight token, dropped with the body
/// once it is written, so that the drain at shutdown waits for it.
pub struct ReplyBody {
    prefix: Option<ResponsePart>,
    bytes: Option<Bytes>,
    suffix: Option<ResponsePart>,
    in_flight: Option<mpsc::Sender<()>>,
}

impl ReplyBody {
    /// `always`: send `expire` even for a value that never expires (0);
    /// `minute_qps`: the key's rate, when this node sends one.
    pub(crate) fn get_response(value: Value, always: bool, minute_qps: Option<f64>) -> ReplyBody {
        let suffix = ResponsePart::after_value(minute_qps, value.expiry, always);
        ReplyBody {
            prefix: Some(ResponsePart::value_header(value.bytes.len())),
            suffix,
            ..ReplyBody::from(value.bytes)
        }
    }
}

impl From<Bytes> for ReplyBody {
    fn from(bytes: Bytes) -> ReplyBody {
        ReplyBody {
            prefix: None,
            bytes: (!bytes.is_empty()).then_some(bytes),
            suffix: None,
            in_flight: None,
        }
    }
}

impl Body for ReplyBody {
    type Data = ReplyChunk;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<ReplyChunk>, Infallible>>> {
        let chunk = if let Some(prefix) = self.prefix.take() {
            Some(Chunk::Inline(prefix, 0))
        } else if let Some(bytes) = self.bytes.take() {
            Some(Chunk::Bytes(bytes))
        } else {
            self.suffix.take().map(|suffix| Chunk::Inline(suffix, 0))
        };
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(ReplyChunk(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.bytes.is_none() && self.suffix.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let inline = |part: Option<ResponsePart>| part.map_or(0, |p| p.as_bytes().len());
        let bytes = self.bytes.as_ref().map_or(0, Bytes::len);
        SizeHint::with_exact((inline(self.prefix) + bytes + inline(self.suffix)) as u64)
    }
}

/// One chunk of a [`ReplyBody`].
pub struct ReplyChunk(Chunk);

enum Chunk {
    /// A field header or the `expire` field, and how much of it has been
    /// written.
    Inline(ResponsePart, usize),
    Bytes(Bytes),
}

impl Buf for ReplyChunk {
    fn remaining(&self) -> usize {
        self.chunk().len()
    }

    fn chunk(&self) -> &[u8] {
        match &self.0 {
            Chunk::Inline(part, written) => &part.as_bytes()[*written..],
            Chunk::Bytes(bytes) => bytes,
        }
    }

    fn advance(&mut self, n: usize) {
        match &mut self.0 {
            Chunk::Inline(part, written) => {
                assert!(
                    *written + n <= part.as_bytes().len(),
                    "advance past the end"
                );
                *written += n;
            }
            Chunk::Bytes(bytes) => bytes.advance(n),
        }
    }
}

pub(crate) fn no_such_group(name: &[u8]) -> Reply {
    let mut body = b"no such group: ".to_vec();
    body.extend_from_slice(name);
    text(StatusCode::NOT_FOUND, body)
}

/// A one-line text reply as Go's `http.Error` writes it: message, newline,
/// `text/plain; charset=utf-8` and `X-Content-Type-Options: nosniff`.
pub(crate) fn text(status: StatusCode, mut message: Vec<u8>) -> Reply {
    message.push(b'\n');
    let mut reply = Response::new(ReplyBody::from(Bytes::from(message)));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    reply
}

/// What Go's HTTP server answers, before any handler runs, to a request it
/// cannot route: `400 Bad Request` for a path with a malformed `%` escape,
/// with the reason after it for a missing `Host`.
pub(crate) fn go_bad_request(body: &'static str) -> Reply {
    let mut reply = Response::new(ReplyBody::from(Bytes::from_static(body.as_bytes())));
    *reply.status_mut() = StatusCode::BAD_REQUEST;
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    reply
}

pub(crate) fn html(page: &'static str) -> Reply {
    typed(
        Bytes::from_static(page.as_bytes()),
        "text/html; charset=utf-8",
    )
}

pub(crate) fn json(value: &impl serde::Serialize) -> Reply {
    // Serializing structs and maps of strings and numbers cannot fail
    // (serde_json writes a non-finite float as null).
    let mut body = serde_json::to_vec_pretty(value).expect("stats serialize");
    body.push(b'\n');
    typed(Bytes::from(body), "application/json")
}

/// A 200 with `body` of type `content_type`.
pub(crate) fn typed(body: Bytes, content_type: &'static str) -> Reply {
    let mut reply = Response::new(ReplyBody::from(body));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// Marks `reply` as the connection's last: its request body was not read
/// to the end.
pub(crate) fn closing(reply: &mut Reply) {
    reply
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

/// 405 for a request this node does not take by that method, saying why.
pub(crate) fn method_not_allowed(reason: &str) -> Reply {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, reason.into());
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    reply
}

/// A refused or failed write, with its status and one-line message.
pub(crate) fn write_error(error: &crate::writes::WriteError) -> Reply {
    text(error.status(), error.to_string().into())
}
