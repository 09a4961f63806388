//! Small console servers on loopback, for tests and the bench: a VNC
//! server (RFB 3.8, security `None`, a ServerInit), a SPICE server (the
//! link reply), a serial port that echoes, and a source that sends a
//! fixed number of bytes.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the fake guest speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeConsole {
    /// RFB 3.8 with security type None; `fake-vnc` 640×480.
    Vnc,
    /// A SPICE server's `SpiceLinkReply` to the client's `SpiceLinkMess`.
    Spice,
    /// A serial line that echoes what it gets.
    SerialEcho,
    /// Sends this many bytes (a repeating pattern), then closes.
    Source(u64),
}

/// The `SpiceLinkHeader` magic (`REDQ`).
pub const SPICE_MAGIC: &[u8; 4] = b"REDQ";

/// Listens on 127.0.0.1 (a free port) and serves every connection.
pub async fn start(kind: FakeConsole) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let h = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = serve(kind, s).await;
            });
        }
    });
    Ok((addr, h))
}

async fn serve(kind: FakeConsole, mut s: TcpStream) -> std::io::Result<()> {
    match kind {
        FakeConsole::Vnc => {
            s.write_all(b"RFB 003.008\n").await?;
            let mut v = [0u8; 12];
            s.read_exact(&mut v).await?;
            s.write_all(&[1, 1]).await?;
            let mut chosen = [0u8; 1];
            s.read_exact(&mut chosen).await?;
            if chosen[0] != 1 {
                return Ok(());
            }
            s.write_all(&0u32.to_be_bytes()).await?;
            let mut shared = [0u8; 1];
            s.read_exact(&mut shared).await?;
            let mut init = Vec::new();
            init.extend_from_slice(&640u16.to_be_bytes());
            init.extend_from_slice(&480u16.to_be_bytes());
            // 32 bpp, depth 24, little endian, true colour, 255/255/255, shifts 16/8/0.
            init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
            let name = b"fake-vnc";
            init.extend_from_slice(&(name.len() as u32).to_be_bytes());
            init.extend_from_slice(name);
            s.write_all(&init).await?;
            let mut sink = [0u8; 4096];
            while s.read(&mut sink).await? > 0 {}
        }
        FakeConsole::Spice => {
            let mut head = [0u8; 16];
            s.read_exact(&mut head).await?;
            if &head[..4] != SPICE_MAGIC {
                return Ok(());
            }
            let size = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
            let mut body = vec![0u8; size.min(1 << 16)];
            s.read_exact(&mut body).await?;
            // SpiceLinkReply: error, 162-byte public key, caps counts, offset.
            let mut reply = Vec::new();
            reply.extend_from_slice(&0u32.to_le_bytes());
            reply.extend_from_slice(&[0u8; 162]);
            reply.extend_from_slice(&0u32.to_le_bytes());
            reply.extend_from_slice(&0u32.to_le_bytes());
            reply.extend_from_slice(&178u32.to_le_bytes());
            let mut out = Vec::new();
            out.extend_from_slice(SPICE_MAGIC);
            out.extend_from_slice(&2u32.to_le_bytes());
            out.extend_from_slice(&2u32.to_le_bytes());
            out.extend_from_slice(&(reply.len() as u32).to_le_bytes());
            out.extend_from_slice(&reply);
            s.write_all(&out).await?;
            let mut sink = [0u8; 4096];
            while s.read(&mut sink).await? > 0 {}
        }
        FakeConsole::SerialEcho => {
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await?;
        }
        FakeConsole::Source(n) => {
            let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                s.write_all(&chunk[..k]).await?;
                left -= k as u64;
            }
            s.shutdown().await?;
        }
    }
    Ok(())
}
