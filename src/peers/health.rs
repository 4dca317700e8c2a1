//! Peer health: whether another node answers, told apart from how long its
//! loads take.
//!
//! **Back-off.** A fetch that times out or cannot connect marks the peer
//! down for a back-off that starts at 500 ms and doubles with each failure
//! in a row, up to 5 s. While a peer is down, fetches from it fail at once
//! with [`PeerError::Down`] (so its keys load locally without waiting),
//! except one trial fetch at a time once the back-off has passed; the first
//! fetch that gets any answer marks it up again. A fetch the group stops
//! waiting for at the peer deadline counts as one that timed out.
//!
//! **Half-alive peers.** A peer may answer probes at once and still never
//! answer a fetch (a wedged handler, a proxy in front of a dead process).
//! Probes cannot tell it from a live owner behind a slow origin, so the
//! fetches that find it out are those that reach their whole deadline: the
//! peer is marked down as above, and remembered as *hung*. A hung peer's
//! trial fetch after each back-off runs on a task of its own with the
//! whole deadline; the user whose fetch it is waits for it only half the
//! probe timeout, in which a live peer answers, and then fails with
//! [`PeerError::Down`] and loads locally, so no user waits on the peer for
//! long again. The trial's answer, whenever it comes, marks the peer up.
//! A peer that has only refused connections or missed probes fails its
//! trials fast, and they stay ordinary fetches.
//!
//! **Liveness probes.** A fetch may rightly wait long: the owner may be
//! loading the key from a slow origin. A peer that answers nothing at all
//! (stopped, hung, cut off) looks the same to that fetch until its deadline.
//! So once a fetch has waited half the probe timeout, the peer is probed:
//! `GET {peer}{base_path}`, which every groupcache node answers at once
//! (golang and the forks with `400`, groupcached too) without loading
//! anything. One probe at a time per peer is shared by every waiting fetch,
//! and repeated while they wait. A probe that gets no answer within the
//! probe timeout marks the peer down at once, and every fetch waiting on it
//! ends with [`PeerError::NoAnswer`]: their keys load locally. A probe that
//! gets any answer leaves the fetches their whole deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Uri};
// tokio's clock, so that tests can pause and advance it.
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::http_client::{HostLimit, HttpClient, HttpError};
use crate::peers::picker::PeerError;

/// The first back-off of a peer marked down, and the longest.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));

/// The default probe timeout (`--probe-timeout`).
pub(crate) const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a peer answers, and when to try it again if not.
pub(crate) struct Health {
    state: Mutex<HealthState>,
    /// `None` when probing is off.
    prober: Option<Prober>,
    /// Bumped each time a probe goes unanswered; waiting fetches watch it.
    unanswered: watch::Sender<u64>,
}

#[derive(Default)]
struct HealthState {
    /// Unreachable fetches (or unanswered probes) in a row; 0 means up.
    failures: u32,
    /// While down: when the next trial fetch may go.
    retry_at: Option<Instant>,
    /// A trial fetch is in flight.
    trying: bool,
    /// A fetch got no answer within its whole deadline, and none has been
    /// answered since: trials go in the background.
    hung: bool,
    /// The last fetch error of any kind, kept after the peer recovers.
    last_error: Option<String>,
}

/// How a peer is probed, and what the probes found.
struct Prober {
    /// `{peer}{base_path}`.
    url: Uri,
    /// The peer client's pool, with the probe timeout as its deadline.
    http: HttpClient,
    /// Probes do not queue behind fetches for the peer's connections.
    limit: HostLimit,
    timeout: Duration,
    in_flight: AtomicBool,
    /// When the last probe ended, answered or not.
    last_ended: Mutex<Option<Instant>>,
    sent: AtomicU64,
    unanswered: AtomicU64,
}

