//! The `groupcached` command: parse and check flags, start logging, build
//! the app, bind (or take the listener systemd passed), and run the node
//! until SIGINT or SIGTERM (or until a background task fails: exit 1).
//! `src/main.rs` calls [`main`] and chooses the allocator; nothing else here
//! is public.

pub(crate) mod app;
pub(crate) mod background;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod tls_flags;
pub(crate) mod warm_restart;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::cmd::app::App;
use crate::cmd::cli::{Args, LogFormat};

/// `--generate WHAT`: the man page or a shell's completions, on stdout.
fn generate(what: &str) -> ExitCode {
    use clap::CommandFactory;
    let mut command = Args::command();
    let mut out = std::io::stdout().lock();
    let written = match what.parse::<clap_complete::Shell>() {
        Ok(shell) => {
            clap_complete::generate(shell, &mut command, "groupcached", &mut out);
            Ok(())
        }
        // clap accepts only man and the shells.
        Err(_) => clap_mangen::Man::new(command).render(&mut out),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupcached: --generate {what}: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--health`: GET /healthz from the node at `listen` (its unspecified
/// address asked at loopback), over plain HTTP with one 2 s deadline per
/// step; with TLS only the connection is checked. It needs no runtime and
/// no client: a container's HEALTHCHECK runs it every few seconds.
fn health(listen: SocketAddr, tls: bool) -> ExitCode {
    let ask = |listen: SocketAddr| -> std::io::Result<String> {
        let timeout = Duration::from_secs(2);
        let mut stream = TcpStream::connect_timeout(&listen, timeout)?;
        if tls {
            return Ok("accepts connections (TLS: /healthz not asked)".into());
        }
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 64];
        let read = stream.read(&mut head)?;
        let status = String::from_utf8_lossy(&head[..read]);
        let status = status.lines().next().unwrap_or_default();
        if status.starts_with("HTTP/1.1 200 ") || status.starts_with("HTTP/1.0 200 ") {
            Ok("healthy".into())
        } else {
            Err(std::io::Error::other(format!("answered {status:?}")))
        }
    };
    let listen = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    };
    match ask(listen) {
        Ok(verdict) => {
            println!("groupcached: {listen}: {verdict}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("groupcached: {listen}: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The node `--health` asks: the one PID 1 serves when PID 1 is a
/// groupcached started without `--health` (a container, whose HEALTHCHECK
/// runs with the image's variables but not the entrypoint's arguments, so
/// `docker run IMAGE --listen ...` would otherwise be asked at the wrong
/// port), unless this command names `--listen` itself; else this command's
/// own `--listen` and `--tls-cert`.
fn health_target(args: &Args) -> (SocketAddr, bool) {
    let own = (args.listen, args.tls_cert.is_some());
    let named_listen = std::env::args_os()
        .skip(1)
        .any(|arg| arg.as_encoded_bytes().starts_with(b"--listen"));
    if named_listen {
        return own;
    }
    std::fs::read("/proc/1/cmdline")
        .ok()
        .and_then(|cmdline| serving_flags(&cmdline))
        .unwrap_or(own)
}

/// The listen address and TLS of the groupcached whose command line is
/// `cmdline` (NUL-separated, as `/proc/PID/cmdline` holds it); `None` when
/// it is another program, a `--health` check, or flags that do not parse.
fn serving_flags(cmdline: &[u8]) -> Option<(SocketAddr, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let argv: Vec<&std::ffi::OsStr> = cmdline
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(std::ffi::OsStr::from_bytes)
        .collect();
    let program = std::path::Path::new(argv.first()?).file_name()?;
    if program != "groupcached" {
        return None;
    }
    let serving = Args::try_parse_from(argv).ok()?;
    (!serving.health).then(|| (serving.listen, serving.tls_cert.is_some()))
}

/// The command's `main`: exit 0 after a clean shutdown, 1 when the node
/// stopped on its own or could not bind, 2 for bad flags.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("groupcached: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    if let Some(what) = &args.generate {
        return generate(what);
    }
    if args.health {
        let (listen, tls) = health_target(&args);
        return health(listen, tls);
    }
    let check = args.check;
    init_logging(args.log_format);
    raise_open_file_limit();
    let listen = (args.listen, args.peer_listen);
    // Everything the flags say is checked here, before anything is bound.
    let app = match checked_app(args) {
        Ok(app) => app,
        Err(message) => {
            eprintln!("groupcached: {message}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("groupcached: the flags are valid");
        return ExitCode::SUCCESS;
    }
    let app = match app.claim_snapshot() {
        Ok(app) => app,
        Err(e) => {
            eprintln!("groupcached: {e}");
            return ExitCode::from(2);
        }
    };
    serve(app, listen)
}

/// The flags read into an [`App`], every node setting checked by its
/// builder; else why not, on one line whatever the flag's value held.
fn checked_app(args: Args) -> Result<App, String> {
    let one_line =
        |e: &dyn std::fmt::Display| e.to_string().replace('\n', "\\n").replace('\r', "\\r");
    let config = args.into_config().map_err(|e| one_line(&e))?;
    App::new(config).map_err(|e| one_line(&e))
}

/// Takes the listeners systemd passed, or binds `--listen` (and
/// `--peer-listen`), and runs `app` until SIGINT or SIGTERM: exit 0 after
/// a clean shutdown, 1 when the node stopped on its own or could not bind.
fn serve(app: App, (listen, peer_listen): (SocketAddr, Option<SocketAddr>)) -> ExitCode {
    // Before any thread starts: taking the socket clears LISTEN_FDS.
    let inherited = match inherited_listeners(peer_listen.is_some()) {
        Ok(inherited) => inherited,
        Err(e) => {
            eprintln!("groupcached: LISTEN_FDS: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("groupcached: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let (inherited, inherited_peer) = inherited;
        let listener = match bind_or_take("--listen", listen, inherited).await {
            Ok(listener) => listener,
            Err(code) => return code,
        };
        let peer_listener = match peer_listen {
            None => None,
            Some(addr) => match bind_or_take("--peer-listen", addr, inherited_peer).await {
                Ok(listener) => Some(listener),
                Err(code) => return code,
            },
        };
        match app.run(listener, peer_listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("groupcached: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The listening socket passed by systemd socket activation (or a test
/// harness) as fd 3 with `LISTEN_FDS=1`; then `--listen` is not bound. The
/// socket is bound before this process starts, so whoever started it knows
/// the port and no other process can take it in between. With
/// `--peer-listen` (`peer`), a second socket (fd 4, `LISTEN_FDS=2`) is the
/// peer listener.
type Inherited = Option<std::net::TcpListener>;
fn inherited_listeners(peer: bool) -> std::io::Result<(Inherited, Inherited)> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut take = |index| -> std::io::Result<Inherited> {
        let Some(listener) = fds.take_tcp_listener(index)? else {
            return Ok(None);
        };
        listener.set_nonblocking(true)?;
        Ok(Some(listener))
    };
    let main = take(0)?;
    let peer = if peer { take(1)? } else { None };
    Ok((main, peer))
}

/// The inherited socket, or `addr` bound; on failure, the exit code after
/// a one-line message naming `flag`.
async fn bind_or_take(
    flag: &str,
    addr: std::net::SocketAddr,
    inherited: Inherited,
) -> Result<TcpListener, ExitCode> {
    let bound = match inherited {
        Some(listener) => TcpListener::from_std(listener),
        None => TcpListener::bind(addr).await,
    };
    bound.map_err(|e| {
        eprintln!("groupcached: {flag} {addr}: {e}");
        ExitCode::FAILURE
    })
}

/// clap's error without its usage and help hints, on one line: what is
/// wrong and which flag.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message = message.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

/// Raises the soft open-file limit to the hard one: each client, peer and
/// origin connection is a file descriptor, and the default soft limit
/// (often 1024) is far below what a busy node holds.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Logs to stderr at `RUST_LOG`'s level (default `info`), as text or as
/// one JSON object a line. Text lines carry strings from outside (etcd
/// values, peers' error bodies), so their control characters are escaped
/// and no colours are written: a value can neither start a fake log line
/// nor send escape sequences to a terminal. JSON escapes them itself.
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
    );
    match format {
        LogFormat::Text => logs.with_ansi(false).with_writer(|| EscapedStderr).init(),
        LogFormat::Json => logs
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .init(),
    }
}

/// Stderr for text logs: each write is one whole log line, written with
/// every control character but its final newline escaped (`\n`, `\r`,
/// `\u{1b}`, ...).
struct EscapedStderr;

impl std::io::Write for EscapedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(line);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&text[..], ""),
        };
        let mut escaped = String::with_capacity(text.len() + 8);
        for c in body.chars() {
            if c.is_control() && c != '\t' {
                escaped.extend(c.escape_default());
            } else {
                escaped.push(c);
            }
        }
        escaped.push_str(end);
        std::io::stderr().write_all(escaped.as_bytes())?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Registers for SIGINT and SIGTERM now, before anything is bound, so a
/// signal that comes as soon as the node answers stops it cleanly instead
/// of killing it by the default action; the future ends at the first one.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let registered = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = registered else {
            tracing::error!("cannot listen for signals; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reads_the_listen_flag_of_a_serving_groupcached() {
        let cmdline = b"/usr/bin/groupcached\0--listen\x000.0.0.0:9090\0--group\0g=echo\0";
        let listen: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        assert_eq!(serving_flags(cmdline), Some((listen, false)));
        let with_tls = b"groupcached\0--listen=127.0.0.1:9443\0--tls-cert\0c.pem\0--tls-key\0k.pem\0--group\0g=echo\0";
        let listen: SocketAddr = "127.0.0.1:9443".parse().unwrap();
        assert_eq!(serving_flags(with_tls), Some((listen, true)));
    }

    #[test]
    fn health_ignores_other_programs_and_other_checks() {
        assert_eq!(serving_flags(b"/sbin/init\0--listen\x001.2.3.4:1\0"), None);
        assert_eq!(serving_flags(b""), None);
        assert_eq!(serving_flags(b"groupcached\0--health\0"), None);
        assert_eq!(serving_flags(b"groupcached\0--no-such-flag\0"), None);
    }
}
