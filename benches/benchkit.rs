//! Bench-only helpers for `scripts/bench` (not part of groupcached).
//!
//! One binary, several modes:
//!
//! - `ceiling LISTEN VALUE_BYTES`: a bare hyper server that answers every
//!   request with the same `GetResponse` bytes and does no cache work: the
//!   ceiling the peer API is compared against. It uses the same runtime,
//!   http1 settings and allocator as groupcached, so the difference is the
//!   cache work.
//! - `origin LISTEN VALUE_BYTES [CACHE_CONTROL]`: a fast origin. `GET
//!   /v/{key}` answers VALUE_BYTES bytes at once (with that
//!   `Cache-Control`, if given), `/slow/{key}` after 200 ms; `/hits` is the
//!   number of value requests so far, `/reset` zeroes it. `/down` makes it
//!   close every value request's connection without a reply (uncounted)
//!   until `/up`; `/cache-control/{value}` changes the `Cache-Control`.
//! - `keys PEERS OWNER PREFIX COUNT`: prints COUNT keys `PREFIX<n>` that the
//!   golang ring (crc32, 50 replicas) over the comma-separated PEERS gives
//!   to OWNER, one a line.
//! - `zipf KEYS EXPONENT COUNT PREFIX`: prints COUNT keys `PREFIX<rank>`
//!   drawn from a Zipf(EXPONENT) distribution over ranks 0..KEYS (rank 0
//!   the most frequent), one a line, always the same sequence; prints
//!   `distinct=N` (keys drawn at least once) on stderr.
//! - `fill ADDR PATH_PREFIX KEYS_FILE CONCURRENCY`: GETs every key once over
//!   CONCURRENCY keep-alive connections; prints the rate and any failures.
//! - `storm ADDRS PATH_PREFIX KEY_PREFIX KEYS REQUESTS`: opens REQUESTS
//!   connections spread over the comma-separated ADDRS, then sends one GET
//!   on each at once, for key `KEY_PREFIX<i % KEYS>`; prints the time until
//!   the last reply and the status counts.
//! - `rate ADDR PATH_PREFIX KEYS_FILE RATE SECONDS CONNECTIONS`: a
//!   fixed-rate load (wrk2-like): each connection sends on a fixed schedule,
//!   and a request that could not go out on time because the previous reply
//!   was late counts its latency from its scheduled time, so a stalled
//!   server is not hidden by the generator waiting for it (no coordinated
//!   omission). Prints p50/p99/max in microseconds, the achieved rate, and
//!   how many requests were still unsent 2 s after the end.
//!
//! - `read ADDRS PATH_PREFIX KEYS_FILE CLIENTS VALUE_BYTES STOP_FILE`:
//!   CLIENTS readers GET random keys through the comma-separated ADDRS in
//!   turn until STOP_FILE exists, as users behind a load balancer would: a
//!   node that refuses connections is skipped (counted as `rerouted`), a
//!   kept-alive connection that breaks is opened again and the GET retried
//!   once. Prints the GETs, those `failed` (no reply, or not a 200) and
//!   those `wrong` (a body of another length than VALUE_BYTES).
//! - `hash SIZE...`: the nanoseconds XXH3-64, the hash of a value's ETag,
//!   takes over a value of each SIZE bytes.
//!
//! The load modes speak just enough HTTP/1.1 by hand (a request line, then
//! Content-Length or chunked replies) to stay much cheaper than the servers
//! they load. Run without a mode (as `cargo test --all-targets` and
//! `cargo bench` do) it only prints this usage and exits 0.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The allocator groupcached's binary uses, so the ceiling differs from
/// groupcached only by the cache work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `hash SIZE...`: nanoseconds XXH3-64 (the ETag's hash) takes over a
/// value of each SIZE bytes, the best of five runs of enough hashes to
/// take about 0.1 s: the cost an ETag adds to every reply of such a value.
fn hash(args: &[String]) -> Result<(), Error> {
    for (i, _) in args.iter().enumerate() {
        let size: usize = arg(args, i, "SIZE")?;
        let value = vec![b'v'; size];
        let times = (100_000_000 / size.max(64)).max(10);
        let best = (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                for _ in 0..times {
                    std::hint::black_box(xxhash_rust::xxh3::xxh3_64(std::hint::black_box(&value)));
                }
                started.elapsed().as_nanos() as f64 / times as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!("size={size} ns={best:.0}");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ceiling") => server(|| ceiling(&args[1..])),
        Some("origin") => server(|| origin(&args[1..])),
        Some("keys") => keys(&args[1..]),
        Some("zipf") => zipf(&args[1..]),
        Some("fill") => client(fill(&args[1..])),
        Some("storm") => client(storm(&args[1..])),
        Some("rate") => client(rate(&args[1..])),
        Some("read") => client(read(&args[1..])),
        Some("hash") => hash(&args[1..]),
        _ => {
            eprintln!("benchkit: bench helper for scripts/bench; modes: ceiling origin keys zipf fill storm rate read hash");
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("benchkit: {e}");
        std::process::exit(1);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> Result<T, Error> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("argument {} ({name}) missing or invalid", i + 1).into())
}

/// Servers run on the same runtime groupcached's binary uses.
fn server<F, Fut>(f: F) -> Result<(), Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    tokio::runtime::Runtime::new()?.block_on(f())
}

/// Load generators run on one thread, like `wrk -t1`.
fn client(f: impl std::future::Future<Output = Result<(), Error>>) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Accepts forever, serving each connection with `reply`, with the http1
/// settings of groupcached's `server::run`.
async fn serve<F>(listen: &str, reply: F) -> Result<(), Error>
where
    F: Fn(Request<hyper::body::Incoming>) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut http = http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .half_close(true);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let reply = reply.clone();
        let service = service_fn(move |request| {
            let response = reply(request);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

async fn ceiling(args: &[String]) -> Result<(), Error> {
    let listen: String = arg(args, 0, "LISTEN")?;
    let size: usize = arg(args, 1, "VALUE_BYTES")?;
    let body = groupcached::wire::encode_response(&vec![b'v'; size], groupcached::Expiry::Never);
    serve(&listen, move |_| {
        let mut reply = Response::new(Full::new(body.clone()));
        reply.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(groupcached::wire::PROTOBUF_CONTENT_TYPE),
        );
        reply
    })
    .await
}

async fn origin(args: &[String]) -> Result<(), Error> {
    let listen: String = arg(args, 0, "LISTEN")?;
    let size: usize = arg(args, 1, "VALUE_BYTES")?;
    let cache_control: Option<HeaderValue> = match args.get(2) {
        Some(text) => Some(HeaderValue::from_str(text)?),
        None => None,
    };
    let value = Bytes::from(vec![b'v'; size]);
    let state = Arc::new(OriginState {
        hits: AtomicU64::new(0),
        down: std::sync::atomic::AtomicBool::new(false),
        cache_control: std::sync::Mutex::new(cache_control),
    });
    let listener = TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let http = http1::Builder::new();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (value, state) = (value.clone(), state.clone());
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let (value, state) = (value.clone(), state.clone());
            async move { state.answer(request.uri().path(), value).await }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// What the bench origin counts and how it answers.
struct OriginState {
    hits: AtomicU64,
    /// Value requests get their connection closed, no reply.
    down: std::sync::atomic::AtomicBool,
    cache_control: std::sync::Mutex<Option<HeaderValue>>,
}

impl OriginState {
    async fn answer(
        &self,
        path: &str,
        value: Bytes,
    ) -> Result<Response<Full<Bytes>>, &'static str> {
        let is_value = path.starts_with("/v/") || path.starts_with("/slow/");
        if is_value && self.down.load(Relaxed) {
            // An error ends the connection without a reply.
            return Err("down");
        }
        let body = if path.starts_with("/v/") {
            self.hits.fetch_add(1, Relaxed);
            value
        } else if path.starts_with("/slow/") {
            self.hits.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            value
        } else if path == "/hits" {
            Bytes::from(format!("{}\n", self.hits.load(Relaxed)))
        } else if path == "/reset" {
            self.hits.store(0, Relaxed);
            Bytes::from_static(b"0\n")
        } else if path == "/down" || path == "/up" {
            self.down.store(path == "/down", Relaxed);
            Bytes::from_static(b"ok\n")
        } else if let Some(text) = path.strip_prefix("/cache-control/") {
            let header = HeaderValue::from_str(text).map_err(|_| "bad Cache-Control")?;
            *self.cache_control.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
            Bytes::from_static(b"ok\n")
        } else {
            let mut reply = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *reply.status_mut() = hyper::StatusCode::NOT_FOUND;
            return Ok(reply);
        };
        let mut reply = Response::new(Full::new(body));
        if is_value {
            if let Some(header) = self
                .cache_control
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                reply
                    .headers_mut()
                    .insert(hyper::header::CACHE_CONTROL, header);
            }
        }
        Ok(reply)
    }
}

fn keys(args: &[String]) -> Result<(), Error> {
    use std::io::Write;
    let peers: String = arg(args, 0, "PEERS")?;
    let owner: String = arg(args, 1, "OWNER")?;
    let prefix: String = arg(args, 2, "PREFIX")?;
    let count: usize = arg(args, 3, "COUNT")?;
    let peers: Vec<String> = peers.split(',').map(str::to_string).collect();
    let ring = groupcached::consistenthash::Ring::new(
        groupcached::consistenthash::DEFAULT_REPLICAS,
        &peers,
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut found = 0;
    for n in 0u64.. {
        if found == count {
            break;
        }
        let key = format!("{prefix}{n}");
        if ring.get(key.as_bytes()) == Some(owner.as_str()) {
            writeln!(out, "{key}")?;
            found += 1;
        }
    }
    out.flush()?;
    Ok(())
}

fn zipf(args: &[String]) -> Result<(), Error> {
    use std::io::Write;
    let keys: usize = arg(args, 0, "KEYS")?;
    let exponent: f64 = arg(args, 1, "EXPONENT")?;
    let count: usize = arg(args, 2, "COUNT")?;
    let prefix: String = arg(args, 3, "PREFIX")?;
    // Inverse transform on the cumulative weights of ranks 1..=KEYS.
    let mut cumulative = Vec::with_capacity(keys);
    let mut sum = 0.0;
    for rank in 1..=keys {
        sum += 1.0 / (rank as f64).powf(exponent);
        cumulative.push(sum);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut seen = vec![false; keys];
    let mut state = 0x5EED_u64;
    for _ in 0..count {
        // splitmix64: a fixed stream, the same keys in every run.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64 * sum;
        let rank = cumulative.partition_point(|&c| c < u).min(keys - 1);
        seen[rank] = true;
        writeln!(out, "{prefix}{rank}")?;
    }
    out.flush()?;
    eprintln!("distinct={}", seen.iter().filter(|&&s| s).count());
    Ok(())
}

fn read_keys(path: &str) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// One keep-alive HTTP/1.1 connection, written and parsed by hand.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
            host: addr.to_string(),
        })
    }

    fn request(&self, path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host).into_bytes()
    }

    /// Sends one request and reads its reply: (status, body length).
    async fn get(&mut self, request: &[u8]) -> Result<(u16, usize), Error> {
        // Readiness plus try_read/try_write: tokio's `net` feature alone.
        let mut written = 0;
        while written < request.len() {
            match self.stream.try_write(&request[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.stream.writable().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.read_reply().await
    }

    async fn fill(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.stream.readable().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn read_reply(&mut self) -> Result<(u16, usize), Error> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let mut length = None;
        let mut chunked = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
        self.buf.drain(..head_end);
        if chunked {
            return Ok((status, self.read_chunked().await?));
        }
        let length = length.unwrap_or(0);
        while self.buf.len() < length {
            self.fill().await?;
        }
        self.buf.drain(..length);
        Ok((status, length))
    }

    async fn read_chunked(&mut self) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)?;
            // The chunk, then its CRLF (for the last chunk: the empty trailer).
            while self.buf.len() < line_end + 2 + size + 2 {
                self.fill().await?;
            }
            self.buf.drain(..line_end + 2 + size + 2);
            total += size;
            if size == 0 {
                return Ok(total);
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn fill(args: &[String]) -> Result<(), Error> {
    let addr: String = arg(args, 0, "ADDR")?;
    let prefix: String = arg(args, 1, "PATH_PREFIX")?;
    let keys = Arc::new(read_keys(&arg::<String>(args, 2, "KEYS_FILE")?)?);
    let concurrency: usize = arg(args, 3, "CONCURRENCY")?;
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (addr, prefix, keys) = (addr.clone(), prefix.clone(), keys.clone());
        let (next, failures) = (next.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            loop {
                let i = next.fetch_add(1, Relaxed) as usize;
                let Some(key) = keys.get(i) else {
                    return Ok::<_, Error>(());
                };
                let request = conn.request(&format!("{prefix}{key}"));
                match conn.get(&request).await {
                    Ok((200, _)) => {}
                    Ok(_) => {
                        failures.fetch_add(1, Relaxed);
                    }
                    Err(_) => {
                        failures.fetch_add(1, Relaxed);
                        conn = Conn::open(&addr).await?;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "requests={} seconds={seconds:.2} rps={:.0} failures={}",
        keys.len(),
        keys.len() as f64 / seconds,
        failures.load(Relaxed)
    );
    Ok(())
}

async fn read(args: &[String]) -> Result<(), Error> {
    let addrs: Vec<String> = arg::<String>(args, 0, "ADDRS")?
        .split(',')
        .map(str::to_string)
        .collect();
    let prefix: String = arg(args, 1, "PATH_PREFIX")?;
    let keys = Arc::new(read_keys(&arg::<String>(args, 2, "KEYS_FILE")?)?);
    let clients: usize = arg(args, 3, "CLIENTS")?;
    let value_bytes: usize = arg(args, 4, "VALUE_BYTES")?;
    let stop: String = arg(args, 5, "STOP_FILE")?;
    let counts = Arc::new([(); 4].map(|()| AtomicU64::new(0))); // gets, failed, wrong, rerouted
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (addrs, prefix, keys, counts, stop) = (
            addrs.clone(),
            prefix.clone(),
            keys.clone(),
            counts.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conns: Vec<Option<Conn>> = addrs.iter().map(|_| None).collect();
            let mut random = 0x9E37_79B9_7F4A_7C15_u64 ^ client as u64;
            for n in 0u64.. {
                if n % 100 == 0 && std::path::Path::new(&stop).exists() {
                    return;
                }
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                let key = &keys[(random % keys.len() as u64) as usize];
                let node = (client + n as usize) % addrs.len();
                let path = format!("{prefix}{key}");
                let reply = match conns[node].take() {
                    Some(mut conn) => match conn.get(&conn.request(&path)).await {
                        Ok(reply) => Ok((conn, reply)),
                        // A kept-alive connection the node closed: once more.
                        Err(_) => read_once(&addrs[node], &path).await,
                    },
                    None => read_once(&addrs[node], &path).await,
                };
                match reply {
                    Ok((conn, (status, len))) => {
                        conns[node] = Some(conn);
                        counts[0].fetch_add(1, Relaxed);
                        if status != 200 {
                            counts[1].fetch_add(1, Relaxed);
                        } else if len != value_bytes {
                            counts[2].fetch_add(1, Relaxed);
                        }
                    }
                    Err(ReadError::Refused) => {
                        counts[3].fetch_add(1, Relaxed);
                        // The node is down: a moment before trying it again.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(ReadError::Broken) => {
                        counts[0].fetch_add(1, Relaxed);
                        counts[1].fetch_add(1, Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let [gets, failed, wrong, rerouted] = counts.as_ref().each_ref().map(|c| c.load(Relaxed));
    println!("gets={gets} failed={failed} wrong={wrong} rerouted={rerouted}");
    Ok(())
}

enum ReadError {
    /// No connection: the node is down.
    Refused,
    /// Connected, and no reply.
    Broken,
}

/// One GET on a new connection to `addr`.
async fn read_once(addr: &str, path: &str) -> Result<(Conn, (u16, usize)), ReadError> {
    let mut conn = Conn::open(addr).await.map_err(|_| ReadError::Refused)?;
    let reply = conn
        .get(&conn.request(path))
        .await
        .map_err(|_| ReadError::Broken)?;
    Ok((conn, reply))
}

async fn storm(args: &[String]) -> Result<(), Error> {
    let addrs: String = arg(args, 0, "ADDRS")?;
    let prefix: String = arg(args, 1, "PATH_PREFIX")?;
    let key_prefix: String = arg(args, 2, "KEY_PREFIX")?;
    let keys: usize = arg(args, 3, "KEYS")?;
    let requests: usize = arg(args, 4, "REQUESTS")?;
    let addrs: Vec<&str> = addrs.split(',').collect();
    // Connect everything first, so the requests really are concurrent.
    let mut conns = Vec::with_capacity(requests);
    for i in 0..requests {
        conns.push(Conn::open(addrs[i % addrs.len()]).await?);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(requests + 1));
    let mut tasks = Vec::with_capacity(requests);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let request = conn.request(&format!("{prefix}{key_prefix}{}", i % keys));
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            conn.get(&request).await
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        let status = match task.await? {
            Ok((status, _)) => status.to_string(),
            Err(e) => format!("error({e})"),
        };
        *statuses.entry(status).or_insert(0) += 1;
    }
    println!(
        "ms={:.0} statuses={statuses:?}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

async fn rate(args: &[String]) -> Result<(), Error> {
    let addr: String = arg(args, 0, "ADDR")?;
    let prefix: String = arg(args, 1, "PATH_PREFIX")?;
    let keys = Arc::new(read_keys(&arg::<String>(args, 2, "KEYS_FILE")?)?);
    let rate: f64 = arg(args, 3, "RATE")?;
    let seconds: f64 = arg(args, 4, "SECONDS")?;
    let connections: usize = arg(args, 5, "CONNECTIONS")?;
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let duration = Duration::from_secs_f64(seconds);
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(Conn::open(&addr).await?);
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let (prefix, keys) = (prefix.clone(), keys.clone());
        // Spread the connections' schedules evenly over one interval.
        let offset = interval.mul_f64(c as f64 / connections as f64);
        tasks.push(tokio::spawn(async move {
            let requests: Vec<Vec<u8>> = keys
                .iter()
                .skip(c)
                .step_by(connections)
                .chain(keys.iter().take(1))
                .take(4096)
                .map(|key| conn.request(&format!("{prefix}{key}")))
                .collect();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = 0usize;
            // A server that cannot keep up falls behind the schedule; stop
            // at the deadline anyway and count what was never sent.
            let deadline = start + duration + Duration::from_secs(2);
            let mut missed = 0u64;
            let mut last_done = start;
            loop {
                let due = start + offset + interval.mul_f64(i as f64);
                if due.duration_since(start) >= duration {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    missed += 1;
                    i += 1;
                    continue;
                }
                tokio::time::sleep_until(due).await;
                // Latency counts from the scheduled time when the previous
                // reply on this connection came too late to send on time
                // (the server's delay), else from the real send time (tokio's
                // timer wakes up to a millisecond late: the generator's delay).
                let from = if last_done > due {
                    due
                } else {
                    tokio::time::Instant::now()
                };
                let result = conn.get(&requests[i % requests.len()]).await;
                last_done = tokio::time::Instant::now();
                match result {
                    Ok((200, _)) => latencies.push((last_done - from).as_micros() as u64),
                    _ => errors += 1,
                }
                i += 1;
            }
            (latencies, errors, missed)
        }));
    }
    let mut all = Vec::new();
    let (mut errors, mut missed) = (0, 0);
    for task in tasks {
        let (latencies, e, m) = task.await?;
        all.extend(latencies);
        errors += e;
        missed += m;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "p50_us={} p99_us={} max_us={} rps={:.0} errors={errors} missed={missed}",
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0),
        all.len() as f64 / seconds,
    );
    Ok(())
}
