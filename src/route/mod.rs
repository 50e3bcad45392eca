//! Route target kinds whose target is computed per request (each in its own module). The
//! handler asks the kind for an upstream and the request target to send; errors map to
//! statuses in `proxy/error.rs`.

pub mod gateway;
pub mod table;
