//! Content codings (RFC 9110 §8.4, §12.5.3): which one a request's
//! `Accept-Encoding` lets a `--compress` group send, and making a value's
//! copy in it. gzip (flate2), Brotli (brotli) and Zstandard (zstd) are
//! offered; `x-gzip` is gzip.

use std::io::Write;

use hyper::header::HeaderValue;

/// A content coding a reply may be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Coding {
    /// The value's own bytes.
    Identity,
    Gzip,
    Br,
    Zstd,
}

/// The codings offered, most preferred first when a client accepts
/// several as much: Brotli and Zstandard shrink text more than gzip.
const OFFERED: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

/// A value smaller than this is sent as it is: compressing it saves less
/// than it costs.
pub(crate) const MIN_COMPRESS_BYTES: usize = 1024;

impl Coding {
    /// Its name in `Accept-Encoding` and `Content-Encoding`, and after the
    /// hash in its ETag.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// A small number per coding, for the compressed copies' cache.
    pub(crate) fn tag(self) -> u8 {
        self as u8
    }

    /// `Content-Encoding`'s value; `None` for identity.
    pub(crate) fn header_value(self) -> Option<HeaderValue> {
        (self != Coding::Identity).then(|| HeaderValue::from_static(self.name()))
    }

    /// `bytes` in this coding. Compressing into memory cannot fail.
    pub(crate) fn compress(self, bytes: &[u8]) -> Vec<u8> {
        let out = Vec::with_capacity(bytes.len() / 2);
        match self {
            Coding::Identity => bytes.to_vec(),
            Coding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
                // Writing into a Vec cannot fail.
                encoder.write_all(bytes).expect("gzip into memory");
                encoder.finish().expect("gzip into memory")
            }
            Coding::Br => {
                // Quality 5 of 11: most of Brotli's gain on text at a
                // speed close to gzip's; a 4 MiB window.
                let mut encoder = brotli::CompressorWriter::new(out, 4096, 5, 22);
                // Writing into a Vec cannot fail.
                encoder.write_all(bytes).expect("brotli into memory");
                encoder.into_inner()
            }
            // Level 3, zstd's default. Compressing into memory fails only
            // for lack of memory, which aborts anyway.
            Coding::Zstd => zstd::bulk::compress(bytes, 3).expect("zstd into memory"),
        }
    }
}

/// What a request's `Accept-Encoding` accepts, among what is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The compressed coding the client prefers, if it accepts one.
    pub(crate) best: Option<Coding>,
    /// Whether it accepts the value as it is.
    pub(crate) identity: bool,
}

impl Accepted {
    /// What a request without `Accept-Encoding` accepts: the value as it
    /// is (the safe default, RFC 9110 §12.5.3).
    pub(crate) const IDENTITY_ONLY: Accepted = Accepted {
        best: None,
        identity: true,
    };

    /// How to send a value of `len` bytes.
    pub(crate) fn plan(self, len: usize) -> Plan {
        match self.best {
            Some(coding) if !self.identity => Plan::Compress {
                coding,
                or_identity: false,
            },
            Some(coding) if len >= MIN_COMPRESS_BYTES => Plan::Compress {
                coding,
                or_identity: true,
            },
            _ if self.identity => Plan::Identity,
            _ => Plan::NotAcceptable,
        }
    }
}

/// How a value is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// As it is.
    Identity,
    /// In `coding`; as it is instead if it does not shrink and
    /// `or_identity`.
    Compress { coding: Coding, or_identity: bool },
    /// In nothing the client accepts: a 406.
    NotAcceptable,
}

/// What the `Accept-Encoding` fields of a request accept (several fields
/// are one list). A malformed member is skipped.
pub(crate) fn accepted<'a>(fields: impl Iterator<Item = &'a HeaderValue>) -> Accepted {
    let mut present = false;
    let mut star = None;
    let mut identity = None;
    let mut offered: [Option<u16>; OFFERED.len()] = [None; OFFERED.len()];
    for field in fields {
        present = true;
        // A field that is not visible ASCII has no member we know.
        let Ok(text) = field.to_str() else { continue };
        for member in text.split(',') {
            let Some((name, q)) = parse_member(member) else {
                continue;
            };
            if name == "*" {
                star = Some(q);
            } else if name.eq_ignore_ascii_case("identity") {
                identity = Some(q);
            } else if let Some(i) = OFFERED.iter().position(|c| is_named(*c, name)) {
                offered[i] = Some(q);
            }
        }
    }
    if !present {
        return Accepted::IDENTITY_ONLY;
    }
    // Unlisted codings get `*`'s weight, or none. The value as it is is
    // acceptable unless `identity;q=0`, or `*;q=0` without `identity`; a
    // weight given to it (by name or by `*`) outranks codings weighed less.
    let weight = |listed: Option<u16>| listed.or(star).unwrap_or(0);
    let identity_weight = identity.or(star);
    let mut best: Option<(Coding, u16)> = None;
    for (coding, listed) in OFFERED.into_iter().zip(offered) {
        let q = weight(listed);
        if q > 0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((coding, q));
        }
    }
    let identity = identity_weight != Some(0);
    Accepted {
        best: best
            .filter(|&(_, q)| !identity || identity_weight.is_none_or(|i| q >= i))
            .map(|(coding, _)| coding),
        identity,
    }
}

