//! Shared test support, one concern per module: loopback ports handed to
//! nodes ([`ports`]), real `groupcached` processes ([`process`]) and Go
//! nodes ([`gonode`]), an HTTP client ([`http`]), a counting origin
//! ([`origin`]) and Python's file server ([`python`]), nginx in front of a
//! node ([`nginx`]), programs run to completion and Chromium's flags
//! ([`programs`]), keys by owner ([`ring`]), polling ([`wait`]), etcd
//! ([`etcd`]), dnsmasq ([`dns`]), temporary directories ([`files`]) and
//! test PKIs ([`tls`]). Every process is killed when its
//! handle drops, so a failing test leaves nothing behind.

#![allow(dead_code, unused_imports)] // each test binary uses its own subset

pub mod dns;
pub mod etcd;
pub mod files;
pub mod gonode;
pub mod http;
pub mod nginx;
pub mod origin;
pub mod ports;
pub mod process;
pub mod programs;
pub mod python;
pub mod ring;
pub mod tls;
pub mod wait;

pub use files::*;
pub use gonode::*;
pub use http::*;
pub use nginx::Nginx;
pub use origin::*;
pub use ports::*;
pub use process::*;
pub use programs::*;
pub use python::*;
pub use ring::*;
pub use wait::*;
