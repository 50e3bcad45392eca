//! The proxy: listeners (`server`), per-connection timing (`conn`), the request handler
//! (`handler`) and upstream forwarding (`forward`), header rules (`headers`), streaming bodies
//! (`body`: the response side; the request body lives in `crate::body`), request accounting
//! (`guard`), lingering close (`linger`), upgrades (`upgrade`), HTTP/2 detection and settings
//! (`http2`), HTTP/2 write batching (`batch`), gRPC answers (`grpc`) and error mapping
//! (`error`).

pub mod body;
pub mod conn;
pub mod date;
pub mod error;
pub mod forward;
pub mod grpc;
pub mod guard;
pub mod h1;
pub mod h2;
pub mod handler;
pub mod headers;
pub mod linger;
pub mod server;
pub mod upgrade;
