//! Which request headers reach the upstream: end-to-end ones as received, hop-by-hop ones never
//! (RFC 9110 §7.6.1), any `X-Vonage-*` the client sent never (the proxy's own say what was
//! verified, so they must not be forgeable), and `Authorization` only when asked.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The prefix of the headers the proxy adds.
pub const PREFIX: &str = "x-vonage-";

/// Hop-by-hop headers, which describe one connection, not the request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The headers the proxy adds: built once, here, rather than parsed for every callback.
pub const VERIFIED: HeaderName = HeaderName::from_static("x-vonage-verified");
pub const JTI: HeaderName = HeaderName::from_static("x-vonage-jti");
pub const API_KEY: HeaderName = HeaderName::from_static("x-vonage-api-key");
pub const APPLICATION_ID: HeaderName = HeaderName::from_static("x-vonage-application-id");
pub const SECRET: HeaderName = HeaderName::from_static("x-vonage-secret");
pub const NONCE: HeaderName = HeaderName::from_static("x-vonage-nonce");

/// Removes what must not be forwarded from `headers`.
pub fn strip(headers: &mut HeaderMap, keep_authorization: bool) {
    // Headers the Connection header names are hop-by-hop too; a request rarely has one, so
    // the common case allocates nothing.
    let named: Vec<HeaderName> = if headers.contains_key(header::CONNECTION) {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
    let doomed = |name: &HeaderName| {
        is_hop_by_hop(name)
            || named.contains(name)
            || name.as_str().starts_with(PREFIX)
            || (!keep_authorization && *name == header::AUTHORIZATION)
    };
    // A pass over the names present for each one removed (a callback has one or two: its
    // `Authorization`, say), rather than a lookup of every name that might be there or a list
    // of them built. Only verified callbacks get here, and hyper bounds their headers.
    while let Some(name) = headers.keys().find(|name| doomed(name)).cloned() {
        headers.remove(name);
    }
}

/// Whether `name` is one of the headers that describe a connection, not a message.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Adds one verified fact as the header `name` (one of the `x-vonage-` names above); a value
/// that cannot be a header value is left out rather than mangled.
pub fn add(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_spoofed_and_authorization_are_removed() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-vonage-verified", "1"),
            ("X-Vonage-Jti", "forged"),
            ("authorization", "Bearer t"),
            ("content-type", "application/json"),
            ("x-request-id", "abc"),
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let mut kept = h.clone();
        strip(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-request-id"]);
        strip(&mut kept, true);
        assert!(kept.contains_key("authorization"));
        assert!(!kept.contains_key("x-vonage-jti"));
    }
}
