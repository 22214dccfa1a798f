//! `cargo bench -p babybook-micro-bench`: rendering, ETag, session verification, rate-limit math.
//! Host-target numbers are a proxy for the Worker's CPU time per request (the free plan allows
//! 10 ms); scripts/bench records them next to the HTTP measurements.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use babybook_edge::lang::Lang;
use babybook_edge::rate_limit::{self, FixedWindow, SHARE};
use babybook_edge::session::{Session, SessionKeys, SigningKey};
use babybook_edge::share::headers::{if_none_match_matches, weak_etag};
use babybook_edge::share::page::{render_share_page, render_share_view};
use babybook_edge::share::view::View;
use babybook_edge::share::ShareToken;
use babybook_jobs::Id;

fn rendering(c: &mut Criterion) {
    let page = babybook_micro_bench::page(50);
    c.bench_function("render_share_page_50_moments", |b| {
        b.iter(|| render_share_page(black_box(&page), Lang::PtBr, "https://media.babybook.com"))
    });
    // The budget of issue 16: the largest page any share can render, under 1 ms.
    let largest = babybook_micro_bench::largest_page();
    c.bench_function("render_largest_allowed_page", |b| {
        b.iter(|| {
            render_share_view(
                black_box(&largest),
                Lang::PtBr,
                "https://media.babybook.com",
                View::List(1),
            )
        })
    });
    c.bench_function("render_a_20000_character_moment_in_full", |b| {
        b.iter(|| {
            render_share_view(
                black_box(&largest),
                Lang::PtBr,
                "https://media.babybook.com",
                View::Moment(1),
            )
        })
    });
    let html = render_share_page(&page, Lang::PtBr, "https://media.babybook.com");
    c.bench_function("weak_etag_of_the_50_moment_page", |b| {
        b.iter(|| weak_etag(black_box(html.as_bytes())))
    });
    let etag = weak_etag(html.as_bytes());
    c.bench_function("if_none_match_list_of_3", |b| {
        b.iter(|| if_none_match_matches(black_box("W/\"a\", W/\"b\", W/\"c\""), black_box(&etag)))
    });
    c.bench_function("share_token_parse_and_hash", |b| {
        let text = ShareToken::from_bytes([7; 16]).as_text();
        b.iter(|| ShareToken::parse(black_box(&text)).map(|t| t.hash()))
    });
}

fn sessions(c: &mut Criterion) {
    let keys = SessionKeys {
        current: SigningKey::new("bench-session-key-0123456789abcdef0123456789"),
        previous: None,
    };
    let cookie = Session::new(
        "sid".into(),
        Id::from_random_bytes([1; 16]),
        Id::from_random_bytes([2; 16]),
        1_800_000_000,
    )
    .seal(&keys);
    c.bench_function("session_cookie_verify", |b| {
        b.iter(|| Session::open(black_box(&cookie), &keys, 1_800_000_100))
    });
}

fn rate_math(c: &mut Criterion) {
    c.bench_function("rate_limit_key_and_retry_after", |b| {
        b.iter(|| {
            (
                rate_limit::key(&SHARE, black_box("203.0.113.9")),
                rate_limit::retry_after_seconds(&SHARE, black_box(1_800_000_123_456)),
            )
        })
    });
    c.bench_function("fixed_window_admit", |b| {
        let mut window = FixedWindow::new(&SHARE);
        let mut t = 0i64;
        b.iter(|| {
            t += 3;
            window.admit(black_box(t))
        })
    });
}

criterion_group!(benches, rendering, sessions, rate_math);
criterion_main!(benches);
