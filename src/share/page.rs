//! The share page: its data (what the database's `public_share_page` returns, and nothing else
//! of the account) and its rendering with askama. Zero JavaScript, one stylesheet from `'self'`.

use std::sync::OnceLock;

use askama::Template;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::lang::Lang;

/// What a live share link shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SharePage {
    pub child_name: String,
    #[serde(default)]
    pub title: Option<String>,
    /// When the link stops being live (epoch ms); a cached copy is not served past it.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    pub moments: Vec<Moment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Moment {
    pub title: String,
    /// `YYYY-MM-DD`.
    pub occurred_on: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub media: Vec<Media>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub alt: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Derived previews (never originals), any order; at least one.
    pub previews: Vec<Preview>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Preview {
    /// Object key under the media origin, e.g. `derived/<account>/<asset>/960.webp`.
    pub key: String,
    pub width: u32,
}

impl SharePage {
    pub fn from_json(text: &str) -> Result<SharePage, serde_json::Error> {
        let mut page: SharePage = serde_json::from_str(text)?;
        page.moments.sort_by(|a, b| a.occurred_on.cmp(&b.occurred_on));
        for moment in &mut page.moments {
            moment
                .media
                .retain(|m| !m.previews.is_empty() && m.width > 0 && m.height > 0);
            for media in &mut moment.media {
                media.previews.sort_by_key(|p| p.width);
            }
        }
        Ok(page)
    }
}

/// Words of the page in each language.
struct Words {
    site: &'static str,
    shared_moments: &'static str,
    no_moments: &'static str,
    photo_of: &'static str,
    private_note: &'static str,
    not_found_title: &'static str,
    not_found_body: &'static str,
    unavailable_title: &'static str,
    unavailable_body: &'static str,
    rate_limited_title: &'static str,
    rate_limited_body: &'static str,
}

fn words(lang: Lang) -> &'static Words {
    static PT: Words = Words {
        site: "Baby Book",
        shared_moments: "momentos compartilhados",
        no_moments: "Nenhum momento foi compartilhado ainda.",
        photo_of: "Foto de",
        private_note: "Página privada compartilhada por link. Não indexada por buscadores.",
        not_found_title: "Link não encontrado",
        not_found_body: "Este link de compartilhamento não existe, expirou ou foi revogado pela família.",
        unavailable_title: "Página temporariamente indisponível",
        unavailable_body: "Não conseguimos carregar esta página agora. Tente novamente em alguns instantes.",
        rate_limited_title: "Muitas visitas em pouco tempo",
        rate_limited_body: "Recebemos muitas requisições do seu endereço. Aguarde alguns segundos e recarregue.",
    };
    static EN: Words = Words {
        site: "Baby Book",
        shared_moments: "shared moments",
        no_moments: "No moments have been shared yet.",
        photo_of: "Photo of",
        private_note: "Private page shared by link. Not indexed by search engines.",
        not_found_title: "Link not found",
        not_found_body: "This share link does not exist, has expired or was revoked by the family.",
        unavailable_title: "Page temporarily unavailable",
        unavailable_body: "We could not load this page right now. Please try again in a moment.",
        rate_limited_title: "Too many visits in a short time",
        rate_limited_body: "We received too many requests from your address. Wait a few seconds and reload.",
    };
    match lang {
        Lang::PtBr => &PT,
        Lang::En => &EN,
    }
}

const MONTHS_PT: [&str; 12] = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `2025-05-12` → "12 de maio de 2025" / "May 12, 2025"; anything else is shown as it is.
pub fn format_date(iso: &str, lang: Lang) -> String {
    let mut parts = iso.splitn(3, '-');
    let parsed = (|| {
        let y: u32 = parts.next()?.parse().ok()?;
        let m: usize = parts.next()?.parse().ok()?;
        let d: u32 = parts.next()?.parse().ok()?;
        (1..=12).contains(&m).then_some((y, m, d))
    })();
    match (parsed, lang) {
        (Some((y, m, d)), Lang::PtBr) => format!("{d} de {} de {y}", MONTHS_PT[m - 1]),
        (Some((y, m, d)), Lang::En) => format!("{} {d}, {y}", MONTHS_EN[m - 1]),
        (None, _) => iso.to_owned(),
    }
}

/// The stylesheet, served from `'self'` so the CSP needs no `'unsafe-inline'`.
pub const STYLESHEET: &str = include_str!("../../templates/share.css");

