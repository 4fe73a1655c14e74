//! The HTTP side of a meeting link: the server as a WHIP and WHEP client (RFC 9725 §4.2). An
//! offer is POSTed as `application/sdp` with the meeting's bearer token; `201 Created` carries
//! the answer and, in `Location`, the session's URL (resolved against the POST URL, since
//! servers commonly answer with a relative path), which a DELETE ends.
//!
//! Hand-written over hyper's connection API (hyper is in the tree through axum; only its
//! `client` feature is added) with one connection per request: a link makes a handful of
//! requests an hour, so pooling, redirects and HTTP/2 buy nothing, and every step is bounded
//! by a timeout. `https` goes through rustls with the system's trust store, like SIP over TLS.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

/// Connecting, the TLS handshake and the whole request each take at most this long: a
/// meeting server that hangs is a failure to retry, not a link stuck forever.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (an answer is a few KiB; an error page is cut).
const MAX_BODY: usize = 64 * 1024;

/// Why a request to the meeting failed, for the link's log.
#[derive(Debug, thiserror::Error)]
pub enum LinkHttpError {
    /// The URL cannot be used (scheme, host).
    #[error("unusable URL {0}: {1}")]
    BadUrl(String, String),
    /// No TCP connection (refused, unreachable, name not resolved).
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    /// The exchange broke off or was malformed.
    #[error("HTTP exchange with {0} failed: {1}")]
    Exchange(String, String),
    /// A step took longer than allowed.
    #[error("{0} did not answer within {STEP_TIMEOUT:?}")]
    Timeout(String),
    /// The server refused the request.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// Its status.
        status: StatusCode,
        /// The start of its body (servers explain refusals there).
        body: String,
    },
    /// A 201 without the `Location` the RFC requires, or with an unusable one.
    #[error("{0} answered 201 without a usable Location")]
    NoLocation(String),
    /// A 201 whose body is not UTF-8.
    #[error("{0} answered 201 with a body that is not SDP text")]
    NotSdp(String),
}

/// A session the meeting accepted.
#[derive(Debug, Clone)]
pub struct PostedOffer {
    /// The SDP answer.
    pub answer: String,
    /// The session's URL, for the DELETE that ends it.
    pub session: Url,
}

/// POSTs `offer` to the WHIP or WHEP endpoint `endpoint` with `token`.
pub async fn post_offer(
    endpoint: &Url,
    token: Option<&str>,
    offer: &str,
) -> Result<PostedOffer, LinkHttpError> {
    let (status, headers, body) =
        exchange(Method::POST, endpoint, token, Some(offer.to_owned())).await?;
    if status != StatusCode::CREATED {
        return Err(LinkHttpError::Status {
            url: endpoint.to_string(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        });
    }
    let session = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| endpoint.join(location).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| LinkHttpError::NoLocation(endpoint.to_string()))?;
    let answer = String::from_utf8(body.to_vec())
        .map_err(|_| LinkHttpError::NotSdp(endpoint.to_string()))?;
    Ok(PostedOffer { answer, session })
}

/// DELETEs session `session` (RFC 9725 §4.3). A 404 counts as done: the meeting ended it
/// already (it restarted, say).
pub async fn delete_session(session: &Url, token: Option<&str>) -> Result<(), LinkHttpError> {
    let (status, _, body) = exchange(Method::DELETE, session, token, None).await?;
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Ok(());
    }
    Err(LinkHttpError::Status {
        url: session.to_string(),
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    })
}

/// Where `url` points: host (for SNI and `Host`), port, whether TLS.
fn target(url: &Url) -> Result<(String, u16, bool), LinkHttpError> {
    let bad = |why: &str| LinkHttpError::BadUrl(url.to_string(), why.to_owned());
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(bad("not http or https")),
    };
    let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    Ok((host, port, tls))
}

/// The first address `url`'s host resolves to, to pick the local address the link's media
/// uses towards the meeting.
pub async fn resolve(url: &Url) -> Result<std::net::SocketAddr, LinkHttpError> {
    let (host, port, _) = target(url)?;
    let host = host.trim_matches(|c| c == '[' || c == ']').to_owned();
    let mut addrs = tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| LinkHttpError::Timeout(url.to_string()))?
        .map_err(|err| LinkHttpError::Connect(url.to_string(), err.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| LinkHttpError::Connect(url.to_string(), "no address".to_owned()))
}