fn is_named(coding: Coding, name: &str) -> bool {
    name.eq_ignore_ascii_case(coding.name())
        || (coding == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"))
}

/// `coding [; q=qvalue]` as a name and a weight in thousandths.
fn parse_member(member: &str) -> Option<(&str, u16)> {
    let mut parts = member.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() {
        return None;
    }
    let mut q = 1000;
    for parameter in parts {
        let (key, value) = parameter.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            q = parse_qvalue(value.trim())?;
        }
    }
    Some((name, q))
}

/// RFC 9110 §12.4.2's `qvalue` (`0`, `0.5`, `1.000`) in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn accept(fields: &[&str]) -> Accepted {
        let values: Vec<HeaderValue> = fields
            .iter()
            .map(|f| HeaderValue::from_str(f).unwrap())
            .collect();
        accepted(values.iter())
    }

    fn best(field: &str) -> Option<Coding> {
        accept(&[field]).best
    }

    #[test]
    fn the_highest_weight_wins_and_ties_prefer_br_then_zstd_then_gzip() {
        assert_eq!(accept(&[]), Accepted::IDENTITY_ONLY);
        assert_eq!(best("gzip"), Some(Coding::Gzip));
        assert_eq!(best("x-gzip"), Some(Coding::Gzip));
        assert_eq!(best("GZIP"), Some(Coding::Gzip));
        assert_eq!(best("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(best("gzip;q=1.0, br;q=0.9"), Some(Coding::Gzip));
        assert_eq!(best("gzip;q=0.5, zstd;q=0.8, br;q=0.3"), Some(Coding::Zstd));
        assert_eq!(best("*"), Some(Coding::Br));
        assert_eq!(best("gzip;q=0.2, *;q=0.5"), Some(Coding::Br));
        assert_eq!(best("deflate, compress"), None);
        assert_eq!(
            accept(&["gzip", "br"]).best,
            Some(Coding::Br),
            "two fields, one list"
        );
        assert_eq!(
            best("gzip;q=2"),
            None,
            "a malformed weight drops its member"
        );
        assert_eq!(best("gzip;q=0.5.1"), None);
        assert_eq!(best(" gzip ; q=0.001 "), Some(Coding::Gzip));
    }

    #[test]
    fn identity_is_acceptable_unless_refused_by_name_or_by_star() {
        assert!(accept(&["gzip"]).identity);
        assert!(accept(&[""]).identity, "an empty field: identity only");
        assert_eq!(accept(&[""]).best, None);
        assert!(!accept(&["identity;q=0"]).identity);
        assert!(!accept(&["*;q=0"]).identity);
        assert!(accept(&["*;q=0, identity"]).identity);
        let refused = accept(&["identity;q=0, gzip;q=0"]);
        assert_eq!(
            refused,
            Accepted {
                best: None,
                identity: false
            }
        );
        assert_eq!(refused.plan(4096), Plan::NotAcceptable);
        // A coding weighed below identity is not used unless identity is
        // refused.
        assert_eq!(best("gzip;q=0.5, identity"), None);
        assert_eq!(best("gzip;q=0.5, identity;q=0"), Some(Coding::Gzip));
    }

    #[test]
    fn small_values_go_as_they_are_unless_identity_is_refused() {
        let gzip = accept(&["gzip"]);
        let or_identity = Plan::Compress {
            coding: Coding::Gzip,
            or_identity: true,
        };
        assert_eq!(gzip.plan(4096), or_identity);
        assert_eq!(gzip.plan(MIN_COMPRESS_BYTES), or_identity);
        assert_eq!(gzip.plan(MIN_COMPRESS_BYTES - 1), Plan::Identity);
        let only_gzip = accept(&["gzip, identity;q=0"]);
        let must = Plan::Compress {
            coding: Coding::Gzip,
            or_identity: false,
        };
        assert_eq!(only_gzip.plan(10), must);
        assert_eq!(Accepted::IDENTITY_ONLY.plan(4096), Plan::Identity);
    }

    #[test]
    fn each_coding_round_trips() {
        let text = "the same line of text, again and again\n".repeat(100);
        let gzip = Coding::Gzip.compress(text.as_bytes());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let br = Coding::Br.compress(text.as_bytes());
        let mut back = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let zstd = Coding::Zstd.compress(text.as_bytes());
        assert_eq!(
            zstd::bulk::decompress(&zstd, text.len()).unwrap(),
            text.as_bytes()
        );
        for coded in [&gzip, &br, &zstd] {
            assert!(coded.len() < text.len() / 10, "{}", coded.len());
        }
        assert_eq!(
            Coding::Gzip.compress(text.as_bytes()),
            gzip,
            "the same bytes every time"
        );
    }
}
