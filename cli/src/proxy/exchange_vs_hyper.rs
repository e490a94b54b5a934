//! The hand-made exchange beside hyper's HTTP/1 client, on the same answers: thousands of them
//! built from the shapes upstreams send and the ones smuggling plays on (lengths and chunks
//! together, codings, signs and lists in a length, bare line feeds, folded lines, interim
//! answers, trailers). Whatever the exchange accepts, hyper must read the same way: the same
//! status, the same body bytes, and every header the exchange keeps with the same values. The
//! exchange may refuse more than hyper does (it is strict by design), never read differently.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exchange::Connection;

/// The answers' body limit: larger than any body built here.
const LIMIT: usize = 4096;

/// A small deterministic generator (xorshift), so that a failure names a case to replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }
}

/// One answer: a status line, headers and a body, framed correctly or not.
fn answer(rng: &mut Rng) -> Vec<u8> {
    let eol = if rng.below(8) == 0 { "\n" } else { "\r\n" };
    let body: Vec<u8> = (0..rng.below(40)).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = Vec::new();
    if rng.below(6) == 0 {
        out.extend_from_slice(format!("HTTP/1.1 100 Continue{eol}{eol}").as_bytes());
    }
    let version = rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "http/1.1"]);
    let status = rng.pick(&[
        "200", "200", "201", "204", "304", "404", "503", "999", "99", "2OO",
    ]);
    let reason = rng.pick(&["OK", "", "Some Reason"]);
    out.extend_from_slice(format!("{version} {status} {reason}{eol}").as_bytes());
    let chunked = rng.below(3) == 0;
    let length = body.len().to_string();
    let wrong = (body.len() + 1).to_string();
    let mut fields: Vec<(String, String)> = Vec::new();
    // Half the answers are plain ones, the other half get odd fields.
    let odd = if rng.below(2) == 0 {
        0
    } else {
        1 + rng.below(5)
    };
    for _ in 0..odd {
        let (name, value) = match rng.below(12) {
            0 => ("Content-Length", length.clone()),
            1 => (
                "Content-Length",
                rng.pick(&["+5", "5, 5", " 5 ", "-1", "0x5", ""]).into(),
            ),
            2 => ("Content-Length", wrong.clone()),
            3 => (
                "Transfer-Encoding",
                rng.pick(&[
                    "chunked",
                    "gzip",
                    "chunked, chunked",
                    "Chunked",
                    "gzip, chunked",
                ])
                .into(),
            ),
            4 => (
                "Connection",
                rng.pick(&["close", "keep-alive, x-hop", "Close"]).into(),
            ),
            5 => ("X-Hop", "1".into()),
            6 => ("Bad Name", "x".into()),
            7 => ("X-Folded", format!("a{eol} b")),
            8 => ("Content-Type", "text/plain".into()),
            9 => ("X-Upstream", "python".into()),
            10 => ("Keep-Alive", "timeout=5".into()),
            _ => ("X-Empty", String::new()),
        };
        fields.push((name.into(), value));
    }
    if chunked {
        fields.push(("Transfer-Encoding".into(), "chunked".into()));
    } else if rng.below(4) != 0 {
        fields.push(("Content-Length".into(), length));
    }
    for (name, value) in &fields {
        out.extend_from_slice(format!("{name}: {value}{eol}").as_bytes());
    }
    out.extend_from_slice(eol.as_bytes());
    if chunked {
        for chunk in body.chunks(7) {
            let extension = if rng.below(5) == 0 { ";ext=1" } else { "" };
            let size = match rng.below(12) {
                0 => format!("{:X}", chunk.len() + 1),
                _ => format!("{:x}", chunk.len()),
            };
            out.extend_from_slice(format!("{size}{extension}\r\n").as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        if rng.below(4) == 0 {
            out.extend_from_slice(b"X-Trailer: t\r\n");
        }
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&body);
    }
    out
}

/// How one reader read an answer: status, headers and body, or nothing.
type Read = Option<(u16, HeaderMap, Bytes)>;

/// An upstream that reads the request (its head and its two-byte body), writes `answer` and
/// closes.
async fn upstream(mut stream: tokio::io::DuplexStream, answer: Vec<u8>) {
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n\r\n{}") {
        let mut byte = [0; 1];
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        seen.push(byte[0]);
    }
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

/// The hand-made exchange's reading of `bytes`, written by an upstream that then closes.
async fn by_exchange(bytes: Vec<u8>) -> Read {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(upstream(theirs, bytes));
    let (answer, _) = Connection::over(ours).post_probe(LIMIT).await.ok()?;
    let (parts, body) = answer.into_parts();
    Some((parts.status.as_u16(), parts.headers, body))
}

/// hyper's client reading of `bytes`, written by an upstream that then closes.
async fn by_hyper(bytes: Vec<u8>) -> Read {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(upstream(theirs, bytes));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
        .await
        .ok()?;
    tokio::spawn(connection);
    let request = Request::post("/cb")
        .header("host", "up")
        .body(Full::new(Bytes::from_static(b"{}")))
        .ok()?;
    let answer = sender.send_request(request).await.ok()?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some((parts.status.as_u16(), parts.headers, body))
}

#[tokio::test]
async fn whatever_the_exchange_accepts_hyper_reads_the_same_way() {
    const CASES: usize = 4000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused_by_both, mut stricter) = (0, 0, 0);
    for case in 0..CASES {
        let bytes = answer(&mut rng);
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        let bound = Duration::from_secs(10);
        let ours = tokio::time::timeout(bound, by_exchange(bytes.clone()))
            .await
            .expect("answered");
        let hypers = tokio::time::timeout(bound, by_hyper(bytes))
            .await
            .expect("answered");
        match (ours, hypers) {
            (Some((status, headers, body)), Some((h_status, h_headers, h_body))) => {
                accepted += 1;
                assert_eq!(
                    (status, &body),
                    (h_status, &h_body),
                    "case {case}: {shown:?}"
                );
                for name in headers.keys() {
                    let ours: Vec<_> = headers.get_all(name).iter().collect();
                    let theirs: Vec<_> = h_headers.get_all(name).iter().collect();
                    assert_eq!(ours, theirs, "case {case}, {name}: {shown:?}");
                }
            }
            (Some(_), None) => panic!("case {case}: accepted, but hyper refuses it: {shown:?}"),
            (None, Some(_)) => stricter += 1,
            (None, None) => refused_by_both += 1,
        }
    }
    eprintln!(
        "{CASES} answers: {accepted} read alike, {refused_by_both} refused by both, \
         {stricter} refused only by the exchange"
    );
    // The cases reach both sides of each reader.
    assert!(
        accepted > CASES / 5 && refused_by_both > CASES / 10,
        "{accepted} {refused_by_both}"
    );
}
