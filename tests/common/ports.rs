//! Loopback ports for nodes under test. Ports are never bound, released and
//! bound again (another test could take one in between): [`free_ports`]
//! binds listeners on port 0 and keeps them, and starting a node hands its
//! listener over to the child as fd 3 with `LISTEN_FDS=1` (systemd socket
//! activation), so the node serves on the very socket the test bound.

use std::net::TcpListener as StdListener;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::Mutex;

/// Listeners bound by [`free_ports`] and not yet handed to a node.
static HELD: Mutex<Vec<StdListener>> = Mutex::new(Vec::new());

/// `n` loopback ports, each bound (to port 0) and held until a node started
/// on it takes the socket over.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = HELD.lock().unwrap();
    (0..n)
        .map(|_| {
            let listener = StdListener::bind("127.0.0.1:0").expect("bind a free port");
            let port = listener.local_addr().unwrap().port();
            held.push(listener);
            port
        })
        .collect()
}

/// A loopback port nothing listens on (connections are refused), for a
/// peer that is down: a socket bound to it but never listening, held for
/// the rest of the process so that no other test (or test run) takes it.
pub fn closed_port() -> u16 {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    static CLOSED: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());
    let socket = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("a TCP socket");
    bind(socket.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind a free port");
    let bound: SockaddrIn = getsockname(socket.as_raw_fd()).expect("the bound address");
    CLOSED.lock().unwrap().push(socket);
    bound.port()
}

/// Makes `command` start with the listener [`free_ports`] bound for `port`
/// as fd 3 and `LISTEN_FDS=1`. The test's own copy closes when `command`
/// drops, so once the node exits its port refuses connections.
pub fn hand_over_port(command: &mut Command, port: u16) {
    hand_over_ports(command, &[port]);
}

/// Takes the listener [`free_ports`] bound for `port` out of the pool, for
/// a test that starts one process after another on it with
/// [`hand_over_copy`] (as systemd keeps a socket across restarts of its
/// service): connections made while none runs wait in the backlog.
pub fn take_listener(port: u16) -> StdListener {
    let mut held = HELD.lock().unwrap();
    let index = held
        .iter()
        .position(|l| l.local_addr().unwrap().port() == port)
        .unwrap_or_else(|| panic!("port {port} is not held"));
    held.swap_remove(index)
}

/// Makes `command` start with a copy of `listener` as fd 3 and
/// `LISTEN_FDS=1`; the test keeps the original.
pub fn hand_over_copy(command: &mut Command, listener: &StdListener) {
    use command_fds::{CommandFdExt, FdMapping};
    let copy = listener.try_clone().expect("a copy of the listener");
    command
        .fd_mappings(vec![FdMapping {
            parent_fd: OwnedFd::from(copy),
            child_fd: 3,
        }])
        .expect("fd 3 is free in the child");
    command.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
}

/// [`hand_over_port`] for several ports: fds 3, 4, ... and `LISTEN_FDS=n`.
pub fn hand_over_ports(command: &mut Command, ports: &[u16]) {
    use command_fds::{CommandFdExt, FdMapping};
    let mut held = HELD.lock().unwrap();
    let mappings = ports
        .iter()
        .zip(3..)
        .map(|(&port, child_fd)| {
            let index = held
                .iter()
                .position(|l| l.local_addr().unwrap().port() == port)
                .unwrap_or_else(|| {
                    panic!("port {port} is not held: use free_ports, once per node")
                });
            FdMapping {
                parent_fd: OwnedFd::from(held.swap_remove(index)),
                child_fd,
            }
        })
        .collect();
    command
        .fd_mappings(mappings)
        .expect("fds from 3 on are free in the child");
    command
        .env("LISTEN_FDS", ports.len().to_string())
        .env_remove("LISTEN_PID");
}