async fn exchange(
    method: Method,
    url: &Url,
    token: Option<&str>,
    sdp: Option<String>,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), LinkHttpError> {
    let (host, port, tls) = target(url)?;
    let name = url.to_string();
    let tcp = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| LinkHttpError::Timeout(name.clone()))?
        .map_err(|err| LinkHttpError::Connect(name.clone(), err.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let request = build_request(method, url, &host, port, token, sdp)?;
    let run = async {
        if tls {
            let profile = crate::tls::ClientProfile::new(&host, None)
                .map_err(|err| LinkHttpError::Tls(name.clone(), format!("{err:#}")))?;
            let stream = tokio_rustls::TlsConnector::from(profile.config)
                .connect(profile.server_name, tcp)
                .await
                .map_err(|err| LinkHttpError::Tls(name.clone(), err.to_string()))?;
            send(stream, request, &name).await
        } else {
            send(tcp, request, &name).await
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, run)
        .await
        .map_err(|_| LinkHttpError::Timeout(name.clone()))?
}

fn build_request(
    method: Method,
    url: &Url,
    host: &str,
    port: u16,
    token: Option<&str>,
    sdp: Option<String>,
) -> Result<Request<Full<Bytes>>, LinkHttpError> {
    // Origin form on the wire (RFC 9112 §3.2.1): path and query, Host separately.
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let host_header = match url.port() {
        Some(_) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, host_header)
        .header(header::USER_AGENT, "amtsleitung");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match sdp {
        Some(sdp) => {
            builder = builder
                .header(header::CONTENT_TYPE, "application/sdp")
                .header(header::ACCEPT, "application/sdp");
            Bytes::from(sdp)
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(body))
        .map_err(|err| LinkHttpError::BadUrl(url.to_string(), err.to_string()))
}

async fn send<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    name: &str,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), LinkHttpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let broke =
        |err: &dyn std::fmt::Display| LinkHttpError::Exchange(name.to_owned(), err.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| broke(&e))?;
    // The connection's I/O runs beside the request; it ends with the response (one request
    // per connection) or when the outer timeout drops both.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| broke(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| broke(&e))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-request HTTP server: returns what it read and answers `response`.
    async fn serve_once(response: &'static str) -> (Url, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and a body of Content-Length bytes.
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });
        (
            Url::parse(&format!("http://{addr}/whip/endpoint?room=1")).unwrap(),
            task,
        )
    }

    #[tokio::test]
    async fn posts_sdp_with_the_bearer_token_and_resolves_a_relative_location() {
        let (url, server) = serve_once(
            "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nLocation: ../sessions/abc\r\nContent-Length: 10\r\nConnection: close\r\n\r\nv=0\r\nx=1\r\n",
        )
        .await;
        let posted = post_offer(&url, Some("t0ken"), "v=0\r\n").await.unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /whip/endpoint?room=1 HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(
            lower.contains("authorization: bearer t0ken\r\n"),
            "{request}"
        );
        assert!(
            lower.contains("content-type: application/sdp\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\nv=0\r\n"), "{request}");
        assert_eq!(posted.answer, "v=0\r\nx=1\r\n");
        let origin = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        assert_eq!(
            posted.session.as_str(),
            format!("http://{origin}/sessions/abc")
        );
    }

    #[tokio::test]
    async fn a_refusal_is_an_error_with_status_and_reason() {
        let (url, _server) = serve_once(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\nConnection: close\r\n\r\nwrong token!!",
        )
        .await;
        let err = post_offer(&url, Some("bad"), "v=0\r\n").await.unwrap_err();
        assert!(
            matches!(&err, LinkHttpError::Status { status, body, .. } if *status == StatusCode::UNAUTHORIZED && body == "wrong token!!"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_201_without_location_is_refused() {
        let (url, _server) = serve_once(
            "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nConnection: close\r\n\r\nv=0\r\n",
        )
        .await;
        let err = post_offer(&url, None, "v=0\r\n").await.unwrap_err();
        assert!(matches!(err, LinkHttpError::NoLocation(_)), "{err:?}");
    }

    #[tokio::test]
    async fn delete_sends_the_token_and_takes_404_as_done() {
        let (url, server) =
            serve_once("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        delete_session(&url, Some("t")).await.unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("DELETE /whip/endpoint?room=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: bearer t\r\n")
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{addr}/whep")).unwrap();
        let err = post_offer(&url, None, "v=0\r\n").await.unwrap_err();
        assert!(matches!(err, LinkHttpError::Connect(..)), "{err:?}");
    }
}
