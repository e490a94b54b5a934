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

/// Removes what must not be forwarded from `headers`.
pub fn strip(headers: &mut HeaderMap, keep_authorization: bool) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    if !keep_authorization {
        headers.remove(header::AUTHORIZATION);
    }
}

/// Adds one verified fact as the header `name` (an `x-vonage-` name); a value that cannot be a
/// header value is left out rather than mangled.
pub fn add(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
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
