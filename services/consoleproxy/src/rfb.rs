//! The RFB security negotiation the VNC proxy does itself (nova's
//! `RFBSecurityProxy`, RFB 3.8 only): the client is offered the `None`
//! security type, the server is answered with the scheme `[vnc]
//! auth_schemes` allows (`none`); the SecurityResult and everything after
//! it is relayed unchanged.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::relay::ClientIo;

const VERSION_LENGTH: usize = 12;
const AUTH_NONE: u8 = 1;

async fn recv(guest: &mut TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    guest
        .read_exact(&mut b)
        .await
        .map_err(|e| format!("incorrect read from the server, wanted {n} bytes: {e}"))?;
    Ok(b)
}

/// `RFB 003.008\n` → (3, 8).
fn version(v: &[u8]) -> Option<(u32, u32)> {
    if v.len() != VERSION_LENGTH || !v.starts_with(b"RFB ") || v[11] != b'\n' {
        return None;
    }
    let s = std::str::from_utf8(&v[4..11]).ok()?;
    let (maj, min) = s.split_once('.')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

fn var_str(msg: &str) -> Vec<u8> {
    let mut out = (msg.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(msg.as_bytes());
    out
}

/// Fails the client side with `msg` (SecurityResult failed + reason).
async fn fail(client: &mut ClientIo<'_>, msg: &str) {
    let mut out = 1u32.to_be_bytes().to_vec();
    out.extend_from_slice(&var_str(msg));
    let _ = client.send(&out).await;
}

/// Runs the negotiation; on return both sides are past security.
pub(crate) async fn negotiate(
    client: &mut ClientIo<'_>,
    guest: &mut TcpStream,
) -> Result<(), String> {
    let server_version = recv(guest, VERSION_LENGTH).await?;
    if version(&server_version) != Some((3, 8)) {
        return Err(format!(
            "security proxying requires RFB protocol version 3.8, but server sent {}",
            String::from_utf8_lossy(&server_version).trim_end()
        ));
    }
    guest
        .write_all(&server_version)
        .await
        .map_err(|e| e.to_string())?;
    client.send(&server_version).await?;
    let client_version = client.recv_exact(VERSION_LENGTH).await?;
    if version(&client_version) != Some((3, 8)) {
        return Err(format!(
            "security proxying requires RFB protocol version 3.8, but tenant asked for {}",
            String::from_utf8_lossy(&client_version).trim_end()
        ));
    }
    let count = recv(guest, 1).await?[0];
    if count == 0 {
        let len = u32::from_be_bytes(
            recv(guest, 4)
                .await?
                .try_into()
                .map_err(|_| "short read".to_owned())?,
        );
        let reason = if len <= 256 {
            String::from_utf8_lossy(&recv(guest, len as usize).await?).into_owned()
        } else {
            "Unable to negotiate security with server".to_owned()
        };
        let mut out = vec![0u8];
        out.extend_from_slice(&var_str(&reason));
        let _ = client.send(&out).await;
        return Err(reason);
    }
    let offered = recv(guest, count as usize).await?;
    client.send(&[1, AUTH_NONE]).await?;
    let chosen = client.recv_exact(1).await?[0];
    if chosen != AUTH_NONE {
        fail(client, "Only the security type 1 (NONE) is supported").await;
        let _ = guest.write_all(&[0]).await;
        return Err(format!(
            "client requested a security type other than 1 (NONE): {chosen}"
        ));
    }
    if !offered.contains(&AUTH_NONE) {
        fail(client, "Unable to negotiate security with server").await;
        let _ = guest.write_all(&[0]).await;
        return Err(format!(
            "no compute auth available: the server offers {offered:?}, [vnc] auth_schemes allows none"
        ));
    }
    guest
        .write_all(&[AUTH_NONE])
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!("RFB security negotiated: None with the server and the client");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version(b"RFB 003.008\n"), Some((3, 8)));
        assert_eq!(version(b"RFB 003.003\n"), Some((3, 3)));
        assert_eq!(version(b"RFB 003.008"), None);
        assert_eq!(version(b"XYZ 003.008\n"), None);
    }
}
