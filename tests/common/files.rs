//! Temporary directories for tests, removed when dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// A fresh directory of its own under the system's temporary directory,
/// removed (with its contents) on drop, even when the test fails.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `groupcached-{name}-{pid}-{n}`, empty; `n` counts the directories
    /// this process made, so two tests never share one.
    pub fn new(name: &str) -> TempDir {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "groupcached-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        TempDir(path)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
