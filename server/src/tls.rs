//! TLS on the node's ports (`--tls-cert`, `--tls-key`, `--tls-ca`, `--tls-peer-client-auth`).
//!
//! The files are read and checked once, at start, so a bad file stops the node with its name in
//! the message. gRPC (clients and peers share the port) is served by tonic with them; the HTTP
//! port gets a rustls acceptor ([`TlsListener`]); the Raft network dials peers over https,
//! trusting `--tls-ca` and, with peer client auth, presenting this node's own certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Longest a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's certificate and key, and the CA that signs the cluster's certificates.
#[derive(Clone)]
pub struct TlsSettings {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Vec<u8>,
    /// Peers present their node certificate as a client certificate, and the Raft service
    /// refuses calls without one signed by the CA.
    pub peer_client_auth: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsSettings").field("peer_client_auth", &self.peer_client_auth).finish_non_exhaustive()
    }
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--{flag} {}: cannot read it: {e}", path.display()))
}

fn certificates(flag: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--{flag} {}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("--{flag} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(certs)
}

impl TlsSettings {
    /// Reads and checks the files: each parses, the key belongs to the certificate, and the CA
    /// holds usable certificates.
    pub fn load(cert: &Path, key: &Path, ca: &Path, peer_client_auth: bool) -> Result<Self, String> {
        let settings = TlsSettings {
            cert_pem: read("tls-cert", cert)?,
            key_pem: read("tls-key", key)?,
            ca_pem: read("tls-ca", ca)?,
            peer_client_auth,
        };
        certificates("tls-cert", cert, &settings.cert_pem)?;
        PrivateKeyDer::from_pem_slice(&settings.key_pem).map_err(|e| {
            format!("--tls-key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}", key.display())
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certificates("tls-ca", ca, &settings.ca_pem)? {
            roots.add(c).map_err(|e| format!("--tls-ca {}: not a usable CA certificate: {e}", ca.display()))?;
        }
        settings
            .http_server_config()
            .map_err(|e| format!("--tls-cert {} / --tls-key {}: {e}", cert.display(), key.display()))?;
        Ok(settings)
    }

    /// The gRPC port's TLS: this node's identity; with peer client auth, client certificates
    /// signed by the CA are verified when offered (clients of the API offer none; the Raft
    /// service requires one, see `RaftService`).
    pub fn grpc_server(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        if self.peer_client_auth {
            config.client_ca_root(Certificate::from_pem(&self.ca_pem)).client_auth_optional(true)
        } else {
            config
        }
    }

    /// How this node dials its peers: trusting the CA, and presenting its own certificate with
    /// peer client auth.
    pub fn grpc_peer_client(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        if self.peer_client_auth {
            config.identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
        } else {
            config
        }
    }

    fn http_server_config(&self) -> Result<rustls::ServerConfig, rustls::Error> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&self.cert_pem).filter_map(Result::ok).collect();
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| rustls::Error::General(format!("no private key: {e}")))?;
        // The provider is named rather than taken from the process default, which is ambiguous
        // when more than one is compiled in.
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The acceptor of the HTTP port.
    pub fn http_acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(self.http_server_config()?)))
    }
}

/// The HTTP port's listener with TLS: accepts TCP connections and runs each handshake in a task
/// of its own (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or silent client holds up nobody.
pub struct TlsListener {
    ready: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(Self { ready, local })
    }
}

/// Runs until the [`TlsListener`] is dropped.
async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: mpsc::Sender<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: the failed connection is still in the
                // backlog, so pause rather than spin.
                tracing::debug!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "HTTP TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "HTTP TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
