//! Test support: every store test body runs once on SQLite (in memory) and once on
//! PostgreSQL (a fresh database of the throw-away cluster of test_cluster.rs).

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Store;
use crate::test_cluster::fresh_database;

/// The two databases a store test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A new, empty, migrated store on this backend.
    pub(crate) fn open(self) -> Store {
        match self {
            Backend::Sqlite => Store::open_in_memory().unwrap(),
            Backend::Postgres => Store::open_postgres(&fresh_database()).unwrap(),
        }
    }
}

/// A store's data kept between opens: a data directory on SQLite, a database on PostgreSQL.
pub(crate) struct Durable {
    backend: Backend,
    place: String,
}

impl Backend {
    /// A new place for data that outlives one `Store` (removed, on SQLite, when dropped).
    pub(crate) fn durable(self) -> Durable {
        static NEXT_DIR: AtomicU32 = AtomicU32::new(0);
        let place = match self {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!(
                    "amt-store-{}-{}",
                    std::process::id(),
                    NEXT_DIR.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&dir);
                dir.display().to_string()
            }
            Backend::Postgres => fresh_database(),
        };
        Durable {
            backend: self,
            place,
        }
    }
}

impl Durable {
    /// Opens (again) the store kept here.
    pub(crate) fn open(&self) -> Store {
        match self.backend {
            Backend::Sqlite => Store::open(Path::new(&self.place)).unwrap(),
            Backend::Postgres => Store::open_postgres(&self.place).unwrap(),
        }
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            let _ = std::fs::remove_dir_all(&self.place);
        }
    }
}

/// Defines, for each named `fn name(backend: Backend)`, a module `name` with the tests
/// `name::sqlite` and `name::postgres`. A body listed nowhere is dead code, which the
/// warnings-as-errors build refuses, so no test can silently run on one backend only.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::testing::Backend::Sqlite);
            }

            #[test]
            fn postgres() {
                super::$name($crate::testing::Backend::Postgres);
            }
        }
    )*};
}
pub(crate) use on_both_backends;
