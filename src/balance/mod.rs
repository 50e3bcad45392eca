//! Pure server selection: no I/O, no clocks of its own (time is passed in), so every rule is
//! unit-tested. `crate::upstream` wraps a [`SmoothWrr`] per tier behind one lock.

mod wrr;

pub use wrr::{PeerParams, PeerState, SmoothWrr};
