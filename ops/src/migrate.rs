//! Applies `migrations/` with refinery: each file once, in version order, in its own transaction,
//! recorded in `refinery_schema_history`. Applying again is a no-op; a file changed after it was
//! applied is an error (refinery compares checksums), which is what CI's migration check relies on.

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Runs pending migrations; prints what it applied.
pub async fn run(database_url: &str) -> Result<(), String> {
    let mut client = crate::connect(database_url).await?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(&mut client)
        .await
        .map_err(|e| {
            let mut message = format!("migration failed: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(inner) = cause {
                message.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            message
        })?;
    let applied = report.applied_migrations();
    if applied.is_empty() {
        println!("migrations: up to date");
    }
    for m in applied {
        println!("migrations: applied V{}__{}", m.version(), m.name());
    }
    Ok(())
}
