//! The one HTTP and HTTPS client of the tool, for `verify`: one request, `Connection: close`,
//! the status line and headers parsed. The HTTPS side trusts exactly the certificate the site
//! is configured with (pinned), which also proves nginx serves that certificate; whether a CA
//! vouches for it is the certificate check's business, not this one's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a probe got no response.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing listens there (or a firewall drops it): not an error of the site.
    #[error("nothing answers on {0}")]
    Unreachable(SocketAddr),
    #[error("{0}")]
    Failed(String),
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn connect(address: SocketAddr) -> Result<TcpStream, ProbeError> {
    let stream = TcpStream::connect_timeout(&address, TIMEOUT).map_err(|error| match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut => ProbeError::Unreachable(address),
        _ => ProbeError::Failed(format!("connect to {address}: {error}")),
    })?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|error| ProbeError::Failed(error.to_string()))?;
    Ok(stream)
}

/// HTTP/1.0, so the answer is never chunked and ends when the connection does.
fn request(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: pretix-proxy verify\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// A plain HTTP GET.
pub fn http_get(address: SocketAddr, host: &str, path: &str) -> Result<Response, ProbeError> {
    let mut stream = connect(address)?;
    stream
        .write_all(request("GET", host, path, &[], "").as_bytes())
        .map_err(|error| ProbeError::Failed(format!("send to {address}: {error}")))?;
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .map_err(|error| ProbeError::Failed(format!("read from {address}: {error}")))?;
    parse(&bytes).ok_or_else(|| ProbeError::Failed(format!("{address} did not answer with HTTP")))
}

/// An HTTPS GET with SNI `server_name`, trusting only `pinned_leaf` (DER).
pub fn https_get(
    address: SocketAddr,
    server_name: &str,
    host_header: &str,
    path: &str,
    pinned_leaf: &[u8],
) -> Result<Response, ProbeError> {
    https_request(
        address,
        server_name,
        &HttpsRequest {
            method: "GET",
            host: host_header,
            path,
            headers: &[],
            body: "",
        },
        pinned_leaf,
    )
}

/// One request over HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct HttpsRequest<'a> {
    pub method: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    pub path: &'a str,
    /// More headers (Cookie, Referer, Content-Type).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a str,
}

/// Any request over HTTPS with SNI `server_name`, trusting only `pinned_leaf` (DER).
pub fn https_request(
    address: SocketAddr,
    server_name: &str,
    request_to_send: &HttpsRequest<'_>,
    pinned_leaf: &[u8],
) -> Result<Response, ProbeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Pinned {
        leaf: pinned_leaf.to_vec(),
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| ProbeError::Failed(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|error| ProbeError::Failed(format!("{server_name}: {error}")))?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|error| ProbeError::Failed(error.to_string()))?;
    let mut stream = rustls::StreamOwned::new(connection, connect(address)?);
    stream
        .write_all(
            request(
                request_to_send.method,
                request_to_send.host,
                request_to_send.path,
                request_to_send.headers,
                request_to_send.body,
            )
            .as_bytes(),
        )
        .map_err(|error| ProbeError::Failed(format!("TLS to {address}: {error}")))?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        // A server that closes without close_notify after a complete response.
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(error) => return Err(ProbeError::Failed(format!("TLS to {address}: {error}"))),
    }
    parse(&bytes).ok_or_else(|| ProbeError::Failed(format!("{address} did not answer with HTTP over TLS")))
}

fn parse(bytes: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Accepts the one certificate the site is configured with; handshake signatures are still
/// verified, so the server must hold its key.
#[derive(Debug)]
struct Pinned {
    leaf: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "nginx serves another certificate than the configured one".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
