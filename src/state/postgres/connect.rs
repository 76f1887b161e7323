//! Opening a connection to the PostgreSQL backend: the URL (a secret) read
//! by the driver, TLS as `sslmode` asks, TCP keepalives so that a peer that
//! vanished is noticed in seconds, and errors scrubbed of the URL.
//!
//! The driver does not know libpq's `verify-ca` and `verify-full`: cairn
//! takes `sslmode` and `sslrootcert` out of the URL and sets up OpenSSL
//! itself (the CA file, or the system's roots; the host name checked for
//! `verify-full`), asking the driver only to require TLS.

use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::Client;
use postgres_openssl::MakeTlsConnector;

use crate::model::state_settings::{PgSettings, SslMode, scrub, split_tls_params};

/// How long a connection attempt may take before it is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Client-side keepalives: a server that vanished (a cut network) is
/// noticed after about idle + interval × retries = 5 + 2 × 3 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;

/// Opens a connection named `cairn <purpose>` (as `pg_stat_activity`
/// shows it). Errors say what failed, never the URL or its password.
pub(super) fn open(settings: &PgSettings, purpose: &str) -> Result<Client, String> {
    let url = settings.url.expose();
    let (driver_url, _, _) = split_tls_params(url);
    let mut config: postgres::Config = driver_url
        .parse()
        .map_err(|e: postgres::Error| scrub(&e.to_string(), url))?;
    config
        .application_name(&format!("cairn {purpose}"))
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES);
    let result: Result<Client, postgres::Error> = match settings.sslmode {
        SslMode::Disable => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(postgres::NoTls)
        }
        mode => {
            config.ssl_mode(if mode == SslMode::Prefer {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            });
            let tls = tls_connector(settings).map_err(|e| scrub(&e, url))?;
            config.connect(tls)
        }
    };
    let mut client = result.map_err(|e| describe(&e, url))?;
    // The server's side of noticing a vanished client: checked every second
    // while a query runs (PostgreSQL 14 and later), and probed by its own
    // keepalives when idle over TCP — so a killed cairn's lock, or its
    // open transaction, is let go within seconds. Neither is essential: an
    // older server, or a Unix socket, that refuses them is no reason to stop.
    for setting in [
        "SET client_connection_check_interval = '1s'",
        "SET tcp_keepalives_idle = 5",
        "SET tcp_keepalives_interval = 2",
        "SET tcp_keepalives_count = 3",
    ] {
        let _ = client.batch_execute(setting);
    }
    Ok(client)
}

/// The TLS set-up `sslmode` asks for.
fn tls_connector(settings: &PgSettings) -> Result<MakeTlsConnector, String> {
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("TLS: {e}"))?;
    let verify = matches!(settings.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    if verify {
        builder.set_verify(SslVerifyMode::PEER);
        match &settings.ca_file {
            Some(ca) => builder
                .set_ca_file(ca)
                .map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?,
            None => builder
                .set_default_verify_paths()
                .map_err(|e| format!("TLS: cannot read the system's CAs: {e}"))?,
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    let check_name = settings.sslmode == SslMode::VerifyFull;
    connector.set_callback(move |config, _| {
        config.set_verify_hostname(check_name);
        if !verify {
            config.set_verify(SslVerifyMode::NONE);
        }
        Ok(())
    });
    Ok(connector)
}

/// A driver error, as the operator reads it: the server's message (and its
/// hint) when it sent one, else the driver's, with the cause chain; the URL
/// and its password scrubbed out.
pub(super) fn describe(error: &postgres::Error, url: &str) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(hint) = db.hint() {
            text = format!("{text} (hint: {hint})");
        }
        return scrub(&text, url);
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = cause_of(source);
    }
    scrub(&text, url)
}

fn cause_of<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}
