//! Library side of `bbops`, shared with `edge-tests` (fixtures, generator, stand-ins).

pub mod generate;
pub mod migrate;
pub mod seed;
pub mod slo;
pub mod standin;
pub mod supply_chain;

/// Connects with a plain (local) connection string and drives the connection on the runtime.
pub async fn connect(database_url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect {}: {e}", redact(database_url)))?;
    tokio::spawn(async move {
        // The connection ends with an error only when the server goes away; callers see it on
        // their next query.
        let _ = connection.await;
    });
    Ok(client)
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
