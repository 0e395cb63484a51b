//! What the box's end of a tunnel is doing now: connected to the relay or not, and how many
//! streams the fleet holds open through it. The agent reports it in the box's state.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Activity {
    connected: AtomicBool,
    streams: AtomicUsize,
}

impl Activity {
    /// The tunnel to the relay is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Streams to the box's ports open now.
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Marks the tunnel up until the guard is dropped.
    pub(crate) fn connection(self: &Arc<Self>) -> Guard {
        self.connected.store(true, Ordering::Relaxed);
        Guard {
            activity: self.clone(),
            what: What::Connection,
        }
    }

    /// Counts one open stream until the guard is dropped.
    pub(crate) fn stream(self: &Arc<Self>) -> Guard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        Guard {
            activity: self.clone(),
            what: What::Stream,
        }
    }
}

enum What {
    Connection,
    Stream,
}

pub(crate) struct Guard {
    activity: Arc<Activity>,
    what: What,
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self.what {
            What::Connection => self.activity.connected.store(false, Ordering::Relaxed),
            What::Stream => {
                self.activity.streams.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}
