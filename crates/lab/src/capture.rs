//! Capture files for real traffic (the chat and the proxy): a [`PcapWriter`] on a thread of its
//! own, fed through a bounded queue, so the chat never waits for the disk.
//!
//! Why a thread: the chat and the proxy each run on one async thread, and a write that blocks (a
//! slow or full disk, a hung network file system) would stall them. Here [`CaptureFile::record`]
//! never waits: it puts a copy of the datagram on a queue of [`QUEUE`] records; if the queue is
//! full (the disk cannot keep up) the datagram is left out of the capture and counted. The first
//! error stops the capture with one warning, and the chat or proxy goes on. At the end the writer
//! is given [`FINISH_WAIT`] to write what is queued; a disk that hangs longer is left behind
//! rather than holding up the exit.
//!
//! Time: the caller passes the [`Instant`]s of its own clock reads (the I/O layer's); they become
//! time since the Unix epoch through one anchor taken at creation (the wall clock and the
//! monotonic clock read once, together), so timestamps are monotonic and agree with the wall
//! clock of the start. This module never reads the clock per datagram.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::pcap::{Datagram, Format, PacketFate, PcapWriter};

/// Datagrams queued for the writer thread at most; beyond that they are left out and counted.
pub const QUEUE: usize = 4096;

/// How long [`CaptureFile::finish`] (and dropping one) waits for the writer to write what is
/// queued and flush.
pub const FINISH_WAIT: Duration = Duration::from_secs(5);

/// One datagram for the writer thread (owned: it crosses threads).
struct Record {
    time: Duration,
    from: SocketAddr,
    to: SocketAddr,
    payload: Vec<u8>,
    fate: Option<PacketFate>,
    note: Option<String>,
}

/// What the writer thread and the capturing side share.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The writer stopped (an error): nothing more is queued.
    failed: AtomicBool,
    /// Left out because the queue was full.
    missed: AtomicU64,
    /// Written to the file.
    written: AtomicU64,
    /// Print warnings on stderr as they happen (else keep them for [`CaptureStatus::warnings`]).
    print: bool,
    prefix: &'static str,
    warnings: Mutex<Vec<String>>,
}

impl Shared {
    fn warn(&self, message: String) {
        if self.print {
            eprintln!("{}: warning: {message}", self.prefix);
        } else if let Ok(mut kept) = self.warnings.lock() {
            kept.push(message);
        }
    }
}

/// A capture being written to a file, in pcapng (see [`crate::pcap`]).
#[derive(Debug)]
pub struct CaptureFile {
    queue: Option<SyncSender<Record>>,
    done: Option<Receiver<()>>,
    shared: Arc<Shared>,
    /// The wall-clock time (since the Unix epoch) of `anchor_instant`.
    anchor_wall: Duration,
    anchor_instant: Instant,
}

/// A view of a capture's state that outlives it: to show its warnings once the chat screen is
/// gone (they are not printed while a screen covers the terminal).
#[derive(Debug, Clone)]
pub struct CaptureStatus(Arc<Shared>);

impl CaptureStatus {
    /// The warnings not printed yet (only when created with `print_warnings = false`).
    pub fn warnings(&self) -> Vec<String> {
        self.0
            .warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// Datagrams written so far.
    pub fn written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }
}

