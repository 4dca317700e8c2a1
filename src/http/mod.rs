//! The HTTP layer: the listener ([`server`]) and how it serves
//! ([`serve_options`]: limits, TLS, which APIs), what each request gets
//! ([`routes`]: the peer API, the user API, writes and their bodies), the
//! replies ([`reply`]; a value's to a user, with its ETag, ranges and
//! coding: [`value_reply`]), what a reply says about its answer
//! ([`cache_status`]), and the views of a node ([`views`]: `/stats`,
//! `/peers`, `/status`; [`metrics`]: `/metrics`).

pub(crate) mod cache_status;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod reply;
pub(crate) mod routes;
pub(crate) mod serve_options;
pub(crate) mod server;
pub(crate) mod value_reply;
pub(crate) mod views;
