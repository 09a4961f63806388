//! The guest's bytes to a plain-TCP client without passing through the
//! proxy's memory: splice(2) moves them from the guest's socket into a
//! pipe and from the pipe into the client's socket (the kernel hands
//! page references along; the only copies left are the guest's write and
//! the client's read, as on a direct connection). Linux only; nix's safe
//! wrappers, no `unsafe` here.
//!
//! The pipe is the one buffer between the two sockets: it is filled from
//! the guest only when empty and drained whole into the client before the
//! next fill, so a slow client holds the guest back (TCP's own
//! backpressure) and nothing queues without bound. Its two descriptors
//! are owned and close with the relay, however it ends.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{MsgFlags, send};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Neither call may wait on the pipe (the sockets' readiness is tokio's;
/// the pipe is never waited for: it is empty before a fill and holds what
/// the fill put in before a drain).
fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// A pipe between two sockets.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Its capacity: the most one fill takes.
    size: usize,
}

impl Pipe {
    /// A non-blocking pipe of `size` bytes if the kernel allows
    /// (`fs.pipe-max-size`), else of its default size.
    pub(crate) fn new(size: usize) -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let wanted = i32::try_from(size).unwrap_or(i32::MAX);
        let got = fcntl(&write, FcntlArg::F_SETPIPE_SZ(wanted))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))?;
        Ok(Pipe {
            read,
            write,
            size: usize::try_from(got).unwrap_or(4096).max(4096),
        })
    }

    /// Waits for the guest's bytes and moves what is there (up to the
    /// pipe's size) into the empty pipe; 0 when the guest closed.
    pub(crate) async fn fill(&mut self, from: &TcpStream) -> io::Result<usize> {
        from.async_io(Interest::READABLE, || {
            Ok(splice(from, None, &self.write, None, self.size, flags())?)
        })
        .await
    }

    /// Moves the `n` bytes in the pipe into `to`, waiting while its send
    /// buffer is full.
    pub(crate) async fn drain(&mut self, to: &TcpStream, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let k = to
                .async_io(Interest::WRITABLE, || {
                    Ok(splice(&self.read, None, to, None, n, flags())?)
                })
                .await?;
            if k == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            n -= k.min(n);
        }
        Ok(())
    }
}

/// Writes `head` (a frame header) to `to`, telling the kernel more
/// follows (`MSG_MORE`) so that it leaves in one segment with the payload
/// spliced next, not as a tiny packet of its own.
pub(crate) async fn send_more(to: &TcpStream, mut head: &[u8]) -> io::Result<()> {
    while !head.is_empty() {
        let k = to
            .async_io(Interest::WRITABLE, || {
                Ok(send(
                    to.as_raw_fd(),
                    head,
                    // nix names no MSG_MORE (Linux's).
                    MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL,
                )?)
            })
            .await?;
        if k == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        head = &head[k.min(head.len())..];
    }
    Ok(())
}
