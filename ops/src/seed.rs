//! The demo data `scripts/dev` loads: one family, a child, a dozen moments with previews and one
//! live share link. The demo token is fixed so the printed URL survives restarts; it is demo data
//! on a private local database, not a secret.

use sha2::{Digest, Sha256};

use babybook_edge::share::ShareToken;

use crate::generate::{create_family, FamilySpec};

pub const DEMO_EMAIL: &str = "demo@babybook.local";
pub const DEMO_PASSWORD: &str = "demo-password-2026";

fn demo_token_bytes() -> [u8; 16] {
    let digest = Sha256::digest(b"babybook-edge demo share link");
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes
}

pub fn demo_token() -> ShareToken {
    ShareToken::from_bytes(demo_token_bytes())
}

/// Creates the demo family unless it exists; prints the share URL and the login either way.
pub async fn demo(database_url: &str, base_url: Option<&str>) -> Result<(), String> {
    let mut client = crate::connect(database_url).await?;
    let exists = client
        .query_opt("SELECT 1 FROM app_user WHERE email = $1", &[&DEMO_EMAIL])
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if !exists {
        create_family(
            &mut client,
            &FamilySpec {
                account_name: "Família Demo".into(),
                email: DEMO_EMAIL.into(),
                password: DEMO_PASSWORD.into(),
                child_name: "Helena".into(),
                moments: 12,
                shares: 1,
                first_token: Some(demo_token_bytes()),
            },
        )
        .await?;
        println!("demo: created the demo family");
    } else {
        println!("demo: the demo family already exists");
    }
    let base = base_url.unwrap_or("http://localhost:8787");
    println!("demo share page: {base}/s/{}", demo_token().as_text());
    println!("demo login:      {DEMO_EMAIL} / {DEMO_PASSWORD}");
    Ok(())
}
