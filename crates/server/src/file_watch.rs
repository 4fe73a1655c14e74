//! Files an admin edits while the server runs (the dialplan, trunks.toml): changes to them,
//! debounced. Editors replace files rather than write them, so a directory is watched and
//! its events filtered, not the files themselves.

use std::path::Path;
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;

/// How long an editor gets to finish a save (several events each) before the file is read.
const SETTLE: Duration = Duration::from_millis(300);

/// Changes below one directory to the files `relevant` picks.
pub struct FileChanges {
    /// Events stop when it is dropped.
    _watcher: notify::RecommendedWatcher,
    changed: mpsc::Receiver<()>,
}

impl FileChanges {
    /// Watches `dir` (with its subdirectories when `recursive`).
    pub fn watch(
        dir: &Path,
        recursive: bool,
        relevant: impl Fn(&Path) -> bool + Send + 'static,
    ) -> notify::Result<Self> {
        let (tx, changed) = mpsc::channel(16);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                    && event.paths.iter().any(|p| relevant(p))
                {
                    let _ = tx.try_send(());
                }
            })?;
        let mode = if recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        watcher.watch(dir, mode)?;
        Ok(Self {
            _watcher: watcher,
            changed,
        })
    }

    /// Waits for the next change and for the writing to settle; `None` once the watcher
    /// has stopped. Dropped while settling (another trigger won a `select!`), the change is
    /// not lost: that trigger reads the files too.
    pub async fn next(&mut self) -> Option<()> {
        self.changed.recv().await?;
        tokio::time::sleep(SETTLE).await;
        while self.changed.try_recv().is_ok() {}
        Some(())
    }
}
