//! Log syncs through io_uring: an `fdatasync` submitted and waited for with one system call.
//! Made only where the kernel and sandbox allow io_uring (probed by creating a ring);
//! otherwise the log calls `fdatasync` itself. (Appends are copies into the mapped log, which
//! need no system call at all.)
//!
//! A submission hands the kernel the log's descriptor; each call waits for its completion
//! before returning, so the descriptor outlives its use.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, opcode, types};

/// Entries of the ring: one sync at a time.
const RING_ENTRIES: u32 = 2;

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

    /// Syncs `file`'s data (its written pages, including those written through a mapping);
    /// returns once the kernel has completed it.
    pub(crate) fn sync_data(&mut self, file: &File) -> io::Result<()> {
        let fsync = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn syncs_complete() {
        let mut log = match UringLog::new() {
            Ok(log) => log,
            Err(error) => {
                eprintln!("io_uring test skipped: no ring here: {error}");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"hello").unwrap();
        log.sync_data(&file).unwrap();
        log.sync_data(&file).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }
}
