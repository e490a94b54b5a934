//! Drives accepted 2 KiB callbacks through `SecureCallbackService` in-process (the default
//! configuration: the process-wide in-memory replay store), for a profiler. The requests are
//! signed first; only `drive` is the layer's work, so count just that:
//!
//! ```text
//! cargo build --release --example layer_profile
//! valgrind --tool=callgrind --toggle-collect='layer_profile::drive*' \
//!     target/release/examples/layer_profile 20000
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! It drives a body-reading service the same way (`read`), so that what the layer adds is the
//! difference of the two. Every future is ready at once and polled once: no runtime is counted.

use std::hint::black_box;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use tower::{Layer, Service};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{Secret, Secrets, SecureCallbackLayer};

const API_KEY: &str = "a1b2c3d4";
const SECRET: &str = "profile-signature-secret-profile-0000001";

use vonage_callbacks_bench::ready::{now, Ok200};

#[inline(never)]
fn drive_layer<S>(service: &mut S, requests: Vec<Request<Full<Bytes>>>)
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<vonage_secure_callbacks::ResponseBody<Empty<Bytes>>>,
    >,
    S::Error: std::fmt::Debug,
{
    for request in requests {
        let response = now(service.call(request)).unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[inline(never)]
fn drive_read(requests: Vec<Request<Full<Bytes>>>) {
    for request in requests {
        let body = now(request.into_body().collect()).unwrap().to_bytes();
        black_box(body);
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let body = Bytes::from(vec![b'x'; 2048]);
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let requests = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| {
                Request::post("/vonage/session")
                    .header("authorization", signer.authorization(&body))
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .unwrap()
            })
            .collect()
    };
    let layer =
        SecureCallbackLayer::new(Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap()));
    let mut service = layer.layer(Ok200);
    let (for_layer, for_read) = (requests(n), requests(n));
    drive_layer(&mut service, for_layer);
    drive_read(for_read);
    println!("drove {n} callbacks through the layer and {n} body reads");
}
