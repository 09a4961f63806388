//! The websocket itself (RFC 6455, the server's side, as websockify
//! speaks it): the opening handshake's answer, frames read from the
//! client (masked, fragments joined, control frames one by one) and
//! frames written to it (unmasked).
//!
//! The proxy frames the guest's bytes itself instead of going through a
//! general websocket library: a chunk read from the guest is written with
//! its frame header in front of it in the same buffer, in one write,
//! with no copy and no allocation per frame (the console proxy bench
//! measures the difference).

use std::pin::Pin;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frame opcodes.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// The longest frame header the server writes (no mask): 2 + 8 bytes.
pub(crate) const MAX_HEADER: usize = 10;

/// The largest message taken from a client (fragments joined).
pub(crate) const MAX_MESSAGE: usize = 16 << 20;

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The client's half of the connection, after the upgrade.
pub(crate) type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;
/// The half the proxy writes to the client.
pub(crate) type WriteHalf = Pin<Box<dyn AsyncWrite + Send>>;

/// Why a handshake is refused (400, with this reason).
pub(crate) fn check_handshake(headers: &HeaderMap) -> Result<HeaderValue, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::CONNECTION, "upgrade") {
        return Err("Connection header did not include 'upgrade'");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("Unsupported WebSocket version (13 only)");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("Sec-WebSocket-Key header missing")?;
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(ACCEPT_GUID.as_bytes());
    HeaderValue::from_str(&B64.encode(h.finalize())).map_err(|_| "bad Sec-WebSocket-Key")
}

/// Writes the header of an unmasked final frame of `len` bytes into the
/// end of `out`; returns where it starts.
pub(crate) fn header_into(out: &mut [u8; MAX_HEADER], opcode: u8, len: usize) -> usize {
    let first = 0x80 | opcode;
    if len < 126 {
        out[8] = first;
        out[9] = len as u8;
        8
    } else if len <= usize::from(u16::MAX) {
        out[6] = first;
        out[7] = 126;
        out[8..10].copy_from_slice(&(len as u16).to_be_bytes());
        6
    } else {
        out[0] = first;
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        0
    }
}

/// Writes one frame of `payload` (header and payload in one write).
pub(crate) async fn write_frame(
    w: &mut WriteHalf,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut head = [0u8; MAX_HEADER];
    let at = header_into(&mut head, opcode, payload.len());
    let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
    out.extend_from_slice(&head[at..]);
    out.extend_from_slice(payload);
    w.write_all(&out).await?;
    w.flush().await
}

/// A buffer the guest's bytes are read into with room for a frame header
/// in front, framed in place.
pub(crate) struct FrameBuf {
    buf: Vec<u8>,
    b64: Vec<u8>,
}

impl FrameBuf {
    /// Room for `chunk` bytes of payload.
    pub(crate) fn new(chunk: usize) -> Self {
        FrameBuf {
            buf: vec![0; MAX_HEADER + chunk],
            b64: Vec::new(),
        }
    }

    /// Where the next payload is read into.
    pub(crate) fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[MAX_HEADER..]
    }

    /// The frame of the first `n` payload bytes: binary, or base64 text.
    pub(crate) fn frame(&mut self, n: usize, base64: bool) -> &[u8] {
        let mut head = [0u8; MAX_HEADER];
        if base64 {
            let len = n.div_ceil(3) * 4;
            self.b64.resize(MAX_HEADER + len, 0);
            let written = B64
                .encode_slice(
                    &self.buf[MAX_HEADER..MAX_HEADER + n],
                    &mut self.b64[MAX_HEADER..],
                )
                .unwrap_or(0);
            let at = header_into(&mut head, OP_TEXT, written);
            self.b64[at..MAX_HEADER].copy_from_slice(&head[at..]);
            &self.b64[at..MAX_HEADER + written]
        } else {
            let at = header_into(&mut head, OP_BINARY, n);
            self.buf[at..MAX_HEADER].copy_from_slice(&head[at..]);
            &self.buf[at..MAX_HEADER + n]
        }
    }
}

/// A message from the client: data (text or binary, fragments joined) or
/// a control frame.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) opcode: u8,
    pub(crate) payload: BytesMut,
}

/// Reads the client's frames.
pub(crate) struct Reader {
    io: ReadHalf,
    buf: BytesMut,
    partial: Option<(u8, BytesMut)>,
}

