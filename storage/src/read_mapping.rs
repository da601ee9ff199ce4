//! A whole file mapped read-only into memory, for readers that want its bytes without copying
//! them out of the page cache (the Parquet scan). The mapping is private and read-only; the
//! file's pages load on first touch and stay shared with the page cache.
//!
//! A mapping stays valid while the file is replaced by a rename (the old file lives on until
//! unmapped), but a file truncated in place under a live mapping makes reads past its new end
//! fault: writers of mapped files must write a new file and rename it over the old one.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A file's bytes, mapped read-only.
pub struct ReadMapping {
    address: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only memory owned by this value and never written through, so it
// may move to and be read from any thread.
unsafe impl Send for ReadMapping {}
// SAFETY: as above: shared access only ever reads.
unsafe impl Sync for ReadMapping {}

impl ReadMapping {
    /// Maps all of `file` (its length as of now) read-only. An empty file maps to no bytes.
    pub fn map(file: &File) -> io::Result<ReadMapping> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::other("file larger than the address space"))?;
        if len == 0 {
            return Ok(ReadMapping {
                address: std::ptr::NonNull::<u8>::dangling().as_ptr(),
                len: 0,
            });
        }
        // SAFETY: a new private read-only mapping of `len` bytes of the open descriptor borrowed
        // from `file` for the call; the kernel picks the address. The result is checked below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ReadMapping {
            address: address.cast_const().cast(),
            len,
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `address` points to `len` readable bytes that stay mapped while `self` lives
        // (or is dangling with `len == 0`, which a slice allows); nothing writes through them.
        unsafe { std::slice::from_raw_parts(self.address, self.len) }
    }
}

impl AsRef<[u8]> for ReadMapping {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for ReadMapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `address` and `len` are exactly the mapping made in `map`, and no borrow
            // of its bytes outlives this value.
            unsafe {
                libc::munmap(self.address.cast_mut().cast(), self.len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn maps_the_file_bytes_and_an_empty_file_maps_to_none() {
        let mut file = tempfile::tempfile().unwrap();
        let written: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&written).unwrap();
        let mapping = ReadMapping::map(&file).unwrap();
        assert_eq!(mapping.bytes(), &written[..]);
        let moved = std::thread::spawn(move || mapping.bytes().len())
            .join()
            .unwrap();
        assert_eq!(moved, written.len());
        let empty = ReadMapping::map(&tempfile::tempfile().unwrap()).unwrap();
        assert!(empty.bytes().is_empty());
    }
}
