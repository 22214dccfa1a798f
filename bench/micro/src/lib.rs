//! Inputs for the micro-benchmarks, shared so `scripts/bench` and the benches agree on them.

use babybook_edge::share::page::SharePage;

/// A share page with `moments` moments, each with one image of two previews.
pub fn page(moments: usize) -> SharePage {
    let items: Vec<String> = (0..moments)
        .map(|i| {
            format!(
                r#"{{"title":"Momento {i}","occurred_on":"2025-{:02}-{:02}","body":"Um parágrafo sobre o dia {i}.\n\nE outro, com mais detalhes.",
                   "media":[{{"alt":"Foto {i}","width":1600,"height":1200,"previews":[
                     {{"key":"derived/acc/asset{i}/480.webp","width":480}},{{"key":"derived/acc/asset{i}/960.webp","width":960}}]}}]}}"#,
                i % 12 + 1,
                i % 28 + 1
            )
        })
        .collect();
    SharePage::from_json(&format!(
        r#"{{"child_name":"Helena","title":"O primeiro ano","moments":[{}]}}"#,
        items.join(",")
    ))
    .expect("valid page JSON")
}

/// The largest page a share can render: the core's own fixture, the one its unit tests hold to
/// the 256 KiB bound.
pub fn largest_page() -> SharePage {
    SharePage::from_json(&babybook_edge::share::page::largest_share_json()).expect("valid page JSON")
}
