//! How long a value from an HTTP origin may be cached: the freshness
//! lifetime a shared cache computes from the origin's headers (RFC 9111
//! §4.2), and the per-group TTL policy (`--default-ttl`, `--max-ttl`)
//! that turns it into the value's [`Expiry`].
//!
//! The lifetime is `s-maxage`, else `max-age`, else `Expires` − `Date`,
//! minus the response's age when it arrived (the larger of the `Age` header
//! plus the request's round trip, and the apparent age `now` − `Date`).
//! `no-store`, `private`, `no-cache`, a lifetime used up on arrival, and
//! invalid or conflicting freshness information make the value
//! uncacheable: it answers the requests waiting for it and is stored by no
//! node. There is no heuristic freshness: a response that says nothing gets
//! the group's default TTL.
//!
//! The same headers give a value its [`Grace`] (RFC 5861): `stale-if-error`
//! and `stale-while-revalidate`, each falling back to the group's
//! `--stale-if-error` / `--stale-while-revalidate` when absent, and none at
//! all under `must-revalidate`, `proxy-revalidate` or `s-maxage` (RFC 9111
//! §4.2.4). A 404 or 410 gets a lifetime the same way; the group's
//! `--negative-ttl` stands in for the default TTL there, and
//! `--negative-max-ttl` caps it (by default at `--negative-ttl`, else a
//! minute): a remembered not-found hides a key the origin creates later,
//! so an origin's year-long `max-age` on a 404 must not hold for a year.

use std::time::{Duration, SystemTime};

use hyper::header::{HeaderMap, AGE, CACHE_CONTROL, DATE, EXPIRES};

use crate::units::MAX_DELTA_SECONDS;
use crate::value::{unix_nanos, Expiry, Grace};

/// What an origin's headers say about caching a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// Nothing: no `Cache-Control` lifetime, no `Expires`.
    Unspecified,
    /// Fresh for this long after it was received.
    Fresh(Duration),
    /// Must not be stored, or already stale on arrival.
    Uncacheable,
}

/// The freshness of a 200 response with `headers`, requested at
/// `request_time` and received at `response_time`.
pub(crate) fn lifetime(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Lifetime {
    let cc = CacheControl::parse(headers);
    if cc.no_store || cc.private || cc.no_cache || cc.invalid {
        return Lifetime::Uncacheable;
    }
    let date = single_date(headers, &DATE);
    let total = if let Some(seconds) = cc.s_maxage.or(cc.max_age) {
        Duration::from_secs(seconds)
    } else if headers.contains_key(EXPIRES) {
        // An invalid Expires (such as "0") means already expired.
        let Some(Ok(expires)) = single_date(headers, &EXPIRES) else {
            return Lifetime::Uncacheable;
        };
        let date = date.and_then(Result::ok).unwrap_or(response_time);
        expires.duration_since(date).unwrap_or_default()
    } else {
        return Lifetime::Unspecified;
    };
    let age = initial_age(
        headers,
        date.and_then(Result::ok),
        request_time,
        response_time,
    );
    match total.checked_sub(age) {
        Some(left) if !left.is_zero() => Lifetime::Fresh(left),
        _ => Lifetime::Uncacheable,
    }
}

/// RFC 9111 §4.2.3's corrected initial age. `Date` has one-second
/// resolution, so the apparent age counts from the end of the `Date`
/// second: an origin's own second never ages its response.
fn initial_age(
    headers: &HeaderMap,
    date: Option<SystemTime>,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent = date.map_or(Duration::ZERO, |date| {
        response_time
            .duration_since(date + Duration::from_secs(1))
            .unwrap_or_default()
    });
    // An invalid Age is ignored.
    let age_value = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(delta_seconds)
        .map_or(Duration::ZERO, Duration::from_secs);
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    apparent.max(age_value + delay)
}

/// The one date in header `name`: `None` when absent, `Some(Err)` when
/// unparsable or given twice with different values.
fn single_date(
    headers: &HeaderMap,
    name: &hyper::header::HeaderName,
) -> Option<Result<SystemTime, ()>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.any(|other| other != first) {
        return Some(Err(()));
    }
    Some(
        first
            .to_str()
            .ok()
            .and_then(|text| httpdate::parse_http_date(text.trim()).ok())
            .ok_or(()),
    )
}

