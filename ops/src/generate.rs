//! Families of test and benchmark data: an account, a user who can sign in, a child, moments with
//! ready previews, and live share links whose tokens are returned (only their hashes are stored).
//!
//! Writes through a direct, privileged connection (it is setup, not the app), so RLS is bypassed
//! on purpose; everything it creates is what the app itself would have created.

use serde::Serialize;
use tokio_postgres::Client;

use babybook_edge::password::{hash_password, DEFAULT_ITERATIONS};
use babybook_edge::share::ShareToken;

/// What to create for one family.
#[derive(Debug, Clone)]
pub struct FamilySpec {
    pub account_name: String,
    pub email: String,
    pub password: String,
    pub child_name: String,
    pub moments: u32,
    pub shares: u32,
    /// Fixed token bytes for the first share (the demo's stable URL); random otherwise.
    pub first_token: Option<[u8; 16]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Family {
    pub account_id: String,
    pub user_id: String,
    pub email: String,
    pub password: String,
    pub child_id: String,
    pub moment_ids: Vec<String>,
    pub asset_ids: Vec<String>,
    pub shares: Vec<Share>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Share {
    pub id: String,
    pub token: String,
    pub token_hash_hex: String,
}

const TITLES: [&str; 12] = [
    "Primeiro sorriso",
    "Banho de sol",
    "Visita da vovó",
    "Primeira papinha",
    "Engatinhando",
    "Primeiro dentinho",
    "Passeio no parque",
    "Dormindo no colo",
    "Primeiras palavras",
    "Aniversário de um ano",
    "Primeiros passos",
    "Praia!",
];

fn salt() -> [u8; 16] {
    babybook_edge::secure_random::bytes().expect("OS randomness")
}

/// Creates one family in one transaction.
pub async fn create_family(client: &mut Client, spec: &FamilySpec) -> Result<Family, String> {
    let err = |e: tokio_postgres::Error| format!("create family {}: {e}", spec.email);
    let tx = client.transaction().await.map_err(err)?;
    let account_id: String = tx
        .query_one(
            "INSERT INTO account (name, plan) VALUES ($1, 'plus') RETURNING id::text",
            &[&spec.account_name],
        )
        .await
        .map_err(err)?
        .get(0);
    let password_hash = hash_password(&spec.password, &salt(), DEFAULT_ITERATIONS);
    let user_id: String = tx
        .query_one(
            "INSERT INTO app_user (account_id, email, password_hash, display_name) VALUES ($1::text::uuid, $2, $3, $4) RETURNING id::text",
            &[&account_id, &spec.email, &password_hash, &spec.account_name],
        )
        .await
        .map_err(err)?
        .get(0);
    let child_id: String = tx
        .query_one(
            "INSERT INTO child (account_id, name, birth_date) VALUES ($1::text::uuid, $2, date '2025-01-10') RETURNING id::text",
            &[&account_id, &spec.child_name],
        )
        .await
        .map_err(err)?
        .get(0);
    let mut moment_ids = Vec::new();
    let mut asset_ids = Vec::new();
    for i in 0..spec.moments {
        let title = TITLES[i as usize % TITLES.len()];
        let body = format!(
            "{title}: um dia para lembrar.\n\nEscrito pela família para a {}.",
            spec.child_name
        );
        let row = tx
            .query_one(
                "WITH m AS (
                   INSERT INTO moment (account_id, child_id, title, occurred_on, body, visibility)
                   VALUES ($1::text::uuid, $2::text::uuid, $3, date '2025-01-10' + ($4::int * 21), $5, 'shareable') RETURNING id, account_id)
                 INSERT INTO asset (account_id, moment_id, media_type, original_key, size_bytes, etag, width, height, alt_text, derivatives, status, ready_at)
                 SELECT m.account_id, m.id, 'image/jpeg', 'originals/' || m.account_id || '/' || gen_random_uuid() || '.jpg', 2400000, 'etag-' || m.id,
                        1600, 1200, $3, '[]'::jsonb, 'ready', now()
                 FROM m RETURNING moment_id::text, id::text",
                &[&account_id, &child_id, &title, &(i as i32), &body],
            )
            .await
            .map_err(err)?;
        let (moment_id, asset_id): (String, String) = (row.get(0), row.get(1));
        tx.execute(
            "UPDATE asset SET derivatives = jsonb_build_array(
               jsonb_build_object('key', 'derived/' || account_id || '/' || id || '/480.webp', 'width', 480),
               jsonb_build_object('key', 'derived/' || account_id || '/' || id || '/960.webp', 'width', 960),
               jsonb_build_object('key', 'derived/' || account_id || '/' || id || '/og.png', 'width', 1200, 'height', 630, 'purpose', 'og'))
             WHERE id = $1::text::uuid",
            &[&asset_id],
        )
        .await
        .map_err(err)?;
        moment_ids.push(moment_id);
        asset_ids.push(asset_id);
    }
    let mut shares = Vec::new();
    for s in 0..spec.shares {
        if moment_ids.is_empty() {
            break;
        }
        let token = match (s, spec.first_token) {
            (0, Some(bytes)) => ShareToken::from_bytes(bytes),
            _ => ShareToken::from_bytes(salt()),
        };
        let hash = token.hash();
        let id: String = tx
            .query_one(
                "INSERT INTO share_link (account_id, child_id, token_hash, title, moment_ids)
                 VALUES ($1::text::uuid, $2::text::uuid, $3, $4, $5::text[]::uuid[]) RETURNING id::text",
                &[
                    &account_id,
                    &child_id,
                    &hash.0.to_vec(),
                    &format!("O primeiro ano da {}", spec.child_name),
                    &moment_ids,
                ],
            )
            .await
            .map_err(err)?
            .get(0);
        shares.push(Share {
            id,
            token: token.as_text(),
            token_hash_hex: hash.to_hex(),
        });
    }
    // Nothing of a new family is cached anywhere: the purges its seeding noted are moot.
    tx.execute(
        "UPDATE account SET purge_pending_since = NULL WHERE id = $1::text::uuid",
        &[&account_id],
    )
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(Family {
        account_id,
        user_id,
        email: spec.email.clone(),
        password: spec.password.clone(),
        child_id,
        moment_ids,
        asset_ids,
        shares,
    })
}

/// How much the generator makes.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub accounts: u32,
    pub moments: u32,
    pub shares: u32,
}

/// N accounts with M moments and K share links each. Emails are unique per run.
pub async fn run(database_url: &str, spec: Spec) -> Result<Vec<Family>, String> {
    let mut client = crate::connect(database_url).await?;
    let run = babybook_edge::secure_random::new_id()
        .map_err(|e| e.to_string())?
        .to_string();
    let mut families = Vec::new();
    for i in 0..spec.accounts {
        let family = create_family(
            &mut client,
            &FamilySpec {
                account_name: format!("Família {i}"),
                email: format!("gen-{}-{i}@example.test", &run[..8]),
                password: format!("gen-password-{i}"),
                child_name: format!("Criança {i}"),
                moments: spec.moments,
                shares: spec.shares,
                first_token: None,
            },
        )
        .await?;
        families.push(family);
    }
    Ok(families)
}
