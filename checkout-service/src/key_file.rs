//! The order-id key kept in a file (`ORDER_ID_SECRET_FILE`), so that a
//! deployment keeps its order ids across restarts, and replicas that share
//! the file (a volume) derive the same order id from the same key, without
//! anyone choosing or copying a secret.
//!
//! The file is read if it exists. Otherwise a random key (32 bytes, as 64
//! hex digits) is written to a temporary file beside it, mode 0600, flushed
//! to disk, and hard-linked to the file's name: the link either creates the
//! file with its whole content or fails because it exists, so replicas that
//! start together and race to create it all end up with the one key that
//! won, and none ever reads a half-written file. The file may also hold a
//! key of the operator's choosing (a mounted secret, say), used as it is
//! with trailing whitespace removed.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use crate::idempotency::OrderIdSecret;

/// Where the key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The file existed (written by an earlier start, another replica, or
    /// the operator).
    Read,
    /// This process created it.
    Created,
}

/// The key in the file at `path`, created with a random key if there is no
/// such file (see the module documentation). Errors name neither the key
/// nor any of its bytes.
pub fn load_or_create(path: &Path) -> io::Result<(OrderIdSecret, KeyOrigin)> {
    match read(path) {
        Ok(secret) => return Ok((secret, KeyOrigin::Read)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map_or_else(
        || "order-id.key".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let temporary = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let key = random_key();
    let linked = write_new(&temporary, &key).and_then(|()| fs::hard_link(&temporary, path));
    // The temporary name goes whatever happened; the key lives on under the
    // file's name if the link was made.
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            // Make the new name durable too (best effort: some file systems
            // cannot sync a directory).
            let _ = fs::File::open(dir).and_then(|dir| dir.sync_all());
            let secret = OrderIdSecret::parse(&key).map_err(invalid)?;
            Ok((secret, KeyOrigin::Created))
        }
        // Another process created it first: use its key.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            read(path).map(|secret| (secret, KeyOrigin::Read))
        }
        Err(error) => Err(error),
    }
}

/// 32 random bytes as 64 hex digits (64 bytes of HMAC key, more than
/// [`crate::idempotency::MIN_SECRET_LEN`]).
fn random_key() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Creates `path` (it must not exist) readable by its owner only, with
/// `key` and a newline, and flushes it to disk.
fn write_new(path: &Path, key: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn read(path: &Path) -> io::Result<OrderIdSecret> {
    let text = fs::read_to_string(path)?;
    OrderIdSecret::parse(text.trim_end()).map_err(invalid)
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::PermissionsExt, path::PathBuf};

    use super::*;

    /// A fresh directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("key-file-{}", uuid::Uuid::new_v4()));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// What a key names: equal ids, equal keys.
    fn id_of(secret: &OrderIdSecret) -> uuid::Uuid {
        secret.order_id("shop", "order-42")
    }

    #[test]
    fn a_missing_file_is_created_once_and_then_read() {
        let dir = TempDir::new();
        let path = dir.0.join("keys").join("order-id.key");
        let (created, origin) = load_or_create(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let (read, origin) = load_or_create(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Read);
        assert_eq!(id_of(&read), id_of(&created));
        // Nothing else is left beside it.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // Another file, another key.
        let (other, _) = load_or_create(&dir.0.join("other.key")).unwrap();
        assert_ne!(id_of(&other), id_of(&created));
    }

    #[test]
    fn an_existing_file_is_used_as_it_is() {
        let dir = TempDir::new();
        let path = dir.0.join("order-id.key");
        let chosen = "0123456789abcdef0123456789abcdef-chosen";
        fs::write(&path, format!("{chosen}\n")).unwrap();
        let (secret, origin) = load_or_create(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Read);
        assert_eq!(
            id_of(&secret),
            id_of(&OrderIdSecret::parse(chosen).unwrap())
        );

        fs::write(&path, "too-short-key\n").unwrap();
        let error = load_or_create(&path).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(!error.to_string().contains("too-short-key"), "{error}");
    }

    #[test]
    fn replicas_creating_it_at_once_agree_on_one_key() {
        let dir = TempDir::new();
        let path = dir.0.join("order-id.key");
        let results: Vec<_> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| load_or_create(&path).unwrap()))
                .collect();
            starts
                .into_iter()
                .map(|start| start.join().unwrap())
                .collect()
        });
        let created = results
            .iter()
            .filter(|(_, origin)| *origin == KeyOrigin::Created)
            .count();
        assert_eq!(created, 1);
        let ids: std::collections::BTreeSet<_> =
            results.iter().map(|(secret, _)| id_of(secret)).collect();
        assert_eq!(ids.len(), 1, "one key for all");
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
    }
}
