//! How long work reports how far it is: the CLI draws progress bars, tests and library
//! callers pass `&()` and see nothing.

/// What a job tells its caller as it goes: the CLI draws progress bars, tests stay silent.
/// Warnings go through `tracing` in every case; `suspend` lets a bar step aside for them.
/// `Sync`: the region cache's workers advance it from their threads.
pub trait Progress: Sync {
    /// A stage of `total` items begins (`name` as the bar shows it).
    fn start(&self, name: &str, total: u64);
    /// One more item of the current stage is done.
    fn advance(&self);
    /// The current stage is at item `position` (a resumed run starts past 0).
    fn position(&self, _position: u64) {}
    /// A short status beside the bar (training's smoothed loss).
    fn message(&self, _message: &str) {}
    /// The current stage is over.
    fn finish(&self);
    /// Runs `f` (which logs) with the bar out of the way.
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// No progress shown (tests, library callers).
impl Progress for () {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self) {}
    fn finish(&self) {}
}

/// Logs a warning with the progress bar out of the way.
pub fn warn(progress: &dyn Progress, message: String) {
    progress.suspend(&mut || tracing::warn!("{message}"));
}
