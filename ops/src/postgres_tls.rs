//! How `bbops` connects to Postgres: in clear for local clusters, over verified TLS whenever the
//! connection string asks for it. The seed's managed Postgres refuses plain connections, and a
//! migration must not send the migrator's password in clear.
//!
//! `sslmode=require`, `verify-ca` and `verify-full` all mean TLS with the server's certificate
//! verified (chain and host name) against the system's roots, plus the file named by
//! `sslrootcert=` when there is one. That is stricter than libpq's `require`, on purpose: an
//! unverified certificate protects nothing from whoever sits on the path. `disable`, `allow`,
//! `prefer` and no `sslmode` connect in clear, as libpq does when the server offers no TLS.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres::Config;

/// What the connection string asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Security {
    Plain,
    VerifiedTls { extra_root: Option<PathBuf> },
}

/// Splits a connection string into the driver's configuration and the transport it asks for.
/// URL form (`postgres://…?sslmode=…&sslrootcert=…`) or libpq's `key=value` form (where only
/// `sslmode=require` is understood by the driver).
pub fn parse(database_url: &str) -> Result<(Config, Security), String> {
    let redacted = crate::redact(database_url);
    if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        let config: Config = database_url.parse().map_err(|e| format!("{redacted}: {e}"))?;
        let security = match config.get_ssl_mode() {
            SslMode::Require => Security::VerifiedTls { extra_root: None },
            _ => Security::Plain,
        };
        return Ok((config, security));
    }
    let mut url = url::Url::parse(database_url).map_err(|e| format!("{redacted}: {e}"))?;
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = Some(value.into_owned()),
            "sslrootcert" => root = Some(PathBuf::from(value.as_ref())),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    let security = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => Security::Plain,
        Some("require" | "verify-ca" | "verify-full") => Security::VerifiedTls { extra_root: root },
        Some(other) => return Err(format!("{redacted}: unknown sslmode {other:?}")),
    };
    let mut config: Config = url.as_str().parse().map_err(|e| format!("{redacted}: {e}"))?;
    config.ssl_mode(match security {
        Security::Plain => SslMode::Disable,
        Security::VerifiedTls { .. } => SslMode::Require,
    });
    Ok((config, security))
}

/// The TLS connector: the system's roots and the extra root, with ring as the crypto provider.
pub fn connector(extra_root: Option<&std::path::Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped; a store with none still verifies against the
    // extra root, and with neither every certificate is refused (never accepted).
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_root {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_string_says_whether_tls_is_required() {
        let rows = [
            ("postgres://u@h/db", Ok(Security::Plain)),
            ("postgres://u@h/db?sslmode=disable", Ok(Security::Plain)),
            ("postgres://u@h/db?sslmode=prefer", Ok(Security::Plain)),
            (
                "postgres://u@h/db?sslmode=require",
                Ok(Security::VerifiedTls { extra_root: None }),
            ),
            (
                "postgresql://u:p@h:5432/db?application_name=x&sslmode=verify-full&sslrootcert=/ca.pem",
                Ok(Security::VerifiedTls {
                    extra_root: Some(PathBuf::from("/ca.pem")),
                }),
            ),
            (
                "host=h user=u sslmode=require",
                Ok(Security::VerifiedTls { extra_root: None }),
            ),
            ("host=h user=u", Ok(Security::Plain)),
            ("postgres://u@h/db?sslmode=sometimes", Err(())),
        ];
        for (url, expected) in rows {
            let got = parse(url).map(|(_, security)| security).map_err(|_| ());
            assert_eq!(got, expected, "{url}");
        }
    }

    #[test]
    fn the_driver_sees_the_other_parameters_and_a_tls_requirement() {
        let (config, _) = parse("postgres://u:p%40ss@h:6543/db?application_name=bbops&sslmode=verify-ca").unwrap(); // secretlint-disable-line -- a local test password
        assert_eq!(config.get_application_name(), Some("bbops"));
        assert_eq!(config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        let (plain, _) = parse("postgres://u@h/db?sslmode=prefer").unwrap();
        assert_eq!(plain.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn an_unknown_sslmode_is_refused_without_the_password() {
        let err = parse("postgres://u:secret-pw@h/db?sslmode=maybe").unwrap_err(); // secretlint-disable-line -- secret-scan: allow (a fake password the error must hide)
        assert!(err.contains("maybe") && !err.contains("secret-pw"), "{err}");
    }
}
