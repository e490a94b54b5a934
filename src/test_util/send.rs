//! Sending an attack over a real connection, its answer read while its body is still being
//! written. A server that refuses a body by its declared length answers before reading it and
//! closes with the rest unread, which resets the connection; an HTTP client that reads only
//! once it has written everything can then get the reset, from its write, instead of the
//! answer the server did send. Reading beside the writing sees the answer first.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::attacks::Attack;

/// How long a connection, a write or a read may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer read.
const ANSWER_LIMIT: usize = 1 << 20;

impl Attack {
    /// Sends this attack to `origin` (`http://127.0.0.1:8080`) on a connection of its own, and
    /// returns the answer's status and body, to [`check`](Self::check).
    ///
    /// The connection is closed after the answer (`Connection: close`), and the answer must
    /// have a `Content-Length` (every answer of this crate's layer does).
    pub fn send(&self, origin: &str) -> io::Result<(StatusCode, Bytes)> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
        let host = origin
            .strip_prefix("http://")
            .ok_or_else(|| invalid("the origin must be http://host:port"))?;
        let request = self.request(origin);
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\n",
            request.method(),
            request.uri().path_and_query().map_or("/", |p| p.as_str())
        )
        .into_bytes();
        for (name, value) in request.headers() {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                request.body().len()
            )
            .as_bytes(),
        );
        // One write of head and body: two would wait on Nagle's algorithm for the first's ACK.
        let mut bytes = head;
        bytes.extend_from_slice(request.body());
        let stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let writing = std::thread::spawn(move || {
            // A write cut short by the server's close is the case this sender is for.
            let _ = writer.write_all(&bytes);
        });
        let answer = read_answer(stream);
        let _ = writing.join();
        parse(&answer?).ok_or_else(|| invalid("not an HTTP answer with a Content-Length"))
    }
}

/// Everything the server sent until it closed; a reset after some of it is its close.
fn read_answer(mut stream: TcpStream) -> io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) if answer.len() + n <= ANSWER_LIMIT => answer.extend_from_slice(&buf[..n]),
            Ok(_) => return Err(io::Error::other("an answer over 1 MiB")),
            Err(err) if !answer.is_empty() && err.kind() == io::ErrorKind::ConnectionReset => {
                return Ok(answer)
            }
            Err(err) => return Err(err),
        }
    }
}

/// The status and the body (`Content-Length` bytes) of an HTTP/1.1 answer.
fn parse(answer: &[u8]) -> Option<(StatusCode, Bytes)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    let body = answer.get(end + 4..end + 4 + length)?;
    Some((status, Bytes::copy_from_slice(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_its_status_and_its_declared_body() {
        let answer = b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n\
            Content-Length: 5\r\n\r\nhello and more";
        let (status, body) = parse(answer).unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body.as_ref(), b"hello");
        // Cut short, or without a length: not an answer.
        assert!(parse(&answer[..answer.len() - 12]).is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\n\r\nhello").is_none());
    }
}
