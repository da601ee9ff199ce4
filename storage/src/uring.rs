//! The store's io_uring use, made only where the kernel and sandbox allow it (probed by
//! creating a ring; otherwise plain system calls do the same work):
//! - log syncs: an `fdatasync` submitted and waited for with one system call (buffered appends
//!   are copies into the mapped log, synced ones a `pwrite` first);
//! - batched table reads: the block reads of a multi-get, all submitted at once;
//! - scan read-ahead: the next span of a table's blocks is read while the current one is
//!   decoded.
//!
//! A submission hands the kernel a descriptor and, for reads, a buffer. Every operation's
//! completion is reaped before its buffer is used, moved or freed, and before its descriptor's
//! owner can be dropped.

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

/// Positioned reads of many blocks, submitted together.
pub(crate) struct UringReader {
    ring: IoUring,
}

/// Reads submitted per round trip.
const READ_BATCH: u32 = 64;

impl UringReader {
    pub(crate) fn new() -> io::Result<UringReader> {
        Ok(UringReader {
            ring: IoUring::new(READ_BATCH)?,
        })
    }

    /// The bytes of each `(file, offset, len)`, read with one submission per 64 reads.
    pub(crate) fn read_all(&mut self, reads: &[(&File, u64, usize)]) -> Vec<io::Result<Vec<u8>>> {
        let mut results = Vec::with_capacity(reads.len());
        for chunk in reads.chunks(READ_BATCH as usize) {
            let mut buffers: Vec<Vec<u8>> =
                chunk.iter().map(|(_, _, len)| vec![0u8; *len]).collect();
            let mut outcomes: Vec<io::Result<()>> = (0..chunk.len())
                .map(|_| Err(io::Error::other("io_uring read not completed")))
                .collect();
            let submitted = self.submit_chunk(chunk, &mut buffers);
            match submitted {
                Ok(count) => self.reap(count, chunk, &mut outcomes),
                Err(error) => {
                    for outcome in &mut outcomes {
                        *outcome = Err(io::Error::new(error.kind(), error.to_string()));
                    }
                }
            }
            for (buffer, outcome) in buffers.into_iter().zip(outcomes) {
                results.push(outcome.map(|()| buffer));
            }
        }
        results
    }

    /// Submits one read per entry of `chunk` into `buffers`; returns how many were submitted.
    fn submit_chunk(
        &mut self,
        chunk: &[(&File, u64, usize)],
        buffers: &mut [Vec<u8>],
    ) -> io::Result<usize> {
        for (index, ((file, offset, _), buffer)) in chunk.iter().zip(buffers.iter_mut()).enumerate()
        {
            let read = opcode::Read::new(
                types::Fd(file.as_raw_fd()),
                buffer.as_mut_ptr(),
                buffer.len() as u32,
            )
            .offset(*offset)
            .build()
            .user_data(index as u64);
            // SAFETY: the buffers and files outlive the reads: `read_all` reaps every submitted
            // read's completion (in `reap`) before it touches or drops a buffer, and borrows the
            // files for the whole call.
            let pushed = unsafe { self.ring.submission().push(&read) };
            if pushed.is_err() {
                // The queue holds READ_BATCH entries and a chunk is at most that many; still,
                // never leave submitted reads unreaped.
                let submitted = index;
                self.ring.submit()?;
                return Ok(submitted);
            }
        }
        self.ring.submit()?;
        Ok(chunk.len())
    }

    /// Waits for `count` completions and records each read's outcome.
    fn reap(
        &mut self,
        count: usize,
        chunk: &[(&File, u64, usize)],
        outcomes: &mut [io::Result<()>],
    ) {
        let mut reaped = 0;
        while reaped < count {
            if let Err(error) = self.ring.submit_and_wait(1) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Without completions the buffers may still be written: wait on, one at a time.
                std::thread::yield_now();
                continue;
            }
            for completion in self.ring.completion() {
                let index = completion.user_data() as usize;
                let Some(outcome) = outcomes.get_mut(index) else {
                    continue;
                };
                *outcome = read_outcome(completion.result(), chunk[index].2);
                reaped += 1;
            }
        }
    }
}

