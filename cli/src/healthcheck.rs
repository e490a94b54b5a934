//! `healthcheck`: asks a running proxy's admin listener whether it is healthy (`/healthz`: up,
//! and its replay store answers) and says so by its exit status, for container health checks
//! and service managers that have no shell or curl to ask with.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::Error;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Exit status 0 when `admin` answers `/healthz` with 200 within the timeout, 1 otherwise; what
/// it saw goes to stderr.
pub fn run(admin: SocketAddr) -> Result<bool, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, ask(admin))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
    });
    match outcome {
        Ok(200) => Ok(true),
        Ok(status) => {
            eprintln!("unhealthy: http://{admin}/healthz answered {status}");
            Ok(false)
        }
        Err(why) => {
            eprintln!("unhealthy: http://{admin}/healthz: {why}");
            Ok(false)
        }
    }
}

/// The status `/healthz` answers.
async fn ask(admin: SocketAddr) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(admin)
        .await
        .map_err(|err| err.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| err.to_string())?;
    tokio::spawn(connection);
    let request = Request::get("/healthz")
        .header(hyper::header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|err| err.to_string())?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|err| err.to_string())?;
    let status = answer.status().as_u16();
    // Read to its end, so the admin listener sees a whole exchange.
    let _ = answer.into_body().collect().await;
    Ok(status)
}
