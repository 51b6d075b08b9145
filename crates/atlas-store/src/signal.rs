//! The in-process wake-up that [`crate::Storage::wait_for_work`] waits on.

use std::time::Duration;

use tokio::sync::Notify;

/// Wakes every waiting worker of this process. SQLite rings it on its own writes;
/// PostgreSQL rings it from a `LISTEN` connection, so writes of any process count.
#[derive(Debug, Default)]
pub(crate) struct WorkSignal {
    notify: Notify,
}

impl WorkSignal {
    /// Wakes all current waiters, and leaves one permit for a worker that is between
    /// an empty claim and its wait (so that one does not sleep through the news).
    pub(crate) fn ring(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Waits for a ring or the timeout; `true` when rung.
    pub(crate) async fn wait(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.notify.notified())
            .await
            .is_ok()
    }
}