/// One read kept in flight ahead of a scan.
pub(crate) struct ReadAhead {
    ring: IoUring,
    /// The buffer of the read in flight, and its expected length.
    in_flight: Option<Vec<u8>>,
}

impl ReadAhead {
    pub(crate) fn new() -> io::Result<ReadAhead> {
        Ok(ReadAhead {
            ring: IoUring::new(2)?,
            in_flight: None,
        })
    }

    /// Starts reading `len` bytes of `file` at `offset`. The file must stay open until the read
    /// is finished (or this is dropped, which waits for it). A read already in flight is
    /// finished (and its bytes dropped) first.
    pub(crate) fn start(&mut self, file: &File, offset: u64, len: usize) -> io::Result<()> {
        if self.in_flight.is_some() {
            let _ = self.finish();
        }
        let mut buffer = vec![0u8; len];
        let read = opcode::Read::new(types::Fd(file.as_raw_fd()), buffer.as_mut_ptr(), len as u32)
            .offset(offset)
            .build();
        // SAFETY: the buffer's heap memory stays where it is (the Vec is kept in `in_flight`, not
        // reallocated) and is not read or dropped until the completion is reaped by `finish`,
        // which `drop` also calls; the caller keeps the file open that long.
        unsafe {
            self.ring
                .submission()
                .push(&read)
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.ring.submit()?;
        self.in_flight = Some(buffer);
        Ok(())
    }

    /// Waits for the read in flight and returns its bytes.
    pub(crate) fn finish(&mut self) -> io::Result<Vec<u8>> {
        let Some(buffer) = self.in_flight.as_ref() else {
            return Err(io::Error::other("no read in flight"));
        };
        let expected = buffer.len();
        let completion = loop {
            let next = self.ring.completion().next();
            match next {
                Some(completion) => break completion,
                None => match self.ring.submit_and_wait(1) {
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => std::thread::yield_now(),
                },
            }
        };
        let buffer = self.in_flight.take().unwrap_or_default();
        read_outcome(completion.result(), expected).map(|()| buffer)
    }
}

/// A read's completion result as an outcome: a negative result is the error it names, fewer
/// bytes than `expected` a short read.
fn read_outcome(result: i32, expected: usize) -> io::Result<()> {
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result));
    }
    if result as usize != expected {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read {result} of {expected} bytes"),
        ));
    }
    Ok(())
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if self.in_flight.is_some() {
            let _ = self.finish();
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

    #[test]
    fn batched_and_read_ahead_reads_return_the_file_bytes_and_short_reads_fail() {
        let (Ok(mut reader), Ok(mut ahead)) = (UringReader::new(), ReadAhead::new()) else {
            eprintln!("io_uring test skipped: no ring here");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks");
        let bytes: Vec<u8> = (0..200_000u32).map(|index| (index % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // More reads than one submission takes, and one past the end.
        let mut reads: Vec<(&std::fs::File, u64, usize)> = (0..150u64)
            .map(|index| (&file, index * 1000, 700))
            .collect();
        reads.push((&file, 199_900, 500));
        let results = reader.read_all(&reads);
        for ((_, offset, len), result) in reads.iter().zip(&results).take(150) {
            let offset = *offset as usize;
            assert_eq!(result.as_ref().unwrap(), &bytes[offset..offset + len]);
        }
        assert!(results[150].is_err(), "a short read is an error");
        ahead.start(&file, 4096, 65536).unwrap();
        assert_eq!(ahead.finish().unwrap(), &bytes[4096..4096 + 65536]);
        ahead.start(&file, 0, 10).unwrap();
        drop(ahead);
    }
}
