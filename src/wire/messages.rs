//! The bodies peers exchange: the protobuf `GetResponse` (with the forks'
//! `expire` field for values that expire, and `minute_qps`), written in
//! parts so a reply sends a cached value without copying it; and the
//! forks' write bodies, the protobuf `SetRequest` of a PUT and
//! groupcache-go's JSON remove-keys list.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::value::{Expiry, Value};

/// The golang/groupcache protobuf messages, generated from `proto/groupcache.proto`.
// GetRequest is unused: over HTTP the group and key travel in the path.
#[allow(dead_code, unreachable_pub)]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/groupcachepb.rs"));
}

/// A few bytes of a `GetResponse` that travel inline next to the cached
/// value: field 1's tag and the value's length before it, or the
/// `minute_qps` (2) and `expire` (3) fields after it. At most 20 bytes, so
/// a reply can send them without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponsePart {
    bytes: [u8; 20],
    len: u8,
}

impl ResponsePart {
    /// The bytes before a value of `value_len` bytes.
    pub(crate) fn value_header(value_len: usize) -> ResponsePart {
        ResponsePart::tagged(0x0a, value_len as u64) // field 1, length-delimited
    }

    /// The `expire` field for an expiry, or nothing for a value that never
    /// expires (golang's reply has no field 3).
    pub(crate) fn expire(expiry: Expiry) -> Option<ResponsePart> {
        // An int64 varint is the two's-complement bit pattern.
        let nanos = expiry.to_wire()?;
        Some(ResponsePart::tagged(0x18, nanos as u64)) // field 3, varint
    }

    /// The `expire` field as the forks always send it: 0 for a value that
    /// never expires.
    pub(crate) fn expire_always(expiry: Expiry) -> ResponsePart {
        ResponsePart::expire(expiry).unwrap_or(ResponsePart::tagged(0x18, 0))
    }

    /// The fields after the value: `minute_qps` if given (the owner's
    /// estimate of the key's requests per second; golang nodes skip it),
    /// then `expire` as [`ResponsePart::expire`] or, with `always`,
    /// [`ResponsePart::expire_always`].
    pub(crate) fn after_value(
        minute_qps: Option<f64>,
        expiry: Expiry,
        always: bool,
    ) -> Option<ResponsePart> {
        let expire = if always {
            Some(ResponsePart::expire_always(expiry))
        } else {
            ResponsePart::expire(expiry)
        };
        let Some(qps) = minute_qps else {
            return expire;
        };
        let mut part = ResponsePart {
            bytes: [0; 20],
            len: 9,
        };
        part.bytes[0] = 0x11; // field 2, 64-bit
        part.bytes[1..9].copy_from_slice(&qps.to_le_bytes());
        if let Some(expire) = expire {
            let tail = expire.as_bytes();
            part.bytes[9..9 + tail.len()].copy_from_slice(tail);
            part.len += tail.len() as u8;
        }
        Some(part)
    }