/// What a response's headers say about serving it stale: each window the
/// origin gave (`None`: it said nothing about that one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StaleDirectives {
    if_error: Option<Duration>,
    while_revalidate: Option<Duration>,
}

/// The stale windows in `headers`. `must-revalidate`, `proxy-revalidate`
/// and `s-maxage` forbid serving stale at all; a window given without a
/// valid value, or twice with different values, is zero: an origin whose
/// wish is unclear gets no stale responses.
pub(crate) fn stale_directives(headers: &HeaderMap) -> StaleDirectives {
    let cc = CacheControl::parse(headers);
    if cc.must_revalidate || cc.s_maxage.is_some() {
        let none = Some(Duration::ZERO);
        return StaleDirectives {
            if_error: none,
            while_revalidate: none,
        };
    }
    let window = |(seconds, given): (Option<u64>, bool)| {
        given.then(|| Duration::from_secs(seconds.unwrap_or(0)))
    };
    StaleDirectives {
        if_error: window(cc.stale_if_error),
        while_revalidate: window(cc.stale_while_revalidate),
    }
}

/// `1*DIGIT`, capped at 2^31; anything else is invalid.
fn delta_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits, so the only parse error is overflow.
    Some(text.parse().unwrap_or(u64::MAX).min(MAX_DELTA_SECONDS))
}

/// The response directives that matter to a shared cache that cannot
/// revalidate.
#[derive(Debug, Default)]
struct CacheControl {
    no_store: bool,
    no_cache: bool,
    private: bool,
    s_maxage: Option<u64>,
    max_age: Option<u64>,
    /// A lifetime directive without a valid value, or given twice with
    /// different values: the response is treated as stale.
    invalid: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    must_revalidate: bool,
    /// `stale-if-error`: its seconds (`None` when invalid or conflicting),
    /// and whether it was given at all.
    stale_if_error: (Option<u64>, bool),
    /// `stale-while-revalidate`, as `stale_if_error`.
    stale_while_revalidate: (Option<u64>, bool),
}

