//! One HTTP/1.1 request on a fresh connection, plain or over TLS, read to its end.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub struct WebReply {
    pub status: u16,
    pub body: String,
}

impl WebReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A TLS connector that trusts the CA certificates in `ca_pem`.
pub fn connector(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, head: String, body: &[u8]) -> Result<Vec<u8>, String> {
    s.write_all(head.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    s.write_all(body).await.map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw).await {
        Ok(_) => Ok(raw),
        // A TLS peer that closes without close_notify after a complete reply.
        Err(_) if !raw.is_empty() => Ok(raw),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Sends one request; `Err` when the connection, the handshake or the reply fails.
pub async fn request(
    addr: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<WebReply, String> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let call = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        match tls {
            None => exchange(tcp, head, body).await,
            Some(connector) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
                let name = rustls_pki_types::ServerName::try_from(host).map_err(|e| format!("server name: {e}"))?;
                let s = connector.connect(name, tcp).await.map_err(|e| format!("TLS handshake: {e}"))?;
                exchange(s, head, body).await
            }
        }
    };
    let raw =
        tokio::time::timeout(Duration::from_secs(15), call).await.map_err(|_| "no reply within 15 s".to_string())??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP reply: {:?}", String::from_utf8_lossy(&raw[..raw.len().min(64)])))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {head:?}"))?;
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok(WebReply { status, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = b.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&b[..line_end]).trim(), 16) else { break };
        if size == 0 || b.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[(line_end + 4 + size).min(b.len())..];
    }
    out
}
