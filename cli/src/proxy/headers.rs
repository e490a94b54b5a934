//! Which request headers reach the upstream: end-to-end ones as received; hop-by-hop ones never
//! (RFC 9110 §7.6.1); any `X-Vonage-*` the client sent never (the proxy's own say what was
//! verified, so they must not be forgeable); no name with an underscore (CGI-style servers read
//! `X_Vonage_Jti` and `X-Vonage-Jti` as one `HTTP_X_VONAGE_JTI`, so an underscore spelling would
//! forge a fact or a framing header; nginx drops them by default for the same reason); and
//! `Authorization` only when asked.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName};

/// The prefix of the headers the proxy adds.
pub const PREFIX: &str = "x-vonage-";

/// Hop-by-hop headers, which describe one connection, not the request; and `Expect`, which the
/// proxy has already answered by reading the body.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// The headers the proxy adds.
pub const VERIFIED: HeaderName = HeaderName::from_static("x-vonage-verified");
pub const JTI: HeaderName = HeaderName::from_static("x-vonage-jti");
pub const API_KEY: HeaderName = HeaderName::from_static("x-vonage-api-key");
pub const APPLICATION_ID: HeaderName = HeaderName::from_static("x-vonage-application-id");
pub const SECRET: HeaderName = HeaderName::from_static("x-vonage-secret");
pub const NONCE: HeaderName = HeaderName::from_static("x-vonage-nonce");

/// What was verified, as the headers the upstream gets. They are written straight into the
/// request's head rather than put in its header map: no map entry is made for each one.
#[derive(Default)]
pub struct Facts<'a> {
    /// The callback's id: `(JTI, jti)` or `(NONCE, nonce)`.
    pub id: Option<(HeaderName, &'a str)>,
    pub api_key: Option<&'a str>,
    pub application_id: Option<&'a str>,
    /// Which secret verified it: its label, else its position.
    pub secret: Option<Cow<'a, str>>,
}

impl Facts<'_> {
    /// Appends each fact to `head` as a header line; one whose value cannot be a header value
    /// (a line break in a claim, say) is left out rather than mangled.
    pub fn write_into(&self, head: &mut Vec<u8>) {
        let fields = [
            Some((VERIFIED, "1")),
            self.id.clone(),
            self.api_key.map(|value| (API_KEY, value)),
            self.application_id.map(|value| (APPLICATION_ID, value)),
            self.secret.as_deref().map(|value| (SECRET, value)),
        ];
        for (name, value) in fields.into_iter().flatten() {
            if value.bytes().all(is_value_byte) {
                head.extend_from_slice(name.as_str().as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// What `HeaderValue::from_str` accepts: visible characters, spaces and tabs.
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

/// Removes what must not be forwarded from `headers`.
pub fn strip(headers: &mut HeaderMap, keep_authorization: bool) {
    let named = connection_named(headers);
    remove_where(headers, |name| {
        is_hop_by_hop(name)
            || named.contains(name)
            || name.as_str().starts_with(PREFIX)
            || name.as_str().contains('_')
            || (!keep_authorization && *name == header::AUTHORIZATION)
    });
}

/// The headers a `Connection` header names: hop-by-hop too.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// Removes every header `doomed` names: a pass over the names present for each one removed (a
/// callback has one or two: its `Authorization`, say), so that nothing is allocated. hyper
/// bounds how many headers a request has.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    while let Some(name) = headers.keys().find(|name| doomed(name)).cloned() {
        headers.remove(name);
    }
}

/// Whether `name` is one of the headers that describe a connection, not a message.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn hop_by_hop_spoofed_and_authorization_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("expect", "100-continue"),
            ("x-vonage-verified", "1"),
            ("X-Vonage-Jti", "forged"),
            ("authorization", "Bearer t"),
            ("content-type", "application/json"),
            ("x-request-id", "abc"),
        ]);
        let mut kept = h.clone();
        strip(&mut h, false);
        assert_eq!(names(&h), ["content-type", "x-request-id"]);
        strip(&mut kept, true);
        assert!(kept.contains_key("authorization"));
        assert!(!kept.contains_key("x-vonage-jti"));
    }

    #[test]
    fn every_underscore_spelling_is_dropped() {
        let mut h = map(&[
            ("x_vonage_application_id", "forged-app"),
            ("X_Vonage_Jti", "forged-jti"),
            ("x-vonage_verified", "forged"),
            ("transfer_encoding", "chunked"),
            ("content_length", "0"),
            ("_", "x"),
            ("content-type", "application/json"),
        ]);
        strip(&mut h, true);
        assert_eq!(names(&h), ["content-type"]);
    }

    #[test]
    fn facts_are_header_lines_and_one_that_could_break_the_head_is_left_out() {
        let facts = Facts {
            id: Some((JTI, "jti-1")),
            api_key: Some("key\r\nx-vonage-verified: forged"),
            application_id: None,
            secret: Some(Cow::Borrowed("current")),
        };
        let mut head = Vec::new();
        facts.write_into(&mut head);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "x-vonage-verified: 1\r\nx-vonage-jti: jti-1\r\nx-vonage-secret: current\r\n"
        );
        // What is kept is what a header value may hold, as http's own check has it.
        for value in ["a b\tc", "caf\u{e9}", "\u{7f}", "a\nb", "\0"] {
            assert_eq!(
                value.bytes().all(is_value_byte),
                http::HeaderValue::from_str(value).is_ok(),
                "{value:?}"
            );
        }
    }
}
