//! The proxy: listeners (`server`), per-connection timing (`conn`), the request handler
//! (`handler`) and upstream forwarding (`forward`), header rules (`headers`), streaming bodies
//! (`body`), request accounting (`guard`), upgrades (`upgrade`), error mapping (`error`) and
//! the idle-deadline timer they share (`timer`).

pub mod body;
pub mod conn;
pub mod error;
pub mod forward;
pub mod guard;
pub mod handler;
pub mod headers;
pub mod server;
pub mod timer;
pub mod upgrade;
