//! A log file mapped into memory for appending. Space is reserved on disk ahead of the writes
//! (`posix_fallocate`), so a full disk is an error from the reservation, never a fault on a
//! write into the mapping. A write is a copy into the shared mapping: it lands in the page
//! cache, where it outlives the process; syncing the file's data makes it durable.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A file's first `len` bytes, reserved on disk and mapped for writing.
pub(crate) struct MappedFile {
    address: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// that ownership, and every access goes through `&mut self`.
unsafe impl Send for MappedFile {}

impl MappedFile {
    /// Reserves the first `len` bytes of `file` on disk (zeros where nothing was written yet)
    /// and maps them shared, for writing.
    pub(crate) fn reserve_and_map(file: &File, len: usize) -> io::Result<MappedFile> {
        let fd = file.as_raw_fd();
        let length = libc::off_t::try_from(len).map_err(|_| io::Error::other("log too large"))?;
        // SAFETY: `fd` is an open descriptor borrowed from `file` for the call.
        let reserved = unsafe { libc::posix_fallocate(fd, 0, length) };
        if reserved != 0 {
            return Err(io::Error::from_raw_os_error(reserved));
        }
        // SAFETY: a new shared mapping of `len` bytes of the open file `fd`, which has at least
        // `len` bytes now; the kernel picks the address. The result is checked below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(MappedFile {
            address: address.cast(),
            len,
        })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `bytes` to `offset`; an error when they would not fit.
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) -> io::Result<()> {
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(io::Error::other("write past the end of the mapped log"));
        }
        // SAFETY: `offset + bytes.len() <= self.len` (checked above), so the destination lies
        // inside the live mapping; `bytes` is a separate borrow, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.address.add(offset), bytes.len());
        }
        Ok(())
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: `address` and `len` are exactly the mapping made in `reserve_and_map`, and
        // nothing can use it after this value is dropped.
        unsafe {
            libc::munmap(self.address.cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reach_the_file_and_out_of_range_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut mapped = MappedFile::reserve_and_map(&file, 4096).unwrap();
        assert_eq!(mapped.len(), 4096);
        mapped.write(10, b"hello").unwrap();
        mapped.write(4091, b"end!!").unwrap();
        assert!(mapped.write(4092, b"12345").is_err());
        assert!(mapped.write(usize::MAX, b"x").is_err());
        drop(mapped);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(&bytes[10..15], b"hello");
        assert_eq!(&bytes[4091..], b"end!!");
        assert!(bytes[..10].iter().all(|&byte| byte == 0));
    }
}