/// A peer's health as `GET /peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct HealthReport {
    /// `up`, `down` or `probing` (a trial fetch is in flight).
    pub state: &'static str,
    /// Unreachable fetches or unanswered probes in a row.
    pub failures: u32,
    /// While down: milliseconds until the next trial fetch may go.
    pub retry_in_ms: u64,
    /// The last fetch error of any kind, kept after the peer recovers.
    pub last_error: Option<String>,
    /// Liveness probes sent to the peer.
    pub probes: u64,
    /// Liveness probes it did not answer in time.
    pub probes_unanswered: u64,
}

/// How an admitted fetch ended, for the peer's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The peer answered, whatever it said.
    Answered,
    /// The fetch could not connect, or the connection broke.
    Unreachable,
    /// The fetch got no answer within its whole deadline.
    TimedOut,
    /// A probe already counted the failure that ended the fetch.
    Counted,
}

impl Outcome {
    /// What `result` says about the peer.
    pub(crate) fn of<T>(result: &Result<T, PeerError>) -> Outcome {
        match result {
            Err(PeerError::Http(HttpError::Timeout(_))) => Outcome::TimedOut,
            Err(PeerError::Http(e)) if e.is_unreachable() => Outcome::Unreachable,
            Err(PeerError::NoAnswer(_) | PeerError::Down) => Outcome::Counted,
            _ => Outcome::Answered,
        }
    }
}

/// One admitted fetch. Dropped unfinished once the caller's deadline has
/// passed (the group gave up on it), it counts as a fetch that timed out;
/// dropped earlier (a cancelled trial), it lets the next fetch try instead.
pub(crate) struct Attempt {
    health: Arc<Health>,
    trial: bool,
    /// A hung peer's trial: sent on a task of its own, not for a user.
    background: bool,
    finished: bool,
    /// The caller's deadline and the timeout it ends, if it has one.
    deadline: Option<(Instant, Duration)>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            state: Mutex::default(),
            prober: None,
            unanswered: watch::Sender::new(0),
        }
    }
}