impl CaptureFile {
    /// Creates (or truncates) `path` and writes the pcapng header there. Warnings later go to
    /// stderr, prefixed `prefix: warning:`, if `print_warnings`; else they are kept for
    /// [`CaptureStatus::warnings`]. An error here (a directory that does not exist, no
    /// permission) is returned: better refused at the start than found missing at the end.
    pub fn create(
        path: &Path,
        prefix: &'static str,
        print_warnings: bool,
    ) -> io::Result<CaptureFile> {
        let file = File::create(path)?;
        let writer =
            PcapWriter::new(BufWriter::new(file), Format::PcapNg).map_err(io::Error::other)?;
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            failed: AtomicBool::new(false),
            missed: AtomicU64::new(0),
            written: AtomicU64::new(0),
            print: print_warnings,
            prefix,
            warnings: Mutex::new(Vec::new()),
        });
        let (queue, records) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("udpchat-pcap".into())
            .spawn(move || {
                write_all(writer, &records, &thread_shared);
                // Nobody may be waiting any more: that is fine.
                let _ = done_tx.send(());
            })?;
        // Read together, once: every timestamp is this wall-clock time plus monotonic time since.
        let anchor_instant = Instant::now();
        let anchor_wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(CaptureFile {
            queue: Some(queue),
            done: Some(done),
            shared,
            anchor_wall,
            anchor_instant,
        })
    }

    /// A handle on the capture's warnings and counts.
    pub fn status(&self) -> CaptureStatus {
        CaptureStatus(Arc::clone(&self.shared))
    }

    /// Queues one datagram seen at `at`; never waits. Left out (and counted) if the writer is
    /// behind by [`QUEUE`] datagrams; ignored once the capture has stopped on an error.
    pub fn record(&self, at: Instant, datagram: &Datagram<'_>) {
        let Some(queue) = &self.queue else { return };
        if self.shared.failed.load(Ordering::Relaxed) {
            return;
        }
        let since = at.saturating_duration_since(self.anchor_instant);
        let record = Record {
            time: self.anchor_wall + since,
            from: datagram.from,
            to: datagram.to,
            payload: datagram.payload.to_vec(),
            fate: datagram.fate,
            note: datagram.note.map(str::to_owned),
        };
        match queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.missed.fetch_add(1, Ordering::Relaxed);
            }
            // The writer stopped on an error and said so.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Stops capturing: lets the writer write what is queued and flush (waiting at most
    /// [`FINISH_WAIT`]), and warns about datagrams left out. Dropping the capture does the same.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        // Closing the queue tells the writer to flush and stop.
        self.queue = None;
        if let Some(done) = self.done.take() {
            if done.recv_timeout(FINISH_WAIT).is_err()
                && !self.shared.failed.load(Ordering::Relaxed)
            {
                self.shared.warn(format!(
                    "the capture {} is incomplete: writing it took longer than {} s",
                    self.shared.path.display(),
                    FINISH_WAIT.as_secs()
                ));
            }
        }
        let missed = self.shared.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            self.shared.warn(format!(
                "{missed} datagrams were left out of the capture {} (the disk could not keep up)",
                self.shared.path.display()
            ));
        }
    }
}

impl Drop for CaptureFile {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: writes records until the queue closes, then flushes. The first error
/// stops it with one warning (the capturing side then stops queueing).
fn write_all(mut writer: PcapWriter<BufWriter<File>>, records: &Receiver<Record>, shared: &Shared) {
    let stop = |e: &dyn std::fmt::Display, written: u64| {
        shared.failed.store(true, Ordering::Relaxed);
        shared.warn(format!(
            "capturing stopped after {written} datagrams: {e} ({}); the chat goes on",
            shared.path.display()
        ));
    };
    while let Ok(r) = records.recv() {
        let datagram = Datagram {
            time: r.time,
            from: r.from,
            to: r.to,
            payload: &r.payload,
            fate: r.fate,
            note: r.note.as_deref(),
        };
        match writer.write(&datagram) {
            Ok(()) => {
                shared.written.fetch_add(1, Ordering::Relaxed);
            }
            // A datagram the format cannot hold is left out; the capture goes on.
            Err(
                crate::pcap::PcapError::TooLarge { .. }
                | crate::pcap::PcapError::CommentTooLong { .. },
            ) => {
                shared.missed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stop(&e, writer.packets());
                return;
            }
        }
    }
    if let Err(e) = writer.flush() {
        stop(&e, writer.packets());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn datagram(payload: &[u8]) -> Datagram<'_> {
        Datagram {
            time: Duration::ZERO,
            from: "127.0.0.1:1".parse().unwrap(),
            to: "127.0.0.1:2".parse().unwrap(),
            payload,
            fate: None,
            note: Some("sent"),
        }
    }

    #[test]
    fn datagrams_reach_the_file_with_wall_clock_times() {
        let dir = std::env::temp_dir().join(format!("udpchat-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.pcapng");
        let capture = CaptureFile::create(&path, "test", false).unwrap();
        let status = capture.status();
        let start = Instant::now();
        capture.record(start, &datagram(b"one"));
        capture.record(start + Duration::from_millis(5), &datagram(b"two"));
        capture.finish();
        assert_eq!(status.written(), 2);
        assert!(status.warnings().is_empty());
        let bytes = std::fs::read(&path).unwrap();
        // Section header, interface description, then two enhanced packet blocks.
        assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        let epbs = bytes.windows(4).filter(|w| *w == [6, 0, 0, 0]).count();
        assert!(epbs >= 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_stops_the_capture_with_one_warning() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        // The header is buffered, so creating succeeds; the first flush fails.
        let capture = CaptureFile::create(Path::new("/dev/full"), "test", false).unwrap();
        let status = capture.status();
        let big = vec![0u8; 60_000];
        for _ in 0..10 {
            capture.record(Instant::now(), &datagram(&big));
        }
        capture.finish();
        let warnings = status.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("capturing stopped"), "{warnings:?}");
        assert!(warnings[0].contains("No space left"), "{warnings:?}");
    }
}
