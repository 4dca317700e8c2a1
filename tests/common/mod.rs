//! Shared test support, one concern per module: loopback ports handed to
//! nodes ([`ports`]), real `groupcached` processes ([`process`]) and Go
//! nodes ([`gonode`]), an HTTP client ([`http`]), a counting origin
//! ([`origin`]), keys by owner ([`ring`]), polling ([`wait`]), etcd
//! ([`etcd`]), dnsmasq ([`dns`]), temporary directories ([`files`]) and
//! test PKIs ([`tls`]). Every process is killed when its
//! handle drops, so a failing test leaves nothing behind.

#![allow(dead_code, unused_imports)] // each test binary uses its own subset

pub mod dns;
pub mod etcd;
pub mod files;
pub mod gonode;
pub mod http;
pub mod origin;
pub mod ports;
pub mod process;
pub mod ring;
pub mod tls;
pub mod wait;

pub use files::*;
pub use gonode::*;
pub use http::*;
pub use origin::*;
pub use ports::*;
pub use process::*;
pub use ring::*;
pub use wait::*;
