//! HTTP/2 keepalive for both sides (client connections in `proxy::h2`, upstream ones in
//! `upstream::h2conn`): a PING every `http2.keepalive_interval`; a PING not answered within
//! `http2.keepalive_timeout` ends the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A PING once the connection has been idle (no new stream, see [`KeepAlive::active`]; a side
/// that never calls it PINGs every `interval`) for `interval` to twice that; a PING not
/// answered within `timeout` ends the connection.
pub struct KeepAlive {
    pings: h2::PingPong,
    interval: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
    /// Set by [`KeepAlive::active`]: the connection carried a new stream since the timer was
    /// armed, so the PING waits another interval.
    active: bool,
}

/// Polls an optional keepalive: true once a PING went unanswered. A keepalive that can no
/// longer PING (the connection is closing; its own poll says how) is dropped.
pub fn poll_timed_out(slot: &mut Option<KeepAlive>, cx: &mut Context<'_>) -> bool {
    match slot.as_mut().map(|k| k.poll(cx)) {
        Some(Poll::Ready(KeepAliveEnd::TimedOut)) => true,
        Some(Poll::Ready(KeepAliveEnd::Unavailable)) => {
            *slot = None;
            false
        }
        _ => false,
    }
}

pub enum KeepAliveEnd {
    TimedOut,
    /// PINGs can no longer be sent (the connection is closing).
    Unavailable,
}

impl KeepAlive {
    pub fn new(pings: h2::PingPong, interval: Duration, timeout: Duration) -> Self {
        KeepAlive {
            pings,
            interval,
            timeout,
            timer: Box::pin(tokio::time::sleep(interval)),
            awaiting_pong: false,
            active: false,
        }
    }

    /// The connection is in use (a new stream): no PING is needed before it has been idle for
    /// an interval. Cheap: a flag looked at when the timer fires.
    pub fn active(&mut self) {
        self.active = true;
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<KeepAliveEnd> {
        loop {
            if self.awaiting_pong {
                match self.pings.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.awaiting_pong = false;
                        self.timer.as_mut().reset(Instant::now() + self.interval);
                        continue;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(KeepAliveEnd::Unavailable),
                    Poll::Pending => {}
                }
                std::task::ready!(self.timer.as_mut().poll(cx));
                return Poll::Ready(KeepAliveEnd::TimedOut);
            }
            std::task::ready!(self.timer.as_mut().poll(cx));
            if std::mem::take(&mut self.active) {
                self.timer.as_mut().reset(Instant::now() + self.interval);
                continue;
            }
            if self.pings.send_ping(h2::Ping::opaque()).is_err() {
                return Poll::Ready(KeepAliveEnd::Unavailable);
            }
            self.awaiting_pong = true;
            self.timer.as_mut().reset(Instant::now() + self.timeout);
        }
    }
}
