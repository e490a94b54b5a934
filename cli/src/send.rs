//! `send`: a built-in Video event, signed now with a fresh `jti`, POSTed to a URL, like
//! `stripe trigger`: exercise your own handlers end to end.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use vonage_secure_callbacks::test_util::CallbackSigner;

use crate::keys::KeyArgs;
use crate::Error;

macro_rules! sample {
    ($name:literal) => {
        ($name, include_str!(concat!("../samples/", $name, ".json")))
    };
}

/// The samples, from Vonage's documentation of each callback (the crate's test fixtures).
const EVENTS: &[(&str, &str)] = &[
    sample!("session_created"),
    sample!("session_destroyed"),
    sample!("connection_created"),
    sample!("connection_destroyed"),
    sample!("stream_created"),
    sample!("stream_destroyed"),
    sample!("archive_started"),
    sample!("archive_available"),
    sample!("archive_failed"),
    sample!("sip_call_created"),
    sample!("sip_call_destroyed"),
    sample!("render_started"),
    sample!("render_stopped"),
    sample!("broadcast_started"),
    sample!("broadcast_stopped"),
    sample!("captions_started"),
    sample!("captions_stopped"),
];

pub fn list() {
    for (name, _) in EVENTS {
        println!("{name}");
    }
}

pub fn run(event: &str, url: &str, key: &KeyArgs) -> Result<bool, Error> {
    let Some((_, body)) = EVENTS.iter().find(|(name, _)| *name == event) else {
        return Err(format!("no event {event:?}; `send --list` names them").into());
    };
    let uri: hyper::Uri = url.parse().map_err(|err| format!("{url}: {err}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("send speaks http:// only; for https, `sign --curl` prints a command".into());
    }
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let signer = CallbackSigner::new(key.api_key()?, key.signing_secret()?);
    let authorization = signer.authorization(body.as_bytes());
    let request = Request::post(&uri)
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, reply) = runtime.block_on(async {
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("{host}:{port}: no connection within 10 s"))?
        .map_err(|err| format!("{host}:{port}: {err}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Error>((status, body))
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
            .await
            .map_err(|_| Error::from("no answer within 30 s"))?
    })?;
    println!("sent {event} ({} bytes) to {url}", body.len());
    println!("{status}");
    println!("{}", String::from_utf8_lossy(&reply));
    Ok(status.is_success())
}
