//! Shared networking, one topic a file: `serve.rs` the accept loop with a graceful drain;
//! `tls.rs` client connections over TCP or TLS (rustls with ring, HTTP/1.1 only); `url.rs`
//! a runtime's base URL, parsed once, and its endpoints; `dial.rs` the WebSocket dial;
//! `ws.rs` the pongs and close replies a split WebSocket reader must queue for its writer;
//! `http.rs` what the HTTP servers share (answer bodies, JSON errors, the bearer check);
//! `https.rs` the servers' one outbound HTTP client.

mod dial;
pub mod http;
mod https;
mod serve;
mod tls;
mod url;
mod ws;

pub use dial::{ClientSocket, DialError, dial, dial_runtime, dial_with};
pub use https::{ExchangeError, HttpsClient, exchange, https_client};
pub use serve::{DRAIN_TIMEOUT, Proven, serve};
pub use tls::{Stream, TlsRoots, connect, connect_with};
pub use url::{BadUrl, RuntimeUrl};
pub use ws::forward_obligated;

#[cfg(test)]
pub(crate) use tls::testing;
