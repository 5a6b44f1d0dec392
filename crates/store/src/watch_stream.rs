//! The consumer side of a watch: a bounded channel fed by a per-watch task, exposed as a
//! [`WatchStream`]. Dropping the stream closes the channel, which ends the task.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::{StoreError, WatchEvent, WatchStream};

/// Events buffered between a watch task and its consumer. When the consumer is slower,
/// the task stops reading (and later catches up from history), never the writers.
pub(crate) const WATCH_BUFFER_EVENTS: usize = 1024;

pub(crate) type WatchSender = mpsc::Sender<Result<WatchEvent, StoreError>>;

struct ChannelStream {
    rx: mpsc::Receiver<Result<WatchEvent, StoreError>>,
    /// Set after an error was yielded: an error always ends the stream.
    done: bool,
}

impl Stream for ChannelStream {
    type Item = Result<WatchEvent, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                this.rx.close();
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }
}

/// A channel whose receiving end is a [`WatchStream`].
pub(crate) fn watch_channel() -> (WatchSender, WatchStream) {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER_EVENTS);
    (tx, Box::pin(ChannelStream { rx, done: false }))
}
