//! The bytes between the websocket and the guest's port (websockify's
//! `do_proxy`): binary frames, or base64 text frames.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::source::ConnectInfo;

/// How bytes travel in websocket frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Binary frames (subprotocol `binary`, or none).
    Binary,
    /// Base64 in text frames (subprotocol `base64`).
    Base64,
}

/// Opens the guest's console port; with an `internal_access_path`, asks
/// for it with `CONNECT` first and expects a 200 (nova's handshake).
pub(crate) async fn connect(info: &ConnectInfo) -> std::io::Result<TcpStream> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((info.host.as_str(), info.port)),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    if let Some(path) = info
        .internal_access_path
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        s.write_all(format!("CONNECT {path} HTTP/1.1\r\n\r\n").as_bytes())
            .await?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 8192 || s.read(&mut b).await? == 0 {
                return Err(std::io::Error::other("bad CONNECT answer"));
            }
            head.push(b[0]);
        }
        let first = head.split(|&c| c == b'\n').next().unwrap_or(&[]);
        if !first.windows(3).any(|w| w == b"200") {
            return Err(std::io::Error::other(
                "CONNECT refused (invalid connection info)",
            ));
        }
    }
    Ok(s)
}

/// The client side as a byte stream, for the RFB negotiation.
pub(crate) struct ClientIo<'a> {
    ws: &'a mut WebSocket,
    mode: Mode,
    /// Bytes received and not yet taken.
    pub(crate) pending: BytesMut,
}

impl<'a> ClientIo<'a> {
    pub(crate) fn new(ws: &'a mut WebSocket, mode: Mode) -> Self {
        ClientIo {
            ws,
            mode,
            pending: BytesMut::new(),
        }
    }

    /// Exactly `n` bytes from the client.
    pub(crate) async fn recv_exact(&mut self, n: usize) -> Result<Bytes, String> {
        while self.pending.len() < n {
            match self.ws.recv().await {
                Some(Ok(Message::Binary(b))) => self.pending.extend_from_slice(&b),
                Some(Ok(Message::Text(t))) => {
                    let b = decode_text(self.mode, t.as_str())?;
                    self.pending.extend_from_slice(&b);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => {
                    return Err("the client closed the connection".into());
                }
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
        Ok(self.pending.split_to(n).freeze())
    }

    /// Sends `data` to the client.
    pub(crate) async fn send(&mut self, data: &[u8]) -> Result<(), String> {
        self.ws
            .send(frame(self.mode, Bytes::copy_from_slice(data)))
            .await
            .map_err(|e| e.to_string())
    }
}

fn decode_text(mode: Mode, t: &str) -> Result<Vec<u8>, String> {
    match mode {
        Mode::Base64 => B64
            .decode(t.trim())
            .map_err(|e| format!("bad base64 frame: {e}")),
        Mode::Binary => Ok(t.as_bytes().to_vec()),
    }
}

fn frame(mode: Mode, b: Bytes) -> Message {
    match mode {
        Mode::Binary => Message::Binary(b),
        Mode::Base64 => Message::Text(B64.encode(&b).into()),
    }
}

/// Relays until either side closes or `stop`; with `rfb`, the RFB
/// security negotiation first.
pub(crate) async fn run(
    mut ws: WebSocket,
    mut guest: TcpStream,
    mode: Mode,
    rfb: bool,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut leftover = BytesMut::new();
    if rfb {
        let mut client = ClientIo::new(&mut ws, mode);
        let r = crate::rfb::negotiate(&mut client, &mut guest).await;
        leftover = std::mem::take(&mut client.pending);
        if let Err(e) = r {
            let _ = ws.send(Message::Close(None)).await;
            return Err(format!("RFB security negotiation failed: {e}"));
        }
    }
    let (mut gr, mut gw) = guest.into_split();
    if !leftover.is_empty() {
        gw.write_all(&leftover).await.map_err(|e| e.to_string())?;
    }
    let (mut tx, mut rx) = ws.split();
    let up = async move {
        while let Some(m) = rx.next().await {
            let data = match m {
                Ok(Message::Binary(b)) => b.to_vec(),
                Ok(Message::Text(t)) => decode_text(mode, t.as_str())?,
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => break,
                Err(e) => return Err(e.to_string()),
            };
            gw.write_all(&data).await.map_err(|e| e.to_string())?;
        }
        let _ = gw.shutdown().await;
        Ok::<(), String>(())
    };
    let down = async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            if buf.capacity() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            let n = gr.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            tx.send(frame(mode, buf.split().freeze()))
                .await
                .map_err(|e| e.to_string())?;
        }
        let _ = tx.send(Message::Close(None)).await;
        Ok::<(), String>(())
    };
    tokio::select! {
        r = up => r,
        r = down => r,
        _ = stop.cancelled() => Ok(()),
    }
}
