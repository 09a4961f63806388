//! The bytes between the websocket and the guest's port (websockify's
//! `do_proxy`): binary frames, or base64 text frames; pings answered,
//! a close answered and passed on as the end of the guest's input.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::source::ConnectInfo;
use crate::websocket::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, ReadHalf, WriteHalf};

/// How much of the guest's stream one frame carries at most.
const CHUNK: usize = 64 * 1024;

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
    reader: &'a mut websocket::Reader,
    writer: &'a Mutex<WriteHalf>,
    mode: Mode,
    /// Bytes received and not yet taken.
    pub(crate) pending: BytesMut,
}

impl<'a> ClientIo<'a> {
    pub(crate) fn new(
        reader: &'a mut websocket::Reader,
        writer: &'a Mutex<WriteHalf>,
        mode: Mode,
    ) -> Self {
        ClientIo {
            reader,
            writer,
            mode,
            pending: BytesMut::new(),
        }
    }

    /// Exactly `n` bytes from the client.
    pub(crate) async fn recv_exact(&mut self, n: usize) -> Result<Bytes, String> {
        while self.pending.len() < n {
            match data_of(self.mode, self.reader.next().await?, self.writer).await? {
                Some(b) => self.pending.extend_from_slice(&b),
                None => return Err("the client closed the connection".into()),
            }
        }
        Ok(self.pending.split_to(n).freeze())
    }

    /// Sends `data` to the client.
    pub(crate) async fn send(&mut self, data: &[u8]) -> Result<(), String> {
        let mut w = self.writer.lock().await;
        match self.mode {
            Mode::Binary => websocket::write_frame(&mut w, OP_BINARY, data).await,
            Mode::Base64 => {
                websocket::write_frame(&mut w, OP_TEXT, B64.encode(data).as_bytes()).await
            }
        }
        .map_err(|e| e.to_string())
    }
}

fn decode_text(mode: Mode, t: &[u8]) -> Result<Vec<u8>, String> {
    match mode {
        Mode::Base64 => {
            let t = std::str::from_utf8(t).map_err(|_| "a text frame not UTF-8".to_owned())?;
            B64.decode(t.trim())
                .map_err(|e| format!("bad base64 frame: {e}"))
        }
        Mode::Binary => Ok(t.to_vec()),
    }
}

/// What one client message means for the guest: bytes (`Some`, maybe
/// empty for control frames), or the end (`None`, after answering a
/// close). Pings are answered here.
async fn data_of(
    mode: Mode,
    m: Option<websocket::Message>,
    writer: &Mutex<WriteHalf>,
) -> Result<Option<BytesMut>, String> {
    let Some(m) = m else { return Ok(None) };
    match m.opcode {
        OP_BINARY => Ok(Some(m.payload)),
        OP_TEXT => Ok(Some(BytesMut::from(&decode_text(mode, &m.payload)?[..]))),
        OP_PING => {
            let mut w = writer.lock().await;
            websocket::write_frame(&mut w, OP_PONG, &m.payload)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(BytesMut::new()))
        }
        OP_CLOSE => {
            // Echo the status code (RFC 6455 5.5.1).
            let code = m.payload.get(..2).unwrap_or_default().to_vec();
            let mut w = writer.lock().await;
            let _ = websocket::write_frame(&mut w, OP_CLOSE, &code).await;
            Ok(None)
        }
        _ => Ok(Some(BytesMut::new())),
    }
}

/// The client's connection after the upgrade: its two halves and what
/// was read with the handshake.
pub(crate) struct Client {
    pub(crate) read: ReadHalf,
    pub(crate) write: WriteHalf,
    pub(crate) already: Bytes,
}

/// Relays until either side closes or `stop`; with `rfb`, the RFB
/// security negotiation first.
pub(crate) async fn run(
    client: Client,
    mut guest: TcpStream,
    mode: Mode,
    rfb: bool,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut reader = websocket::Reader::new(client.read, client.already);
    let writer = Arc::new(Mutex::new(client.write));
    let mut leftover = BytesMut::new();
    if rfb {
        let mut io = ClientIo::new(&mut reader, &writer, mode);
        let r = crate::rfb::negotiate(&mut io, &mut guest).await;
        leftover = std::mem::take(&mut io.pending);
        if let Err(e) = r {
            let mut w = writer.lock().await;
            let _ = websocket::write_frame(&mut w, OP_CLOSE, &1011u16.to_be_bytes()).await;
            return Err(format!("RFB security negotiation failed: {e}"));
        }
    }
    let (mut gr, mut gw) = guest.into_split();
    if !leftover.is_empty() {
        gw.write_all(&leftover).await.map_err(|e| e.to_string())?;
    }
    let up_writer = writer.clone();
    let up = async move {
        while let Some(data) = data_of(mode, reader.next().await?, &up_writer).await? {
            if !data.is_empty() {
                gw.write_all(&data).await.map_err(|e| e.to_string())?;
            }
        }
        let _ = gw.shutdown().await;
        Ok::<(), String>(())
    };
    let down = async move {
        // One buffer for the whole connection: each chunk is read behind
        // room for its frame header and written framed, in one write.
        let mut buf = websocket::FrameBuf::new(CHUNK);
        loop {
            let n = gr
                .read(buf.payload_mut())
                .await
                .map_err(|e| e.to_string())?;
            let mut w = writer.lock().await;
            if n == 0 {
                let _ = websocket::write_frame(&mut w, OP_CLOSE, &1000u16.to_be_bytes()).await;
                break;
            }
            w.write_all(buf.frame(n, mode == Mode::Base64))
                .await
                .map_err(|e| e.to_string())?;
            // A no-op on TCP; TLS sends its record now.
            w.flush().await.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    tokio::select! {
        r = up => r,
        r = down => r,
        _ = stop.cancelled() => Ok(()),
    }
}
