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
        .map_err(|e| format!("migration failed: {}", crate::with_causes(&e)))?;
    let applied = report.applied_migrations();
    if applied.is_empty() {
        println!("migrations: up to date");
    }
    for m in applied {
        println!("migrations: applied V{}__{}", m.version(), m.name());
    }
    Ok(())
}
