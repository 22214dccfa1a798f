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

/// The largest page a share can render: 200 moments (the most a link holds) of 20,000-character
/// texts that HTML escaping makes five bytes a character, 200-character titles, four photos each
/// with 32 previews of 150-character keys and 2,000-character alt texts.
pub fn largest_page() -> SharePage {
    let key = format!("derived/{}", "k".repeat(140));
    let previews: Vec<String> = (1..=32)
        .map(|w| format!(r#"{{"key":"{key}{w}","width":{}}}"#, w * 100))
        .collect();
    let media = format!(
        r#"{{"alt":"{}","width":1600,"height":1200,"previews":[{}]}}"#,
        "\\\"".repeat(2000),
        previews.join(",")
    );
    let moments: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"title":"{}","occurred_on":"2025-01-{:02}","body":"{}","media":[{media},{media},{media},{media}]}}"#,
                "'".repeat(200),
                i % 28 + 1,
                "\\\"&".repeat(10_000)
            )
        })
        .collect();
    SharePage::from_json(&format!(
        r#"{{"child_name":"Helena","title":"O primeiro ano","moments":[{}]}}"#,
        moments.join(",")
    ))
    .expect("valid page JSON")
}