impl CacheControl {
    /// Every `Cache-Control` field line, split at commas outside quoted
    /// strings; directive names are case-insensitive. Lines are read as
    /// bytes: non-ASCII or malformed parts never hide the directives
    /// around them, and a part that is not a valid directive but names
    /// `no-store`, `private` or `no-cache` counts as that directive, since
    /// storing what an origin may have forbidden is the worse mistake.
    fn parse(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for line in headers.get_all(CACHE_CONTROL) {
            for directive in split_outside_quotes(line.as_bytes()) {
                let (name, argument) = match directive.iter().position(|&b| b == b'=') {
                    Some(at) => (
                        trim(&directive[..at]),
                        Some(unquote(trim(&directive[at + 1..]))),
                    ),
                    None => (trim(directive), None),
                };
                let name = name.to_ascii_lowercase();
                let argument = argument.and_then(|a| std::str::from_utf8(a).ok());
                match &name[..] {
                    b"no-store" => cc.no_store = true,
                    // Qualified forms (`no-cache="Set-Cookie"`) too: a cache
                    // that cannot revalidate may not reuse them either.
                    b"no-cache" => cc.no_cache = true,
                    b"private" => cc.private = true,
                    b"s-maxage" => cc.invalid |= set_once(&mut cc.s_maxage, argument),
                    b"max-age" => cc.invalid |= set_once(&mut cc.max_age, argument),
                    b"must-revalidate" | b"proxy-revalidate" => cc.must_revalidate = true,
                    b"stale-if-error" => stale_window(&mut cc.stale_if_error, argument),
                    b"stale-while-revalidate" => {
                        stale_window(&mut cc.stale_while_revalidate, argument)
                    }
                    name if !is_token(name) => {
                        let has = |word: &[u8]| name.windows(word.len()).any(|w| w == word);
                        cc.no_store |= has(b"no-store");
                        cc.no_cache |= has(b"no-cache");
                        cc.private |= has(b"private");
                    }
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Records a lifetime directive; true when its value is invalid or
/// differs from an earlier one.
fn set_once(slot: &mut Option<u64>, argument: Option<&str>) -> bool {
    let Some(seconds) = argument.and_then(delta_seconds) else {
        return true;
    };
    match slot {
        Some(earlier) => *earlier != seconds,
        None => {
            *slot = Some(seconds);
            false
        }
    }
}

/// Records a stale window; an invalid value, or one that differs from an
/// earlier one, leaves the window given but without seconds.
fn stale_window(slot: &mut (Option<u64>, bool), argument: Option<&str>) {
    let seconds = argument.and_then(delta_seconds);
    *slot = match *slot {
        (_, false) => (seconds, true),
        (earlier, true) if earlier == seconds => (earlier, true),
        (_, true) => (None, true),
    };
}

/// The non-empty parts of `line` between commas outside quoted strings
/// (where a backslash escapes the next byte).
fn split_outside_quotes(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (mut quoted, mut escaped) = (false, false);
    line.split(move |&b| {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        }
        b == b',' && !quoted
    })
    .filter(|part| !trim(part).is_empty())
}

/// `text` without the spaces and tabs around it.
fn trim(text: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = text.iter().position(|b| !is_space(b)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |at| at + 1);
    &text[start..end]
}

fn unquote(text: &[u8]) -> &[u8] {
    text.strip_prefix(b"\"")
        .and_then(|rest| rest.strip_suffix(b"\""))
        .unwrap_or(text)
}

/// RFC 9110's `token`: what a directive name is made of.
fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A group's TTL policy. The origin's lifetime wins over `default_ttl`,
/// which applies only when the origin says nothing; `max_ttl` caps both
/// (and a value that would never expire). An uncacheable response stays
/// uncacheable. The stale windows and `negative_ttl` likewise apply only
/// where the origin says nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TtlPolicy {
    /// Lifetime of values whose origin gives none; `None`: never expire.
    pub default_ttl: Option<Duration>,
    /// The longest any value lives; `None`: no cap.
    pub max_ttl: Option<Duration>,
    /// `--stale-if-error`; `None`: zero.
    pub stale_if_error: Option<Duration>,
    /// `--stale-while-revalidate`; `None`: zero.
    pub stale_while_revalidate: Option<Duration>,
    /// `--negative-ttl`: how long a not-found whose origin gives no
    /// lifetime is remembered; `None`: not at all.
    pub negative_ttl: Option<Duration>,
    /// `--negative-max-ttl`: the longest a not-found is remembered,
    /// whatever its origin says; `None`: [`TtlPolicy::negative_cap`]'s
    /// default.
    pub negative_max_ttl: Option<Duration>,
}

/// The longest a not-found is remembered when neither `--negative-max-ttl`
/// nor `--negative-ttl` says: long enough to spare the origin a storm of
/// requests for one missing key, short enough that a key created at the
/// origin shows within a minute.
pub(crate) const DEFAULT_NEGATIVE_MAX_TTL: Duration = Duration::from_secs(60);

impl TtlPolicy {
    /// The expiry of a value received at `now` whose origin said `lifetime`.
    pub(crate) fn expiry(&self, lifetime: Lifetime, now: SystemTime) -> Expiry {
        let ttl = match lifetime {
            Lifetime::Uncacheable => return Expiry::UNCACHEABLE,
            Lifetime::Fresh(ttl) => Some(ttl),
            Lifetime::Unspecified => self.default_ttl,
        };
        let ttl = match (ttl, self.max_ttl) {
            (Some(ttl), Some(max)) => Some(ttl.min(max)),
            (ttl, max) => ttl.or(max),
        };
        match ttl {
            None => Expiry::Never,
            Some(ttl) => Expiry::after_at(ttl.min(MAX_TTL), unix_nanos(now)),
        }
    }

    /// The expiry of a not-found received at `now` whose origin said
    /// `lifetime`: as [`TtlPolicy::expiry`], with `negative_ttl` for a
    /// silent origin, uncacheable when there is none, and never later
    /// than [`TtlPolicy::negative_cap`] from `now`.
    pub(crate) fn negative_expiry(&self, lifetime: Lifetime, now: SystemTime) -> Expiry {
        let lifetime = match (lifetime, self.negative_ttl) {
            (Lifetime::Unspecified, Some(ttl)) => Lifetime::Fresh(ttl),
            (Lifetime::Unspecified, None) => Lifetime::Uncacheable,
            (said, _) => said,
        };
        match lifetime {
            Lifetime::Fresh(ttl) => {
                let ttl = ttl.min(self.negative_cap());
                if ttl.is_zero() {
                    return Expiry::UNCACHEABLE;
                }
                self.expiry(Lifetime::Fresh(ttl), now)
            }
            lifetime => self.expiry(lifetime, now),
        }
    }

    /// The longest a not-found is remembered: `negative_max_ttl`, else
    /// `negative_ttl` (an origin may shorten it, not lengthen it), else
    /// [`DEFAULT_NEGATIVE_MAX_TTL`].
    pub(crate) fn negative_cap(&self) -> Duration {
        match (self.negative_max_ttl, self.negative_ttl) {
            (Some(max), _) => max,
            (None, Some(ttl)) if !ttl.is_zero() => ttl,
            (None, _) => DEFAULT_NEGATIVE_MAX_TTL,
        }
    }

    /// The grace of a value whose origin said `said`: each window it gave,
    /// else the group's.
    pub(crate) fn grace(&self, said: StaleDirectives) -> Grace {
        Grace::new(
            said.if_error.or(self.stale_if_error).unwrap_or_default(),
            said.while_revalidate
                .or(self.stale_while_revalidate)
                .unwrap_or_default(),
        )
    }

    /// The grace of a value whose getter gave none.
    pub(crate) fn default_grace(&self) -> Grace {
        self.grace(StaleDirectives::default())
    }

    /// `expiry`, set by a peer's write, held to this policy at `now`:
    /// `max_ttl` caps it (a value that would never expire included), and
    /// no value lives longer than 2^31 seconds from now.
    pub(crate) fn cap(&self, expiry: Expiry, now: SystemTime) -> Expiry {
        let longest = self.max_ttl.map_or(MAX_TTL, |max| max.min(MAX_TTL));
        let latest = Expiry::after_at(longest, unix_nanos(now));
        match (expiry, latest) {
            (Expiry::Never, _) if self.max_ttl.is_none() => Expiry::Never,
            (Expiry::At(at), Expiry::At(limit)) => Expiry::At(at.min(limit)),
            (_, latest) => latest,
        }
    }
}

/// The longest lifetime any value gets.
const MAX_TTL: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

#[cfg(test)]
mod tests {
    use super::*;
    use http_cache_semantics::{CacheOptions, CachePolicy};
    use std::time::UNIX_EPOCH;
    use Lifetime::{Fresh, Uncacheable, Unspecified};

    /// The instant every row's response arrives (a whole second).
    fn t() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn date(offset: i64) -> String {
        let at = if offset < 0 {
            t() - Duration::from_secs(offset.unsigned_abs())
        } else {
            t() + Duration::from_secs(offset as u64)
        };
        httpdate::fmt_http_date(at)
    }

    fn secs(n: u64) -> Lifetime {
        Fresh(Duration::from_secs(n))
    }

    /// How one row relates to http-cache-semantics.
    enum Reference {
        /// Its `time_to_live` is our lifetime (0 for no lifetime).
        Agrees,
        /// The two policies differ here, for this reason.
        Differs(&'static str),
    }
    use Reference::{Agrees, Differs};

    struct Row {
        headers: Vec<(&'static str, String)>,
        /// Seconds between sending the request and receiving the response.
        round_trip: u64,
        want: Lifetime,
        reference: Reference,
    }

    fn row(headers: &[(&'static str, &str)], want: Lifetime, reference: Reference) -> Row {
        Row {
            headers: headers.iter().map(|(n, v)| (*n, v.to_string())).collect(),
            round_trip: 0,
            want,
            reference,
        }
    }

    fn table() -> Vec<Row> {
        let date_now = date(0);
        let (d_minus_30, d_plus_30) = (date(-30), date(30));
        let (exp_120, exp_3600, exp_minus_10) = (date(120), date(3600), date(-10));
        let mut rows = vec![
            row(&[], Unspecified, Agrees),
            row(&[("cache-control", "max-age=60")], secs(60), Agrees),
            row(&[("cache-control", "public, max-age=60")], secs(60), Agrees),
            row(&[("cache-control", "s-maxage=30, max-age=60")], secs(30), Agrees),
            row(&[("cache-control", "max-age=60, s-maxage=0")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=60"), ("expires", &exp_3600), ("date", &date_now)], secs(60), Agrees),
            row(&[("expires", &exp_120), ("date", &date_now)], secs(120), Agrees),
            row(&[("expires", &exp_120)], secs(120), Agrees),
            row(&[("expires", "0")], Uncacheable, Agrees),
            row(&[("expires", "next tuesday"), ("date", &date_now)], Uncacheable, Agrees),
            row(&[("expires", &exp_minus_10), ("date", &date_now)], Uncacheable, Agrees),
            row(&[("cache-control", "no-store, max-age=60")], Uncacheable, Agrees),
            row(&[("cache-control", "private, max-age=60")], Uncacheable, Agrees),
            row(&[("cache-control", "private=\"Set-Cookie\", max-age=60")], Uncacheable, Agrees),
            row(&[("cache-control", "no-cache, max-age=60")], Uncacheable, Agrees),
            row(&[("cache-control", "no-cache=\"Set-Cookie, X-A\", max-age=60")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=0")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=abc")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=-1")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=\"60\"")], secs(60), Agrees),
            row(&[("cache-control", "max-age=60"), ("cache-control", "max-age=60")], secs(60), Agrees),
            row(&[("cache-control", "max-age=60"), ("age", "20")], secs(40), Agrees),
            row(&[("cache-control", "max-age=60"), ("age", "60")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=60"), ("age", "100")], Uncacheable, Agrees),
            row(&[("cache-control", "max-age=60"), ("age", "x")], secs(60), Agrees),
            // Pragma has no meaning in a response (RFC 9111 §5.4), so the
            // default TTL applies; the crate reads it as no-cache, which
            // also gives a TTL of 0 here.
            row(&[("pragma", "no-cache")], Unspecified, Agrees),
            // The origin's clock is ahead: no apparent age.
            row(&[("cache-control", "max-age=60"), ("date", &d_plus_30)], secs(60), Agrees),
            // Differences, each with its reason.
            row(
                &[("cache-control", "max-age=60"), ("date", &d_minus_30)],
                secs(31),
                Differs("RFC 9111 §4.2.3 apparent age (Date 30 s old, less its 1 s resolution); the crate counts only Age"),
            ),
            row(
                &[("expires", &exp_120), ("date", &d_minus_30)],
                secs(121),
                Differs("Expires − Date is 150 s, minus the 29 s apparent age; the crate ignores apparent age"),
            ),
            row(
                &[("cache-control", "max-age=60, max-age=120")],
                Uncacheable,
                Differs("conflicting max-age is invalid freshness (RFC 9111 §4.2.1: treat as stale); the crate uses the first"),
            ),
            row(
                &[("expires", &exp_120), ("expires", &exp_3600)],
                Uncacheable,
                Differs("two different Expires are invalid; the crate reads the first"),
            ),
            row(
                &[("cache-control", "MAX-AGE=60")],
                secs(60),
                Differs("directive names are case-insensitive (RFC 9111 §5.2); the crate matches them exactly"),
            ),
            row(
                &[("cache-control", "max-age=99999999999")],
                secs(MAX_DELTA_SECONDS),
                Differs("delta-seconds above 2^31 are taken as 2^31 (RFC 9111 §1.2.2)"),
            ),
            row(
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
                secs(60),
                Differs("groupcached stores only the body, never Set-Cookie; the crate refuses to share cookies"),
            ),
        ];
        rows.push(Row {
            headers: vec![("cache-control", "max-age=60".into())],
            round_trip: 5,
            want: secs(55),
            reference: Differs("the request's round trip counts as age (§4.2.3); the crate only counts Age and time since the response"),
        });
        rows
    }

    fn headers(row: &Row) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &row.headers {
            map.append(*name, value.parse().expect("a valid header value"));
        }
        map
    }

    fn ours(row: &Row) -> Lifetime {
        lifetime(
            &headers(row),
            t() - Duration::from_secs(row.round_trip),
            t(),
        )
    }

    /// http-cache-semantics as a shared cache without heuristics: its
    /// time to live when the response arrives.
    fn reference(row: &Row) -> Duration {
        let request = hyper::Request::get("http://127.0.0.1/k").body(()).unwrap();
        let mut response = hyper::Response::new(());
        *response.headers_mut() = headers(row);
        let options = CacheOptions {
            shared: true,
            cache_heuristic: 0.0,
            ..CacheOptions::default()
        };
        let policy = CachePolicy::new_options(&request, &response, t(), options);
        if !policy.is_storable() {
            return Duration::ZERO;
        }
        policy.time_to_live(t())
    }

    #[test]
    fn freshness_table() {
        let rows = table();
        assert!(rows.len() >= 20);
        for row in &rows {
            assert_eq!(ours(row), row.want, "headers {:?}", row.headers);
            let ttl = match row.want {
                Fresh(ttl) => ttl,
                Unspecified | Uncacheable => Duration::ZERO,
            };
            match row.reference {
                Agrees => assert_eq!(
                    reference(row),
                    ttl,
                    "crate vs us, headers {:?}",
                    row.headers
                ),
                Differs(why) => assert_ne!(
                    reference(row),
                    ttl,
                    "listed as a difference ({why}) but agrees: {:?}",
                    row.headers
                ),
            }
        }
    }

    /// The lifetime of a response whose only header is `Cache-Control`
    /// with these bytes.
    fn lifetime_of_cache_control(bytes: &[u8]) -> Lifetime {
        let mut map = HeaderMap::new();
        let value = hyper::header::HeaderValue::from_bytes(bytes).expect("a valid field value");
        map.append(CACHE_CONTROL, value);
        lifetime(&map, t(), t())
    }

    #[test]
    fn non_ascii_bytes_hide_no_directive() {
        let cases: [(&[u8], Lifetime); 7] = [
            ("private, community=\"über\"".as_bytes(), Uncacheable),
            ("no-store, x=\"é\"".as_bytes(), Uncacheable),
            ("x=\"é\", max-age=60".as_bytes(), secs(60)),
            (b"max-age=60, \xff\xfe", secs(60)),
            // Unreadable, but it names no-store: not stored.
            (b"no-store\xff, max-age=60", Uncacheable),
            (b"\xe9private", Uncacheable),
            ("max-age=60, x=\"a\\\", no-store\"".as_bytes(), secs(60)),
        ];
        for (bytes, want) in cases {
            let shown = String::from_utf8_lossy(bytes);
            assert_eq!(
                lifetime_of_cache_control(bytes),
                want,
                "Cache-Control: {shown}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever surrounds it outside quotes, `no-store` or `private`
        /// is never ignored.
        #[test]
        fn forbidding_directives_survive_any_neighbours(
            before in proptest::collection::vec(field_byte(), 0..40),
            after in proptest::collection::vec(field_byte(), 0..40),
            which in proptest::sample::select(vec!["no-store", "private", "PRIVATE", "no-cache"]),
        ) {
            let mut line = before;
            line.extend_from_slice(b", ");
            line.extend_from_slice(which.as_bytes());
            line.extend_from_slice(b", ");
            line.extend_from_slice(&after);
            proptest::prop_assert_eq!(lifetime_of_cache_control(&line), Uncacheable);
        }

        /// Any bytes a field may hold: a lifetime or nothing, never a panic.
        #[test]
        fn any_field_bytes_parse(line in proptest::collection::vec(field_byte(), 0..80)) {
            let _ = lifetime_of_cache_control(&line);
        }
    }

    /// A byte a header field value may hold, other than a quote or
    /// backslash (which could take a neighbouring directive into a quoted
    /// string).
    fn field_byte() -> impl proptest::strategy::Strategy<Value = u8> {
        use proptest::strategy::Strategy;
        proptest::prop_oneof![
            (0x20u8..0x7f).prop_filter("no quoting", |b| *b != b'"' && *b != b'\\'),
            0x80u8..=0xff,
            proptest::strategy::Just(b'\t'),
        ]
    }

    #[test]
    fn peer_writes_are_capped_like_loads() {
        let now = t();
        let at = |s: u64| Expiry::At(unix_nanos(now + Duration::from_secs(s)));
        let max = TtlPolicy {
            default_ttl: None,
            max_ttl: Some(Duration::from_secs(10)),
            ..TtlPolicy::default()
        };
        let none = TtlPolicy::default();
        assert_eq!(max.cap(Expiry::Never, now), at(10), "expire=0 capped");
        assert_eq!(max.cap(Expiry::At(i64::MAX), now), at(10));
        assert_eq!(max.cap(at(5), now), at(5));
        assert_eq!(max.cap(Expiry::UNCACHEABLE, now), Expiry::UNCACHEABLE);
        assert_eq!(
            none.cap(Expiry::Never, now),
            Expiry::Never,
            "golang's never"
        );
        assert_eq!(
            none.cap(Expiry::At(i64::MAX), now),
            at(MAX_DELTA_SECONDS),
            "clamped to 2^31 s"
        );
        assert_eq!(none.cap(at(60), now), at(60));
    }

    #[test]
    fn policy_precedence() {
        let now = t();
        let at = |s: u64| Expiry::At(unix_nanos(now + Duration::from_secs(s)));
        let none = TtlPolicy::default();
        let default = TtlPolicy {
            default_ttl: Some(Duration::from_secs(30)),
            max_ttl: None,
            ..TtlPolicy::default()
        };
        let max = TtlPolicy {
            default_ttl: None,
            max_ttl: Some(Duration::from_secs(10)),
            ..TtlPolicy::default()
        };
        let both = TtlPolicy {
            default_ttl: Some(Duration::from_secs(30)),
            max_ttl: Some(Duration::from_secs(10)),
            ..TtlPolicy::default()
        };
        assert_eq!(
            none.expiry(Unspecified, now),
            Expiry::Never,
            "golang's semantics"
        );
        assert_eq!(none.expiry(secs(60), now), at(60));
        assert_eq!(default.expiry(Unspecified, now), at(30));
        assert_eq!(
            default.expiry(secs(60), now),
            at(60),
            "the origin wins over the default"
        );
        assert_eq!(max.expiry(secs(60), now), at(10));
        assert_eq!(max.expiry(secs(5), now), at(5));
        assert_eq!(
            max.expiry(Unspecified, now),
            at(10),
            "the cap applies to never"
        );
        assert_eq!(
            both.expiry(Unspecified, now),
            at(10),
            "the cap applies to the default"
        );
        for policy in [none, default, max, both] {
            assert_eq!(policy.expiry(Uncacheable, now), Expiry::UNCACHEABLE);
        }
        let zero = TtlPolicy {
            default_ttl: Some(Duration::ZERO),
            max_ttl: None,
            ..TtlPolicy::default()
        };
        assert_eq!(zero.expiry(Unspecified, now), Expiry::UNCACHEABLE);
    }

    fn directives(cache_control: &[&str]) -> StaleDirectives {
        let mut map = HeaderMap::new();
        for line in cache_control {
            map.append(CACHE_CONTROL, line.parse().unwrap());
        }
        stale_directives(&map)
    }

    #[test]
    fn stale_windows_from_the_origin_and_the_group() {
        let s = |n: u64| Some(Duration::from_secs(n));
        let said = |if_error, while_revalidate| StaleDirectives {
            if_error,
            while_revalidate,
        };
        let rows: &[(&[&str], StaleDirectives)] = &[
            (&[], said(None, None)),
            (&["max-age=1"], said(None, None)),
            (&["max-age=1, stale-if-error=60"], said(s(60), None)),
            (&["max-age=1, stale-while-revalidate=30"], said(None, s(30))),
            (
                &["max-age=1, STALE-IF-ERROR=\"60\", stale-while-revalidate=5"],
                said(s(60), s(5)),
            ),
            (
                &["max-age=1, stale-if-error=60", "stale-if-error=60"],
                said(s(60), None),
            ),
            // Forbidden by RFC 9111 §4.2.4 whatever else is said.
            (
                &["max-age=1, stale-if-error=60, must-revalidate"],
                said(s(0), s(0)),
            ),
            (
                &["max-age=1, proxy-revalidate, stale-while-revalidate=9"],
                said(s(0), s(0)),
            ),
            (&["s-maxage=1, stale-if-error=60"], said(s(0), s(0))),
            // Unclear: no stale at all.
            (&["max-age=1, stale-if-error=abc"], said(s(0), None)),
            (&["max-age=1, stale-if-error=-5"], said(s(0), None)),
            (&["max-age=1, stale-if-error"], said(s(0), None)),
            (
                &["max-age=1, stale-if-error=60, stale-if-error=61"],
                said(s(0), None),
            ),
            (
                &["max-age=1, stale-if-error=60", "stale-if-error=1"],
                said(s(0), None),
            ),
            (
                &["max-age=1, stale-if-error=60, stale-if-error=x"],
                said(s(0), None),
            ),
            // Huge: 2^31 s at most.
            (
                &["max-age=1, stale-if-error=99999999999999999999"],
                said(s(MAX_DELTA_SECONDS), None),
            ),
            // Inside a quoted string it is not a directive.
            (&["max-age=1, x=\"stale-if-error=60\""], said(None, None)),
        ];
        for (lines, want) in rows {
            assert_eq!(directives(lines), *want, "Cache-Control: {lines:?}");
        }
        let group = TtlPolicy {
            stale_if_error: s(10),
            stale_while_revalidate: s(3),
            ..TtlPolicy::default()
        };
        let grace =
            |sie: u64, swr: u64| Grace::new(Duration::from_secs(sie), Duration::from_secs(swr));
        assert_eq!(group.grace(directives(&[])), grace(10, 3), "the group's");
        assert_eq!(
            group.grace(directives(&["stale-if-error=60"])),
            grace(60, 3)
        );
        assert_eq!(group.grace(directives(&["stale-if-error=0"])), grace(0, 3));
        assert_eq!(group.grace(directives(&["must-revalidate"])), Grace::NONE);
        assert_eq!(TtlPolicy::default().default_grace(), Grace::NONE);
        assert_eq!(
            group
                .grace(directives(&["stale-if-error=99999999999999999999"]))
                .if_error(),
            Duration::from_secs(MAX_DELTA_SECONDS)
        );
    }

    #[test]
    fn not_founds_live_as_their_headers_or_the_negative_ttl_say() {
        let now = t();
        let at = |s: u64| Expiry::At(unix_nanos(now + Duration::from_secs(s)));
        let none = TtlPolicy::default();
        let negative = TtlPolicy {
            negative_ttl: Some(Duration::from_secs(30)),
            max_ttl: Some(Duration::from_secs(20)),
            ..TtlPolicy::default()
        };
        let zero = TtlPolicy {
            negative_ttl: Some(Duration::ZERO),
            ..TtlPolicy::default()
        };
        assert_eq!(none.negative_expiry(Unspecified, now), Expiry::UNCACHEABLE);
        assert_eq!(zero.negative_expiry(Unspecified, now), Expiry::UNCACHEABLE);
        assert_eq!(none.negative_expiry(secs(60), now), at(60), "the origin's");
        assert_eq!(negative.negative_expiry(Unspecified, now), at(20), "capped");
        assert_eq!(negative.negative_expiry(secs(5), now), at(5));
        assert_eq!(
            negative.negative_expiry(Uncacheable, now),
            Expiry::UNCACHEABLE
        );
    }

    #[test]
    fn an_origins_long_lifetime_for_a_not_found_is_capped() {
        let now = t();
        let at = |s: u64| Expiry::At(unix_nanos(now + Duration::from_secs(s)));
        let year = secs(31_536_000);
        let five = TtlPolicy {
            negative_ttl: Some(Duration::from_secs(5)),
            ..TtlPolicy::default()
        };
        assert_eq!(five.negative_expiry(year, now), at(5), "--negative-ttl");
        assert_eq!(five.negative_expiry(secs(2), now), at(2), "shorter stays");
        let silent = TtlPolicy::default();
        assert_eq!(silent.negative_expiry(year, now), at(60), "the default");
        let capped = TtlPolicy {
            negative_max_ttl: Some(Duration::from_secs(600)),
            ..five
        };
        assert_eq!(capped.negative_expiry(year, now), at(600));
        assert_eq!(capped.negative_expiry(Unspecified, now), at(5));
        let off = TtlPolicy {
            negative_max_ttl: Some(Duration::ZERO),
            ..five
        };
        assert_eq!(off.negative_expiry(year, now), Expiry::UNCACHEABLE);
        // Values are not held to it.
        assert_eq!(five.expiry(year, now), at(31_536_000));
    }
}
