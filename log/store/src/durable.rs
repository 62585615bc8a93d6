//! [`Durable`]: the handle an append returns; it completes when an fsync covering the append
//! has returned. Waitable from a thread (with a timeout) or as a future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::StoreError;

#[derive(Debug, Default)]
struct State {
    result: Option<Result<(), String>>,
    waker: Option<Waker>,
}

/// The completion side, held by the flusher.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    state: Mutex<State>,
    cv: Condvar,
}

impl Completion {
    pub(crate) fn complete(&self, result: Result<(), String>) {
        let waker = {
            let mut s = self.state.lock();
            s.result = Some(result);
            s.waker.take()
        };
        self.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Completes when the append it belongs to is durable.
#[derive(Debug)]
pub struct Durable {
    /// One past the last byte of the append in the commit log.
    end_offset: u64,
    pending: Option<Arc<Completion>>,
    timeout: Duration,
}

impl Durable {
    pub(crate) fn done(end_offset: u64) -> Self {
        Durable {
            end_offset,
            pending: None,
            timeout: Duration::ZERO,
        }
    }
    pub(crate) fn pending(end_offset: u64, c: Arc<Completion>, timeout: Duration) -> Self {
        Durable {
            end_offset,
            pending: Some(c),
            timeout,
        }
    }

    /// One past the last byte of the append.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// True when the append is already known durable (or durability is not awaited: ASYNC mode).
    pub fn is_done(&self) -> bool {
        self.pending
            .as_ref()
            .is_none_or(|c| c.state.lock().result.is_some())
    }

    fn outcome(&self, r: &Result<(), String>) -> Result<(), StoreError> {
        r.clone()
            .map_err(|reason| StoreError::FlushFailed { reason })
    }

    fn timed_out(&self) -> StoreError {
        StoreError::FlushTimeout {
            offset: self.end_offset,
            waited_ms: self.timeout.as_millis() as u64,
        }
    }

    /// Blocks until durable, or until the store's sync flush timeout (FLUSH_DISK_TIMEOUT).
    pub fn wait(&self) -> Result<(), StoreError> {
        let Some(c) = &self.pending else {
            return Ok(());
        };
        let deadline = Instant::now() + self.timeout;
        let mut s = c.state.lock();
        loop {
            if let Some(r) = &s.result {
                return self.outcome(r);
            }
            if c.cv.wait_until(&mut s, deadline).timed_out() {
                return match &s.result {
                    Some(r) => self.outcome(r),
                    None => Err(self.timed_out()),
                };
            }
        }
    }
}

/// The future waits without a timer of its own: callers on an async runtime wrap it in their
/// runtime's timeout (the broker answers FLUSH_DISK_TIMEOUT when it fires).
impl Future for Durable {
    type Output = Result<(), StoreError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(c) = &this.pending else {
            return Poll::Ready(Ok(()));
        };
        let mut s = c.state.lock();
        if let Some(r) = &s.result {
            let r = r.clone();
            drop(s);
            return Poll::Ready(this.outcome(&r));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unflushed_append_times_out_with_flush_disk_timeout() {
        let c = Arc::new(Completion::default());
        let d = Durable::pending(4096, c.clone(), Duration::from_millis(5));
        assert!(!d.is_done());
        match d.wait() {
            Err(StoreError::FlushTimeout {
                offset: 4096,
                waited_ms: 5,
            }) => {}
            other => panic!("expected FlushTimeout, got {other:?}"),
        }
        c.complete(Err("EIO".into()));
        assert!(matches!(d.wait(), Err(StoreError::FlushFailed { .. })));
        let ok = Arc::new(Completion::default());
        ok.complete(Ok(()));
        assert!(
            Durable::pending(1, ok, Duration::from_millis(5))
                .wait()
                .is_ok()
        );
        assert!(Durable::done(1).wait().is_ok());
    }
}