/// `/_static/share.<fingerprint>.css`: a new file name whenever the stylesheet changes, so it can
/// be cached as immutable.
pub fn stylesheet_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let digest = Sha256::digest(STYLESHEET.as_bytes());
        let hex = crate::hex::encode(&digest[..6]);
        format!("/_static/share.{hex}.css")
    })
}

struct ImageView {
    src: String,
    srcset: String,
    sizes: &'static str,
    width: u32,
    height: u32,
    alt: String,
}

struct MomentView {
    title: String,
    date_iso: String,
    date_text: String,
    paragraphs: Vec<String>,
    images: Vec<ImageView>,
}

#[derive(Template)]
#[template(path = "share.html")]
struct ShareTemplate {
    lang: &'static str,
    og_locale: &'static str,
    words: &'static Words,
    stylesheet: &'static str,
    page_title: String,
    heading: String,
    description: String,
    og_image: Option<String>,
    moments: Vec<MomentView>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessageTemplate {
    lang: &'static str,
    words: &'static Words,
    stylesheet: &'static str,
    title: &'static str,
    body: &'static str,
}

fn media_url(media_origin: &str, key: &str) -> String {
    // Keys come from our own database; still, keep them path-shaped so a bad row cannot make
    // the page point anywhere but the media origin.
    let key: String = key
        .trim_start_matches('/')
        .chars()
        .filter(|c| !c.is_control() && *c != ' ')
        .collect();
    format!("{media_origin}/{key}")
}

/// Renders the share page. Deterministic: the same page and language give the same bytes, so
/// prewarmed and on-demand renders (and their ETags) are identical.
pub fn render_share_page(page: &SharePage, lang: Lang, media_origin: &str) -> String {
    let w = words(lang);
    let moments: Vec<MomentView> = page
        .moments
        .iter()
        .map(|m| MomentView {
            title: m.title.clone(),
            date_iso: m.occurred_on.clone(),
            date_text: format_date(&m.occurred_on, lang),
            paragraphs: m
                .body
                .as_deref()
                .unwrap_or("")
                .split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            images: m
                .media
                .iter()
                .map(|media| {
                    let largest = media.previews.last().map(|p| p.key.as_str()).unwrap_or("");
                    let fallback = media.previews.iter().find(|p| p.width >= 640).or(media.previews.last());
                    ImageView {
                        src: media_url(media_origin, fallback.map(|p| p.key.as_str()).unwrap_or(largest)),
                        srcset: media
                            .previews
                            .iter()
                            .map(|p| format!("{} {}w", media_url(media_origin, &p.key), p.width))
                            .collect::<Vec<_>>()
                            .join(", "),
                        sizes: "(max-width: 720px) 100vw, 720px",
                        width: media.width,
                        height: media.height,
                        alt: media
                            .alt
                            .clone()
                            .filter(|a| !a.trim().is_empty())
                            .unwrap_or_else(|| format!("{} {}", w.photo_of, page.child_name)),
                    }
                })
                .collect(),
        })
        .collect();
    let og_image = moments
        .iter()
        .flat_map(|m| m.images.first())
        .next()
        .map(|img| img.src.clone());
    let heading = page
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| page.child_name.clone());
    let description = format!("{} {} · {}", moments.len(), w.shared_moments, page.child_name);
    let template = ShareTemplate {
        lang: lang.tag(),
        og_locale: lang.og_locale(),
        words: w,
        stylesheet: stylesheet_path(),
        page_title: format!("{heading} · {}", w.site),
        heading,
        description,
        og_image,
        moments,
    };
    // Rendering into a String only fails if a Display impl fails; ours cannot.
    template.render().unwrap_or_default()
}

/// Which message page to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagePage {
    NotFound,
    Unavailable,
    RateLimited,
}

/// The not-found, unavailable and rate-limited pages. The not-found page is one page for
/// malformed, unknown, expired and revoked tokens alike: nothing in it tells them apart. They
/// depend only on the language, so each is rendered once per process.
pub fn render_message_page(which: MessagePage, lang: Lang) -> &'static str {
    static PAGES: OnceLock<Vec<((MessagePage, Lang), String)>> = OnceLock::new();
    let pages = PAGES.get_or_init(|| {
        let mut pages = Vec::new();
        for which in [
            MessagePage::NotFound,
            MessagePage::Unavailable,
            MessagePage::RateLimited,
        ] {
            for lang in Lang::ALL {
                pages.push(((which, lang), render_message(which, lang)));
            }
        }
        pages
    });
    pages
        .iter()
        .find(|(key, _)| *key == (which, lang))
        .map(|(_, page)| page.as_str())
        .unwrap_or("")
}