    fn tagged(tag: u8, varint: u64) -> ResponsePart {
        let mut bytes = [0u8; 20];
        bytes[0] = tag;
        let unused = {
            let mut rest = &mut bytes[1..11];
            prost::encoding::encode_varint(varint, &mut rest);
            rest.len()
        };
        ResponsePart {
            bytes,
            len: (11 - unused) as u8,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The longest `GetResponse` body that carries a value of `value_len`
/// bytes: the value's tag and length, the value, `minute_qps` (its tag and
/// 8 bytes) and the longest `expire` field (its tag and a 10-byte varint).
/// A requester accepts this much from an owner whose values are limited to
/// `value_len`.
pub(crate) fn max_response_len(value_len: usize) -> usize {
    let header = ResponsePart::value_header(value_len).as_bytes().len();
    value_len.saturating_add(header + 9 + 11)
}

/// The body sent for a value: `GetResponse{value}` (field 1 always, so an
/// empty value is `0a 00`, as golang sends it), then `expire` if the value
/// expires.
pub fn encode_response(value: &[u8], expiry: Expiry) -> Bytes {
    let mut out = BytesMut::with_capacity(value.len() + 22);
    out.put_slice(ResponsePart::value_header(value.len()).as_bytes());
    out.put_slice(value);
    if let Some(expire) = ResponsePart::expire(expiry) {
        out.put_slice(expire.as_bytes());
    }
    out.freeze()
}

/// Decodes a peer's `GetResponse` body: the value, and the owner's
/// `minute_qps` if it sent one (a finite, non-negative number). A missing
/// value is the empty value; a missing or zero `expire` is "never"; unknown
/// fields are skipped.
pub(crate) fn decode_response(body: Bytes) -> Result<(Value, Option<f64>), prost::DecodeError> {
    let response = pb::GetResponse::decode(body)?;
    let value = Value::new(
        response.value.unwrap_or_default(),
        Expiry::from_wire(response.expire),
    );
    let qps = response.minute_qps.filter(|q| q.is_finite() && *q >= 0.0);
    Ok((value, qps))
}

/// Why a write body from a peer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteBodyError {
    #[error("{0}")]
    Protobuf(String),
    #[error("SetRequest has no key")]
    NoKey,
    #[error("invalid request: {0}")]
    Json(String),
    #[error("remove-keys lists more than {0} keys")]
    TooManyKeys(usize),
}

/// The body of a fork's PUT: `SetRequest{group, key, value, expire}`, every
/// field present (`expire` 0 for "never"), as mailgun v2 sends it.
pub(crate) fn encode_set_request(group: &[u8], key: &[u8], value: &Value) -> Bytes {
    let request = pb::SetRequest {
        group: Some(Bytes::copy_from_slice(group)),
        key: Some(Bytes::copy_from_slice(key)),
        value: Some(value.bytes.clone()),
        expire: Some(value.expiry.to_wire().unwrap_or(0)),
    };
    Bytes::from(request.encode_to_vec())
}

/// Decodes a PUT body into the key it names (the key comes from the body,
/// not the URL) and the value with its expiry.
pub(crate) fn decode_set_request(body: Bytes) -> Result<(Bytes, Value), WriteBodyError> {
    let request =
        pb::SetRequest::decode(body).map_err(|e| WriteBodyError::Protobuf(e.to_string()))?;
    let key = request.key.ok_or(WriteBodyError::NoKey)?;
    let value = Value::new(
        request.value.unwrap_or_default(),
        Expiry::from_wire(request.expire),
    );
    Ok((key, value))
}

/// groupcache-go v3's remove-keys body, `{"group":"g","keys":["k1",...]}`.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RemoveKeys {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_keys"
    )]
    pub keys: Vec<String>,
}

/// The most keys one remove-keys body may list; decoding stops at the
/// next one, so a body of millions of empty keys costs no more than this.
pub(crate) const MAX_REMOVE_KEYS: usize = 10_000;

/// The error text a list over [`MAX_REMOVE_KEYS`] ends decoding with.
const TOO_MANY_KEYS: &str = "more keys than the limit";

/// `keys`, refused as soon as it has more than [`MAX_REMOVE_KEYS`].
fn at_most_max_keys<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_REMOVE_KEYS} keys")
        }

        fn visit_seq<A>(self, mut seq: A) -> Result<Vec<String>, A::Error>
        where
            A: serde::de::SeqAccess<'de>,
        {
            let mut keys = Vec::new();
            while let Some(key) = seq.next_element::<String>()? {
                if keys.len() == MAX_REMOVE_KEYS {
                    return Err(serde::de::Error::custom(TOO_MANY_KEYS));
                }
                keys.push(key);
            }
            Ok(keys)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

/// Encodes a remove-keys body for `group` and `keys`.
pub(crate) fn encode_remove_keys(group: &str, keys: Vec<String>) -> Bytes {
    let body = RemoveKeys {
        group: group.to_string(),
        keys,
    };
    // Serializing strings into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes a remove-keys body.
pub(crate) fn decode_remove_keys(body: &[u8]) -> Result<RemoveKeys, WriteBodyError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY_KEYS) {
            WriteBodyError::TooManyKeys(MAX_REMOVE_KEYS)
        } else {
            WriteBodyError::Json(e.to_string())
        }
    })
}
