//! What authenticates the processes of a cluster to each other: a shared token, sent as a
//! bearer token with every request and checked by every endpoint, and optional TLS.

use std::path::PathBuf;

use crate::error::{Result, ShuffleError};

/// The token and TLS settings of one process.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The shared secret; `None` runs without authentication.
    pub token: Option<String>,
    /// TLS certificate files; `None` runs plain gRPC.
    pub tls: Option<TlsFiles>,
}

/// PEM files for TLS: this process's certificate and key (used when it serves), and the
/// certificate authority that signed its peers' certificates (used when it connects).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca_certificate: PathBuf,
}

impl Security {
    /// The value of the `authorization` header this process sends.
    pub(crate) fn bearer(&self) -> Option<String> {
        self.token.as_ref().map(|token| format!("Bearer {token}"))
    }

    /// The server side of TLS, when configured.
    pub(crate) fn server_tls(&self) -> Result<Option<tonic::transport::ServerTlsConfig>> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let identity =
            tonic::transport::Identity::from_pem(read_pem(&tls.certificate)?, read_pem(&tls.key)?);
        Ok(Some(
            tonic::transport::ServerTlsConfig::new().identity(identity),
        ))
    }

    /// The client side of TLS, when configured.
    pub(crate) fn client_tls(&self) -> Result<Option<tonic::transport::ClientTlsConfig>> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let ca = tonic::transport::Certificate::from_pem(read_pem(&tls.ca_certificate)?);
        Ok(Some(
            tonic::transport::ClientTlsConfig::new().ca_certificate(ca),
        ))
    }
}

fn read_pem(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| {
        ShuffleError::Invalid(format!("cannot read TLS file {}: {error}", path.display()))
    })
}