fn unmask(p: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = p.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

impl Reader {
    /// Reads `io`, after the bytes already received with the handshake.
    pub(crate) fn new(io: ReadHalf, already: Bytes) -> Self {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(&already);
        Reader {
            io,
            buf,
            partial: None,
        }
    }

    /// One whole frame from the buffer: `(fin, opcode, payload)`.
    fn parse(&mut self) -> Result<Option<(bool, u8, BytesMut)>, String> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b0 & 0x70 != 0 {
            return Err("reserved bits set in a frame".into());
        }
        if b1 & 0x80 == 0 {
            return Err("an unmasked frame from the client".into());
        }
        let (len_bytes, len) = match b1 & 0x7f {
            126 => {
                if self.buf.len() < 4 {
                    return Ok(None);
                }
                (
                    2,
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                )
            }
            127 => {
                if self.buf.len() < 10 {
                    return Ok(None);
                }
                let mut l = [0u8; 8];
                l.copy_from_slice(&self.buf[2..10]);
                (
                    8,
                    usize::try_from(u64::from_be_bytes(l)).unwrap_or(usize::MAX),
                )
            }
            n => (0, usize::from(n)),
        };
        if len > MAX_MESSAGE {
            return Err(format!("a frame of {len} bytes is too large"));
        }
        let head = 2 + len_bytes + 4;
        if self.buf.len() < head + len {
            self.buf.reserve(head + len - self.buf.len());
            return Ok(None);
        }
        let mut key = [0u8; 4];
        key.copy_from_slice(&self.buf[head - 4..head]);
        self.buf.advance(head);
        let mut payload = self.buf.split_to(len);
        unmask(&mut payload, key);
        Ok(Some((b0 & 0x80 != 0, b0 & 0x0f, payload)))
    }

    /// The next message; `None` when the client closed the connection.
    pub(crate) async fn next(&mut self) -> Result<Option<Message>, String> {
        loop {
            while let Some((fin, opcode, payload)) = self.parse()? {
                match opcode {
                    OP_CLOSE | OP_PING | OP_PONG => {
                        if !fin || payload.len() > 125 {
                            return Err("a fragmented or long control frame".into());
                        }
                        return Ok(Some(Message { opcode, payload }));
                    }
                    OP_TEXT | OP_BINARY if self.partial.is_none() => {
                        if fin {
                            return Ok(Some(Message { opcode, payload }));
                        }
                        self.partial = Some((opcode, payload));
                    }
                    OP_CONTINUATION => {
                        let Some((op, mut joined)) = self.partial.take() else {
                            return Err("a continuation frame with nothing to continue".into());
                        };
                        if joined.len() + payload.len() > MAX_MESSAGE {
                            return Err("a message too large".into());
                        }
                        joined.extend_from_slice(&payload);
                        if fin {
                            return Ok(Some(Message {
                                opcode: op,
                                payload: joined,
                            }));
                        }
                        self.partial = Some((op, joined));
                    }
                    _ => return Err(format!("unexpected opcode {opcode:#x}")),
                }
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                if self.buf.is_empty() && self.partial.is_none() {
                    return Ok(None);
                }
                return Err("the client closed the connection inside a frame".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        h.insert("sec-websocket-version", "13".parse().unwrap());
        h.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        assert_eq!(check_handshake(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        h.insert("sec-websocket-version", "8".parse().unwrap());
        assert!(check_handshake(&h).is_err());
    }

    #[test]
    fn headers_of_each_length_class() {
        let mut h = [0u8; MAX_HEADER];
        let at = header_into(&mut h, OP_BINARY, 5);
        assert_eq!(&h[at..], &[0x82, 5]);
        let at = header_into(&mut h, OP_TEXT, 300);
        assert_eq!(&h[at..], &[0x81, 126, 1, 44]);
        let at = header_into(&mut h, OP_BINARY, 70_000);
        assert_eq!(&h[at..], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let mut f = FrameBuf::new(16);
        f.payload_mut()[..3].copy_from_slice(b"abc");
        assert_eq!(f.frame(3, false), &[0x82, 3, b'a', b'b', b'c']);
        assert_eq!(f.frame(3, true), b"\x81\x04YWJj");
    }

    #[tokio::test]
    async fn frames_are_unmasked_joined_and_split() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        let mut wire = masked(false, OP_BINARY, b"hel");
        wire.extend(masked(true, OP_PING, b"p"));
        wire.extend(masked(true, OP_CONTINUATION, b"lo"));
        wire.extend(masked(true, OP_TEXT, &big[..300]));
        wire.extend(masked(true, OP_BINARY, &big));
        let (first, rest) = wire.split_at(7);
        let mut r = Reader::new(
            Box::pin(std::io::Cursor::new(rest.to_vec())),
            Bytes::copy_from_slice(first),
        );
        let m = r.next().await.unwrap().unwrap();
        assert_eq!((m.opcode, &m.payload[..]), (OP_PING, &b"p"[..]));
        let m = r.next().await.unwrap().unwrap();
        assert_eq!((m.opcode, &m.payload[..]), (OP_BINARY, &b"hello"[..]));
        let m = r.next().await.unwrap().unwrap();
        assert_eq!((m.opcode, &m.payload[..]), (OP_TEXT, &big[..300]));
        let m = r.next().await.unwrap().unwrap();
        assert_eq!((m.opcode, &m.payload[..]), (OP_BINARY, &big[..]));
        assert!(r.next().await.unwrap().is_none());
        let unmasked = vec![0x82, 1, 0];
        let mut r = Reader::new(Box::pin(std::io::Cursor::new(unmasked)), Bytes::new());
        assert!(r.next().await.is_err(), "clients must mask");
    }
}
