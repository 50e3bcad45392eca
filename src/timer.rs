//! One timer per connection or body for deadlines that mostly move later: idle timeouts that
//! restart on every request or frame. Moving a tokio timer re-registers it in the timer wheel;
//! this one is moved only to an earlier moment, and when it fires before the current deadline it
//! is armed again for it. Progress therefore costs no timer operation at all, and a deadline far
//! in the future (Kuscia's 20-minute keepalive) costs one extra wake-up per period.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::time::Sleep;

#[derive(Debug, Default)]
pub struct LazyDeadline {
    /// Allocated on first use: most bodies end without ever waiting.
    sleep: Option<Pin<Box<Sleep>>>,
    /// When `sleep` fires.
    armed: Option<Instant>,
}

impl LazyDeadline {
    /// `Ready` once `deadline` has passed; otherwise the task is woken no later than `deadline`
    /// (possibly earlier, after which the caller polls again with its current deadline).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        if self.armed.is_none_or(|a| deadline < a) {
            self.arm(deadline);
        }
        while let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.armed.is_some_and(|a| a >= deadline) {
                return Poll::Ready(());
            }
            self.arm(deadline); // fired for an older, earlier deadline
        }
        Poll::Pending
    }

    fn arm(&mut self, deadline: Instant) {
        let at = tokio::time::Instant::from_std(deadline);
        match &mut self.sleep {
            Some(s) => s.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.armed = Some(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_at_the_latest_deadline_not_the_first_one() {
        let mut t = LazyDeadline::default();
        let start = Instant::now();
        let first = start + Duration::from_millis(100);
        let later = start + Duration::from_millis(300);
        std::future::poll_fn(|cx| {
            assert!(t.poll_expired(cx, first).is_pending());
            Poll::Ready(())
        })
        .await;
        // The deadline moved later: the early timer fires at 100 ms, re-arms, fires at 300 ms.
        std::future::poll_fn(|cx| t.poll_expired(cx, later)).await;
        assert!(Instant::now() >= later, "{:?}", Instant::now() - start);
    }

    #[tokio::test]
    async fn an_earlier_deadline_moves_the_timer() {
        let mut t = LazyDeadline::default();
        let start = Instant::now();
        std::future::poll_fn(|cx| {
            assert!(t
                .poll_expired(cx, start + Duration::from_secs(60))
                .is_pending());
            Poll::Ready(())
        })
        .await;
        let soon = start + Duration::from_millis(50);
        std::future::poll_fn(|cx| t.poll_expired(cx, soon)).await;
        let waited = Instant::now() - start;
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }
}
