//! Set and Remove: what a node does when a peer or a user writes a key.
//!
//! A peer's write changes this node only (`peer`). A user's write is
//! propagated from here, in one place, the key's owner first (`user`). It
//! is logged (`log`), and a node it did not reach, or that was out of the
//! peer list, is sent what it missed once it is back (`catch_up`). Why a
//! write is refused, and its status, is `error`.

pub(crate) mod catch_up;
mod error;
pub(crate) mod log;
mod peer;
mod user;

pub(crate) use catch_up::catch_up_all;
pub(crate) use error::WriteError;
pub(crate) use peer::{peer_remove, peer_remove_keys, peer_set};
pub(crate) use user::{max_value_bytes, user_remove, user_set, SetOptions};
