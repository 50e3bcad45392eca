//! Driving HTTP/2 connections (client side in `proxy::server`, upstream side in
//! `upstream::h2conn`) so that their writes gather many streams' frames.
//! A stream's task that queues a frame wakes the connection's task, and tokio runs a task woken
//! by the running one next: the connection would then write that one frame per syscall, and its
//! peer would wake up for each. [`Batched`] makes the connection step aside once per wake-up
//! until the scheduler has run the other ready tasks and polled the I/O driver (tokio's
//! `yield_now`), so one write carries what every ready stream produced meanwhile. Under light
//! load it costs one extra poll per wake-up and nothing else waits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A connection future that steps aside once each time it is woken (see the module's doc).
pub struct Batched<'a, C> {
    conn: Pin<&'a mut C>,
    stepped_aside: Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>,
    ready: bool,
}

impl<'a, C> Batched<'a, C> {
    pub fn new(conn: Pin<&'a mut C>) -> Self {
        Batched {
            conn,
            stepped_aside: None,
            ready: false,
        }
    }

    /// The connection itself (to start its graceful shutdown).
    pub fn conn(&mut self) -> Pin<&mut C> {
        self.conn.as_mut()
    }
}

impl<C: Future> Future for Batched<'_, C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        if !this.ready {
            let y = this
                .stepped_aside
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            std::task::ready!(y.as_mut().poll(cx));
            this.stepped_aside = None;
            this.ready = true;
        }
        let r = this.conn.as_mut().poll(cx);
        if r.is_pending() {
            this.ready = false;
        }
        r
    }
}