impl Health {
    /// Health with liveness probes of `url` (`{peer}{base_path}`) through
    /// `http`, each answered within `timeout`; `Duration::ZERO` turns
    /// probing off.
    pub(crate) fn probing(url: Uri, http: &HttpClient, timeout: Duration) -> Health {
        let prober = (!timeout.is_zero()).then(|| Prober {
            url,
            http: http.with_timeout(timeout),
            limit: HttpClient::host_limit(1),
            timeout,
            in_flight: AtomicBool::new(false),
            last_ended: Mutex::new(None),
            sent: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
        });
        Health {
            prober,
            ..Health::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // Every update leaves the state whole, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `None` while the peer is down and it is not yet time to try it (or
    /// another trial is in flight). A hung peer's trial comes back with
    /// [`Attempt::in_background`] set.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Attempt> {
        let mut state = self.lock();
        let trial = match state.retry_at {
            None => false,
            Some(at) if !state.trying && Instant::now() >= at => true,
            Some(_) => return None,
        };
        state.trying |= trial;
        Some(Attempt {
            health: self.clone(),
            trial,
            background: trial && state.hung,
            finished: false,
            deadline: None,
        })
    }

    /// How long a caller waits on a hung peer's trial before it goes on
    /// without it: as long as a fetch waits before it probes (half the
    /// probe timeout, or of its default with probes off), in which a live
    /// peer answers.
    pub(crate) fn trial_wait(&self) -> Duration {
        self.prober
            .as_ref()
            .map_or(DEFAULT_PROBE_TIMEOUT, |p| p.timeout)
            / 2
    }

    /// One more failure in a row: the peer is down for the next back-off.
    /// `hung`: the failure was a fetch left unanswered to its deadline; a
    /// peer that did that stays hung until it answers a fetch, whatever
    /// its next failures are (a missed probe does not make it a peer whose
    /// trials fail fast).
    fn mark_down(&self, state: &mut HealthState, hung: bool) {
        state.hung |= hung;
        state.failures = state.failures.saturating_add(1);
        state.retry_at = Some(Instant::now() + BACKOFF.after(state.failures));
    }

    /// Resolves with [`PeerError::NoAnswer`] if the peer stops answering
    /// while a fetch that began at `started` waits; never resolves while it
    /// answers, or when probing is off. Drop it when the fetch ends.
    pub(crate) async fn until_unanswered(self: Arc<Self>, started: Instant) -> PeerError {
        let Some(prober) = &self.prober else {
            return std::future::pending().await;
        };
        let every = prober.timeout / 2;
        tokio::time::sleep_until(started + every).await;
        let mut unanswered = self.unanswered.subscribe();
        loop {
            self.start_probe();
            tokio::select! {
                _ = unanswered.changed() => return PeerError::NoAnswer(prober.timeout),
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Sends a probe unless one is in flight or one ended within half the
    /// probe timeout (an unanswered one has already ended every fetch that
    /// was waiting).
    fn start_probe(self: &Arc<Self>) {
        let Some(prober) = &self.prober else { return };
        let recent = prober
            .last_ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < prober.timeout / 2);
        if recent || prober.in_flight.swap(true, Relaxed) {
            return;
        }
        prober.sent.fetch_add(1, Relaxed);
        let health = self.clone();
        tokio::spawn(async move {
            // `prober` is Some: this task was spawned through it.
            let Some(prober) = &health.prober else { return };
            let reply = prober
                .http
                .send(
                    Method::GET,
                    prober.url.clone(),
                    None,
                    Bytes::new(),
                    &prober.limit,
                )
                .await;
            let answered = !matches!(&reply, Err(e) if e.is_unreachable());
            *prober.last_ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            if !answered {
                prober.unanswered.fetch_add(1, Relaxed);
                let mut state = health.lock();
                state.last_error = Some(PeerError::NoAnswer(prober.timeout).to_string());
                health.mark_down(&mut state, false);
                drop(state);
                health.unanswered.send_modify(|n| *n += 1);
            }
            prober.in_flight.store(false, Relaxed);
        });
    }

    pub(crate) fn report(&self) -> HealthReport {
        let state = self.lock();
        let retry_in = state
            .retry_at
            .map(|at| at.saturating_duration_since(Instant::now()));
        let (probes, probes_unanswered) = self.prober.as_ref().map_or((0, 0), |p| {
            (p.sent.load(Relaxed), p.unanswered.load(Relaxed))
        });
        HealthReport {
            state: match (state.retry_at, state.trying) {
                (None, _) => "up",
                (Some(_), true) => "probing",
                (Some(_), false) => "down",
            },
            failures: state.failures,
            // Rounded up: 0 only once a trial fetch may really go.
            retry_in_ms: retry_in.map_or(0, |d| {
                d.as_nanos()
                    .div_ceil(1_000_000)
                    .try_into()
                    .unwrap_or(u64::MAX)
            }),
            last_error: state.last_error.clone(),
            probes,
            probes_unanswered,
        }
    }
}

impl Attempt {
    /// True for a hung peer's trial, which no user should wait for: send
    /// it on a task of its own and skip the peer for the user's fetch.
    pub(crate) fn in_background(&self) -> bool {
        self.background
    }

    /// The attempt counts as timed out if dropped unfinished `timeout`
    /// after `started` or later.
    pub(crate) fn giving_up_at(mut self, started: Instant, timeout: Duration) -> Self {
        self.deadline = started.checked_add(timeout).map(|at| (at, timeout));
        self
    }

    /// Records how the fetch ended, and its error.
    pub(crate) fn finish(&mut self, outcome: Outcome, error: Option<&PeerError>) {
        self.finished = true;
        let mut state = self.health.lock();
        if self.trial {
            state.trying = false;
        }
        if let Some(error) = error {
            state.last_error = Some(error.to_string());
        }
        match outcome {
            Outcome::Answered => {
                *state = HealthState {
                    last_error: state.last_error.take(),
                    ..HealthState::default()
                };
            }
            Outcome::Unreachable => self.health.mark_down(&mut state, false),
            Outcome::TimedOut => self.health.mark_down(&mut state, true),
            Outcome::Counted => {}
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        match self.deadline {
            Some((deadline, timeout)) if Instant::now() >= deadline => {
                let timed_out = PeerError::Http(HttpError::Timeout(timeout));
                self.finish(Outcome::TimedOut, Some(&timed_out));
            }
            _ if self.trial => self.health.lock().trying = false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[tokio::test(start_paused = true)]
    async fn a_peer_down_is_skipped_then_tried_once_and_comes_back() {
        let health = Arc::new(Health::default());
        assert_eq!(health.report().state, "up");
        let refused = PeerError::Status(StatusCode::SERVICE_UNAVAILABLE, String::new());
        health
            .admit()
            .unwrap()
            .finish(Outcome::Unreachable, Some(&refused));
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 1));
        assert_eq!(
            report.last_error.as_deref(),
            Some("server returned: 503 Service Unavailable")
        );
        assert_eq!(report.retry_in_ms, 500);
        assert!(health.admit().is_none(), "down: fetches fail at once");
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(health.admit().is_none(), "down until the back-off passes");
        tokio::time::advance(Duration::from_millis(1)).await;
        let mut trial = health.admit().expect("the back-off has passed");
        assert_eq!(health.report().state, "probing");
        assert!(health.admit().is_none(), "one trial at a time");
        trial.finish(Outcome::Unreachable, None);
        drop(trial);
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 2));
        assert_eq!(report.retry_in_ms, 1000, "the back-off doubled");
        tokio::time::advance(Duration::from_millis(1000)).await;
        health.admit().unwrap().finish(Outcome::Answered, None);
        assert_eq!(
            health.report(),
            HealthReport {
                state: "up",
                failures: 0,
                retry_in_ms: 0,
                last_error: Some("server returned: 503 Service Unavailable".into()),
                probes: 0,
                probes_unanswered: 0,
            }
        );
    }

    /// `retry_in_ms: 0` in `/peers` means a trial fetch may go now.
    #[tokio::test(start_paused = true)]
    async fn the_time_to_the_next_trial_is_rounded_up() {
        let health = Arc::new(Health::default());
        health.admit().unwrap().finish(Outcome::Unreachable, None);
        tokio::time::advance(Duration::from_micros(499_100)).await;
        assert_eq!(health.report().retry_in_ms, 1, "900 µs left");
        assert!(health.admit().is_none());
        tokio::time::advance(Duration::from_micros(900)).await;
        assert_eq!(health.report().retry_in_ms, 0);
        assert!(health.admit().is_some());
    }

    #[test]
    fn a_fetch_dropped_at_its_deadline_counts_as_timed_out() {
        let health = Arc::new(Health::default());
        // Dropped before the deadline (cancelled): nothing is recorded.
        let attempt = health.admit().unwrap();
        drop(attempt.giving_up_at(Instant::now(), Duration::from_secs(3600)));
        assert_eq!(health.report().state, "up");
        // Dropped at the deadline (the group stopped waiting): a timeout.
        let attempt = health.admit().unwrap();
        drop(attempt.giving_up_at(Instant::now(), Duration::ZERO));
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 1));
        assert_eq!(report.last_error.as_deref(), Some("timed out after 0ns"));
    }

