//! `stack dev`: the local stack for a developer (used by `scripts/dev`): Postgres + PgBouncer with
//! migrations and demo data, the media stand-in on :8790, the alert webhook and purge API
//! stand-ins, and `wrangler dev` on :8787. Prints the
//! URLs and runs until Ctrl-C, then stops everything it started.

use std::time::Duration;

use edge_tests::{Stack, StackOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("dev") => dev(),
        _ => {
            eprintln!("usage: stack dev");
            std::process::exit(2);
        }
    }
}

fn dev() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8787);
    let media_port: u16 = std::env::var("MEDIA_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8790);
    let mut options = StackOptions::named("dev");
    options.port = Some(port);
    options.media_port = Some(media_port);
    options.test_controls = false;
    options.dev_vars = true;
    options.alert_webhook = true;
    // Revocations purge by cache tag through the purge API stand-in, as in production.
    options.purge_api = true;
    options.vars.push(("VIEW_FLUSH_SECONDS".into(), "30".into()));
    // Every success is logged locally; a CPU profile (bench/cpu-profile.mjs) wants production's rate.
    if let Ok(rate) = std::env::var("LOG_SAMPLE_SUCCESS") {
        options.vars.push(("LOG_SAMPLE_SUCCESS".into(), rate));
    }
    eprintln!("starting Postgres, PgBouncer, the media stand-in and wrangler dev …");
    let stack = Stack::start(options);
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        stack_db_port(&stack),
        stack.db_name
    );
    edge_tests::standins::runtime()
        .block_on(babybook_ops::seed::demo(&url, Some(&stack.base_url)))
        .expect("demo data");
    println!();
    println!("  edge worker        {}", stack.base_url);
    println!("  health / ready     {0}/health  {0}/ready", stack.base_url);
    println!(
        "  demo share page    {}/s/{}",
        stack.base_url,
        babybook_ops::seed::demo_token().as_text()
    );
    println!("  media stand-in     {}", stack.media.lock().expect("media").url());
    println!("  admin token        ADMIN_TOKENS=dev:<token> in .dev.vars (scripts/redrive and scripts/switch --env local read ADMIN_TOKEN and ADMIN_REASON)");
    if let Some((purge, _)) = &stack.purge_api {
        println!(
            "  purges received    {0}/__control/requests (the Cloudflare purge API stand-in; {0}/__control/cached models other data centers)",
            purge.lock().expect("purge").url()
        );
    }
    if let Some((webhook, _)) = &stack.webhook {
        println!(
            "  alerts received    {}/__control/requests (the webhook stand-in)",
            webhook.lock().expect("webhook").url()
        );
    }
    println!("  database           {url}");
    println!("  worker logs        {}", stack.dir.join("wrangler.log").display());
    println!();
    println!("  Ctrl-C stops everything.");
    let (tx, rx) = std::sync::mpsc::channel();
    edge_tests::standins::runtime().spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(());
    });
    loop {
        if rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            break;
        }
        if !stack.alive() {
            eprintln!("wrangler dev exited:\n{}", stack.log_tail(30));
            break;
        }
    }
    eprintln!("stopping …");
    stack.stop();
}

fn stack_db_port(stack: &Stack) -> u16 {
    let mut db = stack.db();
    let port: String = db.query_one("SHOW port", &[]).expect("port").get(0);
    port.parse().expect("port")
}
