//! Synced log appends through io_uring: a write at the log's end and an `fdatasync` linked
//! after it, submitted together and waited for with one system call. Made only where the
//! kernel and sandbox allow io_uring (probed by creating a ring); otherwise the log uses plain
//! `write` and `fdatasync`. Buffered appends always use `write`: io_uring hands a buffered file
//! write to a kernel worker thread, which was many times slower here.
//!
//! The submissions hand the kernel a pointer to the caller's bytes and the log's descriptor;
//! each call waits for every completion it submitted before returning, so neither outlives
//! the borrow it came from.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, opcode, squeue, types};

/// Entries of the ring: one write and one sync at a time.
const RING_ENTRIES: u32 = 4;
const WRITE: u64 = 1;
const SYNC: u64 = 2;

/// An io_uring instance for one log file.
pub(crate) struct UringLog {
    ring: IoUring,
}

impl UringLog {
    /// A ring, or why none can be made here.
    pub(crate) fn new() -> io::Result<UringLog> {
        Ok(UringLog {
            ring: IoUring::new(RING_ENTRIES)?,
        })
    }

    /// Writes all of `bytes` at `offset` of `file`; with `sync`, then syncs its data. Returns
    /// once the kernel has completed both.
    pub(crate) fn write_at(
        &mut self,
        file: &File,
        bytes: &[u8],
        offset: u64,
        sync: bool,
    ) -> io::Result<()> {
        let fd = types::Fd(file.as_raw_fd());
        let mut written = 0usize;
        while written < bytes.len() {
            let rest = &bytes[written..];
            let length = u32::try_from(rest.len()).unwrap_or(u32::MAX);
            let link_sync = sync && length as usize == rest.len();
            let write = opcode::Write::new(fd, rest.as_ptr(), length)
                .offset(offset + written as u64)
                .build()
                .user_data(WRITE)
                .flags(if link_sync {
                    squeue::Flags::IO_LINK
                } else {
                    squeue::Flags::empty()
                });
            let fsync = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(SYNC);
            let entries = if link_sync { 2 } else { 1 };
            // SAFETY: `rest` and `file` are borrowed for this whole call, and the call waits
            // below for the completion of every entry it pushes, so the kernel never reads the
            // buffer or uses the descriptor after they are released.
            unsafe {
                let mut submission = self.ring.submission();
                submission
                    .push(&write)
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                if link_sync {
                    submission
                        .push(&fsync)
                        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                }
            }
            self.ring.submit_and_wait(entries)?;
            let mut wrote = None;
            let mut synced = !link_sync;
            let mut completed = 0;
            while completed < entries {
                let Some(completion) = self.ring.completion().next() else {
                    self.ring.submit_and_wait(entries - completed)?;
                    continue;
                };
                completed += 1;
                let result = completion.result();
                match completion.user_data() {
                    WRITE if result < 0 => return Err(io::Error::from_raw_os_error(-result)),
                    WRITE => wrote = Some(result as usize),
                    // A short write cancels the linked sync; it is redone after the rest.
                    _ if result == -libc_ecanceled() => {}
                    _ if result < 0 => return Err(io::Error::from_raw_os_error(-result)),
                    _ => synced = true,
                }
            }
            match wrote {
                Some(0) | None => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "io_uring wrote nothing",
                    ));
                }
                Some(count) => written += count,
            }
            if written == bytes.len() && sync && !synced {
                self.sync(file)?;
            }
        }
        if bytes.is_empty() && sync {
            self.sync(file)?;
        }
        Ok(())
    }

    /// Syncs `file`'s data on its own.
    fn sync(&mut self, file: &File) -> io::Result<()> {
        let fsync = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(SYNC);
        // SAFETY: the descriptor is borrowed for the whole call, which waits for the completion.
        unsafe {
            self.ring
                .submission()
                .push(&fsync)
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.ring.submit_and_wait(1)?;
        match self.ring.completion().next() {
            Some(completion) if completion.result() < 0 => {
                Err(io::Error::from_raw_os_error(-completion.result()))
            }
            Some(_) => Ok(()),
            None => Err(io::Error::other("io_uring returned no completion")),
        }
    }
}

/// `ECANCELED` on Linux.
fn libc_ecanceled() -> i32 {
    125
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_at_their_offsets_and_sync() {
        let mut log = match UringLog::new() {
            Ok(log) => log,
            Err(error) => {
                eprintln!("io_uring test skipped: no ring here: {error}");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        log.write_at(&file, b"hello ", 0, false).unwrap();
        log.write_at(&file, b"world", 6, true).unwrap();
        log.write_at(&file, b"", 11, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    }
}
