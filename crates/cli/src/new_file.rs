//! A file the CLI writes (`backup`, `export`) and never lets overwrite anything: written beside
//! its destination as `NAME.partial`, then put in place with a hard link, which fails if the
//! destination exists at that instant (no check-then-rename window in which another writer's
//! file could be replaced). A crash or a full disk leaves at most the partial file, never a file
//! at the destination that looks complete and is not.
//!
//! This module must never remove or replace a file at the destination.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A destination that did not exist when reserved, and its partial file (removed on drop unless
/// published).
#[derive(Debug)]
pub struct NewFile {
    dest: PathBuf,
    partial: PathBuf,
    published: bool,
}

impl NewFile {
    /// Refuses a destination that exists (early, before any work; [`Self::publish`] checks
    /// again, atomically) and clears a partial file a crashed run left.
    pub fn reserve(dest: &Path) -> anyhow::Result<Self> {
        let Some(name) = dest.file_name() else {
            bail!("{} is not a file name", dest.display());
        };
        if dest.symlink_metadata().is_ok() {
            return Err(exists(dest));
        }
        let mut partial = name.to_owned();
        partial.push(".partial");
        let partial = dest.with_file_name(partial);
        let _ = std::fs::remove_file(&partial);
        Ok(Self {
            dest: dest.to_owned(),
            partial,
            published: false,
        })
    }

    /// Where to write the content.
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Puts the written partial file at the destination, unless something is there now.
    pub fn publish(mut self) -> anyhow::Result<()> {
        match std::fs::hard_link(&self.partial, &self.dest) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(exists(&self.dest)),
            Err(e) => {
                return Err(e).with_context(|| format!("could not create {}", self.dest.display()))
            }
        }
        self.published = true;
        let _ = std::fs::remove_file(&self.partial);
        sync_parent(&self.dest);
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn exists(dest: &Path) -> anyhow::Error {
    anyhow::anyhow!("{} already exists; choose a new file name", dest.display())
}

/// Makes the new name durable (best effort: not every file system syncs directories).
fn sync_parent(file: &Path) {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_published_whole_and_nothing_is_left_beside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out.db");
        std::fs::write(dir.path().join("out.db.partial"), "stale").expect("write");
        let file = NewFile::reserve(&dest).expect("reserve");
        assert!(!file.partial().exists(), "a stale partial file is cleared");
        std::fs::write(file.partial(), "content").expect("write");
        file.publish().expect("publish");
        assert_eq!(std::fs::read_to_string(&dest).expect("read"), "content");
        assert!(!dir.path().join("out.db.partial").exists());
    }

    #[test]
    fn an_existing_destination_is_never_replaced_even_if_it_appears_after_the_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out.db");
        std::fs::write(&dest, "theirs").expect("write");
        let e = NewFile::reserve(&dest).expect_err("exists");
        assert!(e.to_string().contains("already exists"), "{e}");

        let raced = dir.path().join("raced.db");
        let file = NewFile::reserve(&raced).expect("reserve");
        std::fs::write(file.partial(), "ours").expect("write");
        std::fs::write(&raced, "theirs").expect("another writer, meanwhile");
        let partial = file.partial().to_owned();
        let e = file.publish().expect_err("the destination appeared");
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&raced).expect("read"), "theirs");
        assert!(!partial.exists(), "the unpublished partial file is removed");
    }

    #[test]
    fn a_dangling_symlink_at_the_destination_counts_as_existing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dest).expect("symlink");
        assert!(NewFile::reserve(&dest).is_err());
    }
}
