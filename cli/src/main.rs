//! `vonage-callbacks`: sign a callback, explain why one was refused, or send a signed Video
//! event to your own server. Secrets come from the environment or a file, never from the
//! command line (where shell history and `ps` would keep them).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod healthcheck;
mod keys;
mod proxy;
mod report;
mod send;
mod sign;
mod sms;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sign, verify and send Vonage signed callbacks.
///
/// Secrets: VONAGE_SIGNATURE_SECRET (and VONAGE_SIGNATURE_SECRET_PREVIOUS while rotating) with
/// VONAGE_API_KEY, or --secret-file with --api-key.
#[derive(Parser)]
#[command(name = "vonage-callbacks", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign a body: print the Authorization token, or a ready curl command.
    Sign {
        /// The body file; `-` or nothing reads standard input.
        #[arg(long, default_value = "-")]
        body: PathBuf,
        /// Print a curl command that POSTs the body to this URL instead of the bare token.
        #[arg(long, value_name = "URL")]
        curl: Option<String>,
        /// Issue time (Unix seconds); now by default.
        #[arg(long)]
        iat: Option<u64>,
        #[command(flatten)]
        key: keys::KeyArgs,
    },
    /// Run every check on a callback and print what passed and what failed, with the facts
    /// that point to the cause. Exit status 0 when the layer would accept it, 1 when not.
    Verify {
        /// The token, `Bearer <token>`, or the whole `Authorization: Bearer <token>` line;
        /// `-` reads it from standard input.
        token: String,
        /// The body file, exactly as received.
        #[arg(long)]
        body: PathBuf,
        /// Check as of this time (Unix seconds), e.g. that of a captured callback; now by
        /// default.
        #[arg(long)]
        now: Option<u64>,
        #[command(flatten)]
        key: keys::KeyArgs,
    },
    /// Run every check on a signed SMS request (inbound message or delivery receipt) and print
    /// what passed and what failed. Exit status 0 when the layer would accept it, 1 when not.
    VerifySms {
        /// The account's signature method: md5hash, md5, sha1, sha256 or sha512.
        #[arg(long)]
        method: vonage_secure_callbacks::sms::SignatureMethod,
        #[command(flatten)]
        request: sms::Request,
        /// Check as of this time (Unix seconds); now by default.
        #[arg(long)]
        now: Option<u64>,
        #[command(flatten)]
        key: keys::KeyArgs,
    },
    /// Sign SMS parameters (a `timestamp` of now is added where there is none): print them with
    /// their `sig` as a query string, or a curl command that GETs a URL with them.
    SignSms {
        /// The signature method: md5hash, md5, sha1, sha256 or sha512.
        #[arg(long)]
        method: vonage_secure_callbacks::sms::SignatureMethod,
        /// The parameters, as a query string: `msisdn=447700900001&to=447700900000&text=Hi`.
        #[arg(long)]
        query: String,
        /// Print a curl command that GETs this URL with the signed parameters.
        #[arg(long, value_name = "URL")]
        curl: Option<String>,
        #[command(flatten)]
        key: keys::KeyArgs,
    },
    /// Run a verifying proxy in front of an app in any language: verified callbacks are
    /// forwarded to the upstream, byte for byte, with X-Vonage-* headers saying what was
    /// verified; the upstream's 2xx marks them delivered.
    Proxy(Box<proxy::ProxyArgs>),
    /// Ask a running proxy's admin listener for /healthz: exit status 0 when it answers 200
    /// within 3 s (up, and its replay store answers), 1 otherwise. For container health checks.
    Healthcheck {
        /// The proxy's admin listener.
        #[arg(
            long,
            env = "VONAGE_PROXY_ADMIN_LISTEN",
            hide_env_values = true,
            default_value = "127.0.0.1:9090"
        )]
        admin: std::net::SocketAddr,
    },
    /// Send a signed Video event from the built-in samples to a URL (http://).
    Send {
        /// The event: one of `vonage-callbacks send --list`.
        #[arg(required_unless_present = "list")]
        event: Option<String>,
        /// Where to POST it, e.g. http://127.0.0.1:3000/vonage/session.
        #[arg(required_unless_present = "list")]
        url: Option<String>,
        /// List the events and exit.
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        key: keys::KeyArgs,
    },
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Sign {
            body,
            curl,
            iat,
            key,
        } => sign::run(&body, curl.as_deref(), iat, &key),
        Command::Verify {
            token,
            body,
            now,
            key,
        } => verify::run(&token, &body, now, &key),
        Command::VerifySms {
            method,
            request,
            now,
            key,
        } => sms::verify(method, &request, now, &key),
        Command::SignSms {
            method,
            query,
            curl,
            key,
        } => sms::sign(method, &query, curl.as_deref(), &key),
        Command::Proxy(args) => proxy::run(*args),
        Command::Healthcheck { admin } => healthcheck::run(admin),
        Command::Send { list: true, .. } => {
            send::list();
            Ok(true)
        }
        Command::Send {
            event, url, key, ..
        } => send::run(
            event.as_deref().unwrap_or_default(),
            url.as_deref().unwrap_or_default(),
            &key,
        ),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// What a command could not do, said in a sentence.
type Error = Box<dyn std::error::Error>;

/// Reads `path`, or standard input for `-`.
fn read_input(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()).into())
    }
}