fn render_message(which: MessagePage, lang: Lang) -> String {
    let w = words(lang);
    let (title, body) = match which {
        MessagePage::NotFound => (w.not_found_title, w.not_found_body),
        MessagePage::Unavailable => (w.unavailable_title, w.unavailable_body),
        MessagePage::RateLimited => (w.rate_limited_title, w.rate_limited_body),
    };
    MessageTemplate {
        lang: lang.tag(),
        words: w,
        stylesheet: stylesheet_path(),
        title,
        body,
    }
    .render()
    .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_page(moments: usize) -> SharePage {
        let moments = (0..moments)
            .map(|i| {
                format!(
                    r#"{{"title":"Momento {i} <b>","occurred_on":"2025-{:02}-{:02}","body":"Primeiro parágrafo {i}.\n\nSegundo & último.",
                       "media":[{{"alt":"","width":1600,"height":1200,"previews":[
                         {{"key":"derived/acc/asset{i}/960.webp","width":960}},{{"key":"derived/acc/asset{i}/480.webp","width":480}}]}}]}}"#,
                    i % 12 + 1,
                    i % 28 + 1
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        SharePage::from_json(&format!(r#"{{"child_name":"Helena","moments":[{moments}]}}"#)).unwrap()
    }

    #[test]
    fn the_page_shows_moments_in_date_order_with_previews_and_og_tags() {
        let page = SharePage::from_json(
            r#"{"child_name":"Helena","moments":[
                {"title":"Segundo","occurred_on":"2025-06-01","media":[]},
                {"title":"Primeiro","occurred_on":"2025-05-12","body":"Oi","media":[{"width":800,"height":600,"alt":"Sorriso","previews":[{"key":"derived/a/b/960.webp","width":960},{"key":"derived/a/b/480.webp","width":480}]}]}]}"#,
        )
        .unwrap();
        let html = render_share_page(&page, Lang::PtBr, "https://media.babybook.com");
        let first = html.find("Primeiro").unwrap();
        let second = html.find("Segundo").unwrap();
        assert!(first < second, "moments out of date order");
        assert!(html.contains("12 de maio de 2025"));
        assert!(html.contains(r#"<html lang="pt-BR">"#));
        assert!(html.contains(r#"srcset="https://media.babybook.com/derived/a/b/480.webp 480w, https://media.babybook.com/derived/a/b/960.webp 960w""#));
        assert!(
            html.contains(r#"loading="lazy""#) && html.contains(r#"width="800""#) && html.contains(r#"height="600""#)
        );
        assert!(html.contains(r#"alt="Sorriso""#));
        assert!(
            html.contains(r#"<meta property="og:image" content="https://media.babybook.com/derived/a/b/960.webp">"#)
        );
        assert!(html.contains(r#"<meta name="twitter:card" content="summary_large_image">"#));
        assert!(html.contains(r#"<meta name="robots" content="noindex">"#));
        assert!(!html.contains("<script"));
        assert!(!html.contains("style="), "inline styles would break the CSP");
    }

    #[test]
    fn english_is_rendered_when_negotiated() {
        let html = render_share_page(&sample_page(1), Lang::En, "https://media.babybook.com");
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains("January 1, 2025"));
        assert!(html.contains("shared moments"));
    }

    #[test]
    fn user_text_is_escaped() {
        let page = SharePage::from_json(r#"{"child_name":"<script>alert(1)</script>","moments":[{"title":"\"><img src=x>","occurred_on":"2025-01-01"}]}"#).unwrap();
        let html = render_share_page(&page, Lang::PtBr, "https://media.babybook.com");
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img src=x>"));
    }

    #[test]
    fn rendering_is_deterministic() {
        let page = sample_page(5);
        assert_eq!(
            render_share_page(&page, Lang::PtBr, "https://m"),
            render_share_page(&page, Lang::PtBr, "https://m")
        );
    }

    #[test]
    fn media_keys_cannot_leave_the_media_origin() {
        assert_eq!(
            media_url("https://media.babybook.com", "/derived/a b\n.webp"),
            "https://media.babybook.com/derived/ab.webp"
        );
    }

    #[test]
    fn message_pages_say_nothing_about_why() {
        let html = render_message_page(MessagePage::NotFound, Lang::PtBr);
        assert!(html.contains("Link não encontrado"));
        assert!(html.contains(r#"<meta name="robots" content="noindex">"#));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn dates_fall_back_to_their_text_when_malformed() {
        assert_eq!(format_date("2025-13-01", Lang::En), "2025-13-01");
        assert_eq!(format_date("soon", Lang::PtBr), "soon");
    }
}
