//! Task helpers shared by the modes.

use tokio::task::JoinHandle;

/// A spawned task that is aborted when this is dropped: a helper task lives exactly as long
/// as the code that started it, whichever way that code ends.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