    /// A peer that held a fetch to its deadline is tried again by a copy
    /// no user waits for; one that refused a connection is tried by the
    /// user's own fetch, which fails fast if it is still away.
    #[tokio::test(start_paused = true)]
    async fn a_hung_peer_is_tried_again_in_the_background() {
        let health = Arc::new(Health::default());
        let timed_out = PeerError::Http(HttpError::Timeout(Duration::from_secs(15)));
        health
            .admit()
            .unwrap()
            .finish(Outcome::TimedOut, Some(&timed_out));
        assert!(health.admit().is_none(), "down for the back-off");
        tokio::time::advance(BACKOFF.first()).await;
        let mut trial = health.admit().unwrap();
        assert!(trial.in_background());
        assert_eq!(health.report().state, "probing");
        assert!(health.admit().is_none(), "users skip it meanwhile");
        trial.finish(Outcome::TimedOut, Some(&timed_out));
        drop(trial);
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 2));
        tokio::time::advance(BACKOFF.first() * 2).await;
        let mut trial = health.admit().unwrap();
        assert!(trial.in_background());
        trial.finish(Outcome::Answered, None);
        drop(trial);
        let up = health.admit().unwrap();
        assert!(!up.in_background(), "up again: fetches are the users'");
        drop(up);

        let refused = PeerError::Http(HttpError::Request("connection refused".into()));
        health
            .admit()
            .unwrap()
            .finish(Outcome::Unreachable, Some(&refused));
        tokio::time::advance(BACKOFF.first()).await;
        let mut trial = health.admit().unwrap();
        assert!(!trial.in_background());
        // Hung once, it stays hung through other failures until it answers.
        trial.finish(Outcome::TimedOut, Some(&timed_out));
        drop(trial);
        tokio::time::advance(BACKOFF.first() * 2).await;
        let mut trial = health.admit().unwrap();
        assert!(trial.in_background());
        trial.finish(Outcome::Unreachable, Some(&refused));
        drop(trial);
        tokio::time::advance(BACKOFF.first() * 4).await;
        assert!(health.admit().unwrap().in_background());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trial_lets_the_next_fetch_try() {
        let health = Arc::new(Health::default());
        health.admit().unwrap().finish(Outcome::Unreachable, None);
        tokio::time::advance(BACKOFF.first()).await;
        drop(health.admit().unwrap());
        assert!(health.admit().is_some());
    }

    /// A listening socket that never accepts: the kernel completes the
    /// handshake and buffers the request, and no answer ever comes, as
    /// from a stopped process.
    fn hung_peer() -> (std::net::TcpListener, Uri) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/_groupcache/", listener.local_addr().unwrap());
        (listener, url.parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_no_probe_is_marked_down_at_once() {
        let (_listener, url) = hung_peer();
        let http = HttpClient::new(Duration::from_secs(15), 4);
        let health = Arc::new(Health::probing(url, &http, Duration::from_secs(1)));
        let started = Instant::now();
        let waiting = [
            tokio::spawn(health.clone().until_unanswered(started)),
            tokio::spawn(health.clone().until_unanswered(started)),
        ];
        for fetch in waiting {
            assert_eq!(
                fetch.await.unwrap(),
                PeerError::NoAnswer(Duration::from_secs(1))
            );
        }
        // Half the timeout of waiting, then one probe's timeout: not the
        // fetch's 15 s.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 1));
        assert_eq!(
            (report.probes, report.probes_unanswered),
            (1, 1),
            "one probe for both"
        );
        assert_eq!(
            report.last_error.as_deref(),
            Some("no answer to a liveness probe within 1s")
        );
        assert!(health.admit().is_none(), "new fetches skip the peer");
    }

    #[tokio::test(start_paused = true)]
    async fn without_probes_a_fetch_keeps_its_whole_deadline() {
        let (_listener, url) = hung_peer();
        let http = HttpClient::new(Duration::from_secs(15), 4);
        let health = Arc::new(Health::probing(url, &http, Duration::ZERO));
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            health.clone().until_unanswered(Instant::now()),
        )
        .await;
        assert!(waited.is_err(), "never resolves");
        assert_eq!(health.report().probes, 0);
    }

    #[test]
    fn a_fetch_ended_by_a_probe_is_not_counted_twice() {
        assert_eq!(
            Outcome::of::<()>(&Err(PeerError::NoAnswer(Duration::from_secs(1)))),
            Outcome::Counted
        );
        assert_eq!(
            Outcome::of::<()>(&Err(PeerError::Http(HttpError::Timeout(Duration::ZERO)))),
            Outcome::TimedOut
        );
        assert_eq!(
            Outcome::of::<()>(&Err(PeerError::Http(HttpError::Request("refused".into())))),
            Outcome::Unreachable
        );
        let refused = PeerError::Status(hyper::StatusCode::BAD_REQUEST, String::new());
        assert_eq!(Outcome::of::<()>(&Err(refused)), Outcome::Answered);
    }
}
