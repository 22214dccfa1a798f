//! Library side of `bbops`, shared with `edge-tests` (fixtures, generator, stand-ins).

pub mod generate;
pub mod migrate;
pub mod postgres_tls;
pub mod seed;
pub mod slo;
pub mod standin;
pub mod supply_chain;

/// Connects as the connection string asks (in clear, or over verified TLS: see `postgres_tls`)
/// and drives the connection on the runtime.
pub async fn connect(database_url: &str) -> Result<tokio_postgres::Client, String> {
    let (config, security) = postgres_tls::parse(database_url)?;
    let failed = |e: tokio_postgres::Error| format!("connect {}: {}", redact(database_url), with_causes(&e));
    let client = match security {
        postgres_tls::Security::Plain => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(failed)?;
            tokio::spawn(drive(connection));
            client
        }
        postgres_tls::Security::VerifiedTls { extra_root } => {
            let tls = postgres_tls::connector(extra_root.as_deref())?;
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(drive(connection));
            client
        }
    };
    Ok(client)
}

async fn drive<C: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: C) {
    // The connection ends with an error only when the server goes away; callers see it on their
    // next query.
    let _ = connection.await;
}

/// An error and its causes, one after another: the driver's own text is often just "db error".
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    message
}

/// A connection string without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
