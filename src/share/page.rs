//! The share page: its data (what the database's `public_share_page` returns, and nothing else
//! of the account) and its rendering with askama. Zero JavaScript; the stylesheet is inline (`share::style`).

use std::sync::OnceLock;

use askama::Template;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::lang::Lang;
use crate::share::view::{page_count, page_of_moment, View, MOMENTS_PER_PAGE};

/// What a live share link shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SharePage {
    /// The account the link belongs to: its pages carry the account's cache tag.
    #[serde(default)]
    pub account_id: Option<babybook_jobs::Id>,
    /// The version of the rows the page was read from (`share_page_fence` in the database): a
    /// cache write is kept only if the fence is still the same once it is written.
    #[serde(default)]
    pub fence: Option<String>,
    pub child_name: String,
    #[serde(default)]
    pub title: Option<String>,
    /// When the link stops being live (epoch ms); a cached copy is not served past it.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    pub moments: Vec<Moment>,
    /// The link preview: the first moment's image that has an `og` derivative.
    #[serde(skip)]
    pub og_image: Option<OgImage>,
    /// A digest of everything the link shows: a page rendered from other data has another one.
    #[serde(skip)]
    pub generation: String,
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
    /// Set on the link-preview derivative (`"og"`, job contract), with its `height`.
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub height: Option<u32>,
}

/// The `og:image` of a share: a JPEG or PNG derivative made for link previews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OgImage {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub mime: &'static str,
    pub alt: Option<String>,
}

/// Longest object key shown on a page; the media worker's keys are about 90 characters.
const MAX_KEY_CHARS: usize = 160;

impl SharePage {
    pub fn from_json(text: &str) -> Result<SharePage, serde_json::Error> {
        let mut page: SharePage = serde_json::from_str(text)?;
        let digest = Sha256::digest(text.as_bytes());
        page.generation = crate::hex::encode(&digest[..8]);
        page.moments.sort_by(|a, b| a.occurred_on.cmp(&b.occurred_on));
        let account = page.account_id;
        for moment in &mut page.moments {
            for media in &mut moment.media {
                // Only derivatives of this link's own account, as plain keys: never an original,
                // another family's photo or a key that climbs out of its folder.
                media
                    .previews
                    .retain(|p| p.width > 0 && p.key.len() <= MAX_KEY_CHARS && shown_key(&p.key, account.as_ref()));
                if page.og_image.is_none() {
                    page.og_image = media.previews.iter().find_map(|p| og_image(p, media.alt.as_deref()));
                }
                media.previews.retain(|p| p.purpose.is_none());
                media.previews.sort_by_key(|p| p.width);
            }
            moment
                .media
                .retain(|m| !m.previews.is_empty() && m.width > 0 && m.height > 0);
        }
        Ok(page)
    }
}

fn og_image(preview: &Preview, alt: Option<&str>) -> Option<OgImage> {
    if preview.purpose.as_deref() != Some(OG_PURPOSE) {
        return None;
    }
    let lower = preview.key.to_ascii_lowercase();
    let mime = if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        "image/jpeg"
    } else {
        return None;
    };
    Some(OgImage {
        key: preview.key.clone(),
        width: preview.width,
        height: preview.height.filter(|h| *h > 0)?,
        mime,
        alt: alt.map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned),
    })
}

pub use babybook_jobs::lifecycle::OG_PURPOSE;

/// Words of the page in each language.
struct Words {
    site: &'static str,
    shared_moments: &'static str,
    shared_moment: &'static str,
    no_moments: &'static str,
    photo_of: &'static str,
    private_note: &'static str,
    not_found_title: &'static str,
    not_found_body: &'static str,
    unavailable_title: &'static str,
    unavailable_body: &'static str,
    rate_limited_title: &'static str,
    rate_limited_body: &'static str,
    og_default_alt: &'static str,
    page: &'static str,
    of: &'static str,
    pages_label: &'static str,
    previous: &'static str,
    next: &'static str,
    continue_reading: &'static str,
    more_photos: &'static str,
    back_to_page: &'static str,
    pass_title: &'static str,
    pass_intro: &'static str,
    pass_label: &'static str,
    pass_submit: &'static str,
    pass_wrong: &'static str,
    pass_form_expired: &'static str,
    pass_throttled: &'static str,
}

fn words(lang: Lang) -> &'static Words {
    static PT: Words = Words {
        site: "Baby Book",
        shared_moments: "momentos compartilhados",
        shared_moment: "momento compartilhado",
        no_moments: "Nenhum momento foi compartilhado ainda.",
        photo_of: "Foto de",
        private_note: "Página privada compartilhada por link. Não indexada por buscadores.",
        not_found_title: "Link não encontrado",
        not_found_body: "Este link de compartilhamento não existe, expirou ou foi revogado pela família.",
        unavailable_title: "Página temporariamente indisponível",
        unavailable_body: "Não conseguimos carregar esta página agora. Tente novamente em alguns instantes.",
        rate_limited_title: "Muitas visitas em pouco tempo",
        rate_limited_body: "Recebemos muitas requisições do seu endereço. Aguarde alguns segundos e recarregue.",
        og_default_alt: "Baby Book: um livro aberto com um coração, o álbum de momentos da família",
        page: "Página",
        of: "de",
        pages_label: "Páginas de momentos",
        previous: "Página anterior",
        next: "Próxima página",
        continue_reading: "Continuar lendo",
        more_photos: "Ver todas as fotos",
        back_to_page: "Voltar para a página",
        pass_title: "Página protegida",
        pass_intro: "A família protegeu este link com uma senha. Digite a senha que ela enviou para você.",
        pass_label: "Senha do link",
        pass_submit: "Abrir a página",
        pass_wrong: "Senha incorreta. Confira com quem enviou o link e tente de novo.",
        pass_form_expired: "O formulário expirou. Digite a senha de novo.",
        pass_throttled: "Muitas tentativas em pouco tempo. Aguarde um minuto e tente de novo.",
    };
    static EN: Words = Words {
        site: "Baby Book",
        shared_moments: "shared moments",
        shared_moment: "shared moment",
        no_moments: "No moments have been shared yet.",
        photo_of: "Photo of",
        private_note: "Private page shared by link. Not indexed by search engines.",
        not_found_title: "Link not found",
        not_found_body: "This share link does not exist, has expired or was revoked by the family.",
        unavailable_title: "Page temporarily unavailable",
        unavailable_body: "We could not load this page right now. Please try again in a moment.",
        rate_limited_title: "Too many visits in a short time",
        rate_limited_body: "We received too many requests from your address. Wait a few seconds and reload.",
        og_default_alt: "Baby Book: an open book with a heart, the family's album of moments",
        page: "Page",
        of: "of",
        pages_label: "Pages of moments",
        previous: "Previous page",
        next: "Next page",
        continue_reading: "Continue reading",
        more_photos: "See all photos",
        back_to_page: "Back to page",
        pass_title: "Protected page",
        pass_intro: "The family protected this link with a passphrase. Type the passphrase they sent you.",
        pass_label: "Link passphrase",
        pass_submit: "Open the page",
        pass_wrong: "Wrong passphrase. Check with whoever sent you the link and try again.",
        pass_form_expired: "The form expired. Type the passphrase again.",
        pass_throttled: "Too many tries in a short time. Wait a minute and try again.",
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

/// The branded link preview of a share with no image: 1200x630, served from `'self'`.
pub const OG_DEFAULT_PNG: &[u8] = include_bytes!("../../templates/og-default.png");
pub const OG_DEFAULT_SIZE: (u32, u32) = (1200, 630);

/// `/_static/og.<fingerprint>.png`: a new file name whenever the image changes, so it can be
/// cached as immutable.
pub fn og_default_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let digest = Sha256::digest(OG_DEFAULT_PNG);
        format!("/_static/og.{}.png", crate::hex::encode(&digest[..6]))
    })
}

/// Whether `file` (under `/_static/`) names the branded preview under some fingerprint: `og.`,
/// 12 lowercase hex digits, `.png` (the shape of [`og_default_path`]).
pub fn is_og_default_file(file: &str) -> bool {
    file.strip_prefix("og.")
        .and_then(|rest| rest.strip_suffix(".png"))
        .is_some_and(|hex| hex.len() == 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Stands, in a rendered page, for `scheme://host/s/<token>[?view]` of the request: the cache keeps
/// pages by token hash and never holds a token, so the share URL goes in when a page is served
/// ([`with_share_url`]). Escaped user text cannot contain `<`, so only our tags hold it.
pub const SHARE_URL_MARKER: &str = "<share-url>";
/// Stands for `scheme://host` of the request (the branded image's absolute URL).
pub const SHARE_ORIGIN_MARKER: &str = "<share-origin>";

/// A rendered page with the request's share URL and origin put in (in the `<head>` only).
pub fn with_share_url(body: &[u8], origin: &str, share_url: &str) -> Vec<u8> {
    let head_end = find(body, b"</head>").unwrap_or(0);
    let (head, rest) = body.split_at(head_end);
    let mut out = Vec::with_capacity(body.len() + 2 * share_url.len());
    let mut head = head;
    while let Some(at) = find(head, b"<share-") {
        out.extend_from_slice(&head[..at]);
        let tail = &head[at..];
        if tail.starts_with(SHARE_URL_MARKER.as_bytes()) {
            out.extend_from_slice(share_url.as_bytes());
            head = &tail[SHARE_URL_MARKER.len()..];
        } else if tail.starts_with(SHARE_ORIGIN_MARKER.as_bytes()) {
            out.extend_from_slice(origin.as_bytes());
            head = &tail[SHARE_ORIGIN_MARKER.len()..];
        } else {
            out.push(b'<');
            head = &tail[1..];
        }
    }
    out.extend_from_slice(head);
    out.extend_from_slice(rest);
    out
}

/// Where `needle` (not empty) first starts in `haystack`: a scan for its first byte, then a
/// compare (every hit looks for `</head>` past the inline stylesheet; comparing a window at every
/// byte was 3.5 % of a hit's CPU in a profile).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = haystack[from..].iter().position(|&b| b == first) {
        if haystack[from + at..].starts_with(needle) {
            return Some(from + at);
        }
        from += at + 1;
    }
    None
}

/// The most bytes of HTML a share page answer has, whatever the share holds (SPEC §9).
pub const MAX_PAGE_BYTES: usize = 256 * 1024;
/// The most a render may take: the rest is room for the share URL and origin put in when served
/// (a request target and a host are far shorter; `hygiene` bounds both).
pub const RENDER_BUDGET_BYTES: usize = MAX_PAGE_BYTES - 2 * 1024;

/// What one rendering shows of each moment. [`Limits::LIST`] fits 24 moments of the largest
/// allowed content under [`MAX_PAGE_BYTES`]; [`Limits::TIGHT`] is the fallback that fits
/// whatever the media origin and keys are (tested at the limits below).
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A text is shortened to this many [`shorten`] units (with "continue reading").
    text_bytes: usize,
    /// Titles and alt texts likewise (plain titles, at most 200 characters, are never cut).
    title_units: usize,
    alt_units: usize,
    images: usize,
    srcset_entries: usize,
}

impl Limits {
    const LIST: Limits = Limits {
        text_bytes: 2_000,
        title_units: 400,
        alt_units: 250,
        images: 3,
        srcset_entries: 3,
    };
    const TIGHT: Limits = Limits {
        text_bytes: 600,
        title_units: 200,
        alt_units: 100,
        images: 1,
        srcset_entries: 2,
    };
    /// One moment in full: 20,000 characters escape to at most 120 KB.
    const MOMENT: Limits = Limits {
        text_bytes: usize::MAX,
        title_units: usize::MAX,
        alt_units: 1_000,
        images: 24,
        srcset_entries: 4,
    };
}

/// What a byte of text costs in a shortening budget: at least the bytes it takes once escaped
/// (askama writes `&#NN;`, 5 bytes, for the five specials; a line break may become a paragraph
/// break), and for the specials twice that, since escaping is what rendering time pays for. Plain
/// prose costs its bytes; a text of nothing but specials is cut twelve times shorter.
const fn budget_units(b: u8) -> usize {
    match b {
        b'<' | b'>' | b'&' | b'"' | b'\'' => 12,
        b'\n' => 6,
        _ => 1,
    }
}

/// `text` cut to `budget` units ([`budget_units`]; never more bytes of escaped HTML), at a word
/// boundary when one is near, with an ellipsis; `true` when it was cut.
pub fn shorten(text: &str, budget: usize) -> (String, bool) {
    if text.len().saturating_mul(12) <= budget {
        return (text.to_owned(), false);
    }
    let mut used = 0;
    for (at, &b) in text.as_bytes().iter().enumerate() {
        used += budget_units(b);
        if used > budget {
            let mut at = at;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let cut = &text[..at];
            let cut = match cut.rfind(char::is_whitespace) {
                Some(space) if cut.len() - space < 80 => &cut[..space],
                _ => cut,
            };
            return (format!("{}…", cut.trim_end()), true);
        }
    }
    (text.to_owned(), false)
}

fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

struct ImageView {
    src: String,
    srcset: String,
    sizes: &'static str,
    width: u32,
    height: u32,
    alt: String,
    /// The first image of the page is the likely LCP: loaded at once, the rest lazily.
    lazy: bool,
}

struct MomentView {
    /// 1-based position in the share (the `?moment=` of its full view).
    number: usize,
    title: String,
    date_iso: String,
    date_text: String,
    paragraphs: Vec<String>,
    images: Vec<ImageView>,
    /// Set when the text or the photos were shortened: the link to the full moment.
    read_more: Option<String>,
    more_photos: bool,
}

struct OgView {
    /// The media URL, or for the branded default its path on the share host.
    url: String,
    on_share_host: bool,
    mime: &'static str,
    width: u32,
    height: u32,
    alt: String,
}

struct PagerView {
    page: u16,
    pages: u16,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "share.html")]
struct ShareTemplate<'a> {
    lang: &'static str,
    og_locale: &'static str,
    og_locale_alternate: &'static str,
    words: &'static Words,
    stylesheet: &'static str,
    page_title: String,
    og_title: &'a str,
    heading: &'a str,
    description: String,
    og: OgView,
    moments: Vec<MomentView>,
    pager: Option<PagerView>,
    /// On a moment's full view: the page it is on, to go back to.
    back: Option<(u16, String)>,
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

#[derive(Template)]
#[template(path = "passphrase.html")]
struct PassphraseTemplate<'a> {
    lang: &'static str,
    words: &'static Words,
    stylesheet: &'static str,
    action: &'a str,
    form_token: &'a str,
    problem: Option<&'static str>,
}

/// Why the passphrase form is shown again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassProblem {
    Wrong,
    FormExpired,
    Throttled,
}

/// The passphrase form of a locked link (`share::passphrase`): posts `passphrase` and the hidden
/// `form_token` to `action` (the link's own path and view), with the problem of the last try.
pub fn render_passphrase_page(lang: Lang, action: &str, form_token: &str, problem: Option<PassProblem>) -> String {
    let w = words(lang);
    PassphraseTemplate {
        lang: lang.tag(),
        words: w,
        stylesheet: crate::share::style::STYLESHEET,
        action,
        form_token,
        problem: problem.map(|p| match p {
            PassProblem::Wrong => w.pass_wrong,
            PassProblem::FormExpired => w.pass_form_expired,
            PassProblem::Throttled => w.pass_throttled,
        }),
    }
    .render()
    .unwrap_or_default()
}

/// An object key with only path characters, so a bad row cannot make the page point anywhere but
/// the media origin (nor grow by escaping). Applied once, when the page is parsed.
/// Whether a preview's key may be shown: a derivative of the page's account
/// (`babybook_jobs::media_keys`). A page read without its account (a test fixture) shows plain
/// keys under `derived/`.
fn shown_key(key: &str, account: Option<&babybook_jobs::Id>) -> bool {
    match account {
        Some(account) => babybook_jobs::media_keys::is_derivative_key(key, account),
        None => {
            key.starts_with("derived/")
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~'))
                && key.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        }
    }
}

fn media_url(media_origin: &str, key: &str) -> String {
    let mut url = String::with_capacity(media_origin.len() + 1 + key.len());
    url.push_str(media_origin);
    url.push('/');
    url.push_str(key);
    url
}

/// At most `n` previews, spread over the widths and always with the largest.
fn spread<T>(items: &[T], n: usize) -> Vec<&T> {
    if items.len() <= n || n < 2 {
        return items.iter().rev().take(n.max(1)).rev().collect();
    }
    (0..n).map(|i| &items[i * (items.len() - 1) / (n - 1)]).collect()
}

/// `<url> <width>w, …` in one allocation.
fn srcset(media_origin: &str, previews: &[&Preview]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(previews.iter().map(|p| media_origin.len() + p.key.len() + 10).sum());
    for (i, p) in previews.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{media_origin}/{} {}w", p.key, p.width);
    }
    out
}

fn image_views(page: &SharePage, moment: &Moment, limits: Limits, media_origin: &str, w: &Words) -> Vec<ImageView> {
    moment
        .media
        .iter()
        .take(limits.images)
        .map(|media| {
            let shown = spread(&media.previews, limits.srcset_entries);
            let fallback = shown
                .iter()
                .find(|p| p.width >= 640)
                .or(shown.last())
                .map(|p| p.key.as_str())
                .unwrap_or("");
            ImageView {
                src: media_url(media_origin, fallback),
                srcset: srcset(media_origin, &shown),
                sizes: "(max-width: 720px) 100vw, 720px",
                width: media.width,
                height: media.height,
                alt: media
                    .alt
                    .as_deref()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| shorten(a, limits.alt_units).0)
                    .unwrap_or_else(|| format!("{} {}", w.photo_of, cut_chars(&page.child_name, 60))),
                lazy: true,
            }
        })
        .collect()
}

fn moment_view(page: &SharePage, index: usize, limits: Limits, lang: Lang, media_origin: &str) -> MomentView {
    let w = words(lang);
    let moment = &page.moments[index];
    let (text, cut) = shorten(moment.body.as_deref().unwrap_or(""), limits.text_bytes);
    let more_photos = moment.media.len() > limits.images;
    let number = index + 1;
    MomentView {
        number,
        title: shorten(&moment.title, limits.title_units).0,
        date_iso: moment.occurred_on.clone(),
        date_text: format_date(&moment.occurred_on, lang),
        paragraphs: text
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        images: image_views(page, moment, limits, media_origin, w),
        read_more: (cut || more_photos).then(|| View::Moment(number as u16).query()),
        more_photos,
    }
}

/// Renders the first page of a share (see [`render_share_view`]).
pub fn render_share_page(page: &SharePage, lang: Lang, media_origin: &str) -> String {
    render_share_view(page, lang, media_origin, View::FIRST).unwrap_or_default()
}

/// Renders one view of a share: a page of [`MOMENTS_PER_PAGE`] moments with long texts
/// shortened, or one moment in full. `None` for a view past the end of this share. At most
/// [`MAX_PAGE_BYTES`] whatever the share holds. Deterministic: the same page, language and view
/// give the same bytes, so prewarmed and on-demand renders (and their ETags) are identical.
pub fn render_share_view(page: &SharePage, lang: Lang, media_origin: &str, view: View) -> Option<String> {
    let html = render_with(page, lang, media_origin, view, Limits::LIST)?;
    if html.len() <= RENDER_BUDGET_BYTES || matches!(view, View::Moment(_)) {
        return Some(html);
    }
    render_with(page, lang, media_origin, view, Limits::TIGHT)
}

fn render_with(page: &SharePage, lang: Lang, media_origin: &str, view: View, limits: Limits) -> Option<String> {
    let w = words(lang);
    let pages = page_count(page.moments.len());
    let (indices, limits, pager, back) = match view {
        View::List(n) if n <= pages => {
            let start = usize::from(n - 1) * MOMENTS_PER_PAGE;
            let end = (start + MOMENTS_PER_PAGE).min(page.moments.len());
            let pager = (pages > 1).then(|| PagerView {
                page: n,
                pages,
                prev: (n > 1).then(|| View::List(n - 1).query()),
                next: (n < pages).then(|| View::List(n + 1).query()),
            });
            (start..end, limits, pager, None)
        }
        View::Moment(k) if usize::from(k) <= page.moments.len() => {
            let on = page_of_moment(k);
            let index = usize::from(k) - 1;
            (
                index..index + 1,
                Limits::MOMENT,
                None,
                Some((on, format!("{}#m{k}", View::List(on).query()))),
            )
        }
        _ => return None,
    };
    let mut moments: Vec<MomentView> = indices
        .map(|i| moment_view(page, i, limits, lang, media_origin))
        .collect();
    if let Some(first) = moments.iter_mut().flat_map(|m| m.images.first_mut()).next() {
        first.lazy = false;
    }
    let heading = page
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&page.child_name);
    let count = page.moments.len();
    let moments_word = if count == 1 { w.shared_moment } else { w.shared_moments };
    let description = format!("{count} {moments_word} · {}", page.child_name);
    let og = match &page.og_image {
        Some(image) => OgView {
            url: media_url(media_origin, &image.key),
            on_share_host: false,
            mime: image.mime,
            width: image.width,
            height: image.height,
            alt: image
                .alt
                .as_deref()
                .map(|a| cut_chars(a, 200))
                .unwrap_or_else(|| format!("{} {}", w.photo_of, page.child_name)),
        },
        None => OgView {
            url: og_default_path().to_owned(),
            on_share_host: true,
            mime: "image/png",
            width: OG_DEFAULT_SIZE.0,
            height: OG_DEFAULT_SIZE.1,
            alt: w.og_default_alt.to_owned(),
        },
    };
    let page_title = match (view, &pager) {
        (View::Moment(_), _) => format!("{} · {heading} · {}", moments[0].title, w.site),
        (_, Some(p)) if p.page > 1 => format!("{heading} · {} {} {} {} · {}", w.page, p.page, w.of, p.pages, w.site),
        _ => format!("{heading} · {}", w.site),
    };
    let other = Lang::ALL.into_iter().find(|l| *l != lang).unwrap_or(lang);
    let template = ShareTemplate {
        lang: lang.tag(),
        og_locale: lang.og_locale(),
        og_locale_alternate: other.og_locale(),
        words: w,
        stylesheet: crate::share::style::STYLESHEET,
        page_title,
        og_title: heading,
        heading,
        description,
        og,
        moments,
        pager,
        back,
    };
    // Rendering into a String only fails if a Display impl fails; ours cannot.
    Some(template.render().unwrap_or_default())
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
        stylesheet: crate::share::style::STYLESHEET,
        title,
        body,
    }
    .render()
    .unwrap_or_default()
}

/// The page JSON of a share at every limit: 200 moments of 20,000 characters that escape to six
/// bytes, titles of 200, alt texts of 2,000, four photos with 32 previews of the longest key each.
/// The unit tests' largest page and the render benchmark's (`bench/micro`, feature `fixtures`).
#[cfg(any(test, feature = "fixtures"))]
pub fn largest_share_json() -> String {
    let key = format!("derived/{}", "k".repeat(MAX_KEY_CHARS - 10));
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
    format!(
        r#"{{"child_name":"{}","title":"{}","moments":[{}]}}"#,
        "<".repeat(120),
        "&".repeat(120),
        moments.join(",")
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::share::view::MAX_PAGES;

    #[test]
    fn every_fingerprint_of_the_branded_preview_is_served_and_nothing_else_is() {
        let current = og_default_path().trim_start_matches("/_static/");
        assert!(is_og_default_file(current), "{current}");
        assert!(is_og_default_file("og.0123456789ab.png"), "an older version's name");
        for other in [
            "og.png",
            "og.0123456789AB.png",
            "og.0123456789abc.png",
            "og.0123456789ab.jpg",
            "../og.0123456789ab.png",
            "x.0123456789ab.png",
        ] {
            assert!(!is_og_default_file(other), "{other}");
        }
    }

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
    fn the_page_shows_moments_in_date_order_with_sized_images_and_a_srcset() {
        let page = SharePage::from_json(
            r#"{"child_name":"Helena","moments":[
                {"title":"Segundo","occurred_on":"2025-06-01","media":[{"width":640,"height":480,"previews":[{"key":"derived/a/c/480.webp","width":480}]}]},
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
            html.contains(r#"width="800" height="600" alt="Sorriso" fetchpriority="high""#),
            "the first image loads at once"
        );
        assert!(
            html.contains(r#"width="640" height="480" alt="Foto de Helena" loading="lazy""#),
            "the rest lazily"
        );
        assert!(html.contains(r#"<meta name="robots" content="noindex">"#));
        assert!(!html.contains("<script"));
        assert!(!html.contains("style="), "inline styles would break the CSP");
        assert!(!html.contains("rel=\"next\""), "one page, no pager");
    }

    fn meta<'a>(html: &'a str, property: &str) -> Vec<&'a str> {
        let needle = format!(r#"property="{property}" content=""#);
        html.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &html[at + needle.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn previews_use_the_og_derivative_with_its_type_size_and_alt() {
        let page = SharePage::from_json(
            r#"{"child_name":"Helena","moments":[{"title":"Praia","occurred_on":"2025-05-12","media":[{"width":1600,"height":1200,"alt":"Na praia","previews":[
                {"key":"derived/a/b/960.webp","width":960},{"key":"derived/a/b/og.jpg","width":1200,"height":630,"purpose":"og"}]}]}]}"#,
        )
        .unwrap();
        let html = render_share_page(&page, Lang::En, "https://media.babybook.com");
        assert_eq!(
            meta(&html, "og:image"),
            ["https://media.babybook.com/derived/a/b/og.jpg"]
        );
        assert_eq!(meta(&html, "og:image:type"), ["image/jpeg"]);
        assert_eq!(meta(&html, "og:image:width"), ["1200"]);
        assert_eq!(meta(&html, "og:image:height"), ["630"]);
        assert_eq!(meta(&html, "og:image:alt"), ["Na praia"]);
        assert_eq!(meta(&html, "og:url"), [SHARE_URL_MARKER]);
        assert_eq!(meta(&html, "og:locale"), ["en_US"]);
        assert_eq!(meta(&html, "og:locale:alternate"), ["pt_BR"]);
        assert_eq!(meta(&html, "og:site_name"), ["Baby Book"]);
        assert!(!html.contains("og.jpg 1200w"), "the og derivative is not a page image");
        assert!(html.contains(r#"<meta name="twitter:card" content="summary_large_image">"#));
    }

    #[test]
    fn a_share_without_an_og_derivative_gets_the_branded_png() {
        let html = render_share_page(&sample_page(2), Lang::PtBr, "https://media.babybook.com");
        let default = format!("{SHARE_ORIGIN_MARKER}{}", og_default_path());
        assert_eq!(meta(&html, "og:image"), [default.as_str()]);
        assert_eq!(meta(&html, "og:image:type"), ["image/png"]);
        assert_eq!(
            (meta(&html, "og:image:width"), meta(&html, "og:image:height")),
            (vec!["1200"], vec!["630"])
        );
        assert_eq!(&OG_DEFAULT_PNG[1..4], b"PNG");
        let ihdr = &OG_DEFAULT_PNG[16..24];
        assert_eq!(ihdr, [0, 0, 4, 176, 0, 0, 2, 118], "the PNG is 1200x630");
        // A WebP preview is never an og:image, whatever it is called.
        let webp = SharePage::from_json(r#"{"child_name":"A","moments":[{"title":"t","occurred_on":"2025-01-01","media":[{"width":9,"height":9,"previews":[{"key":"d/og.webp","width":1200,"height":630,"purpose":"og"},{"key":"d/480.webp","width":480}]}]}]}"#).unwrap();
        assert_eq!(webp.og_image, None);
    }

    proptest::proptest! {
        #[test]
        fn find_is_the_first_place_a_needle_starts(hay in "[<ab/>]{0,40}", needle in "[<ab/>]{1,4}") {
            let naive = hay.as_bytes().windows(needle.len()).position(|w| w == needle.as_bytes());
            proptest::prop_assert_eq!(super::find(hay.as_bytes(), needle.as_bytes()), naive);
        }
    }

    #[test]
    fn the_share_url_goes_into_the_head_when_served() {
        let html = render_share_page(&sample_page(1), Lang::PtBr, "https://m");
        let served = String::from_utf8(with_share_url(
            html.as_bytes(),
            "https://share.test",
            "https://share.test/s/TOKEN?page=2",
        ))
        .unwrap();
        assert_eq!(meta(&served, "og:url"), ["https://share.test/s/TOKEN?page=2"]);
        assert!(meta(&served, "og:image")[0].starts_with("https://share.test/_static/og."));
        assert!(!served.contains("<share-"));
        assert_eq!(
            served.len(),
            html.len() - SHARE_URL_MARKER.len() - 2 * SHARE_ORIGIN_MARKER.len()
                + "https://share.test/s/TOKEN?page=2".len()
                + 2 * "https://share.test".len()
        );
        // Only the head is touched: text after it stays byte for byte.
        let body_at = html.find("</head>").unwrap();
        assert!(served.ends_with(&html[body_at..]));
    }

    fn largest_share(media_origin_len: usize) -> (SharePage, String) {
        (
            SharePage::from_json(&largest_share_json()).unwrap(),
            format!("https://{}", "m".repeat(media_origin_len)),
        )
    }

    #[test]
    fn every_page_of_the_largest_share_is_at_most_256_kib_with_working_pages() {
        for origin_len in [20, 200] {
            let (page, origin) = largest_share(origin_len);
            for lang in Lang::ALL {
                for n in 1..=MAX_PAGES {
                    let html = render_share_view(&page, lang, &origin, View::List(n)).unwrap();
                    assert!(
                        html.len() <= RENDER_BUDGET_BYTES,
                        "page {n} ({lang:?}, origin {origin_len}) is {} bytes",
                        html.len()
                    );
                    assert_eq!(
                        html.matches("<section class=\"moment\"").count(),
                        if n < 9 { 24 } else { 8 },
                        "page {n}"
                    );
                    assert_eq!(
                        html.contains(&format!(r#"<link rel="next" href="?page={}">"#, n + 1)),
                        n < 9,
                        "next of page {n}"
                    );
                    assert_eq!(
                        html.contains(&format!(r#"<link rel="prev" href="?page={}">"#, n - 1)),
                        n > 1,
                        "prev of page {n}"
                    );
                    assert!(
                        html.contains(&format!(" {n} {} 9</span>", words(lang).of)),
                        "page count on page {n}"
                    );
                    assert!(html.contains("?moment="), "a way to read the rest on page {n}");
                }
                assert_eq!(
                    render_share_view(&page, lang, &origin, View::List(10)),
                    None,
                    "past the end"
                );
                if origin_len == 20 {
                    let first = render_share_view(&page, lang, &origin, View::List(1)).unwrap();
                    println!("largest first page ({lang:?}): {} bytes", first.len());
                    assert_eq!(
                        first.matches("<figure>").count(),
                        72,
                        "the normal limits fit: 3 photos a moment"
                    );
                }
            }
        }
    }

    #[test]
    fn a_moment_in_full_holds_its_whole_text_within_the_budget() {
        let (page, origin) = largest_share(200);
        for k in [1, 25, 200] {
            let html = render_share_view(&page, Lang::PtBr, &origin, View::Moment(k)).unwrap();
            assert!(html.len() <= RENDER_BUDGET_BYTES, "moment {k} is {} bytes", html.len());
            assert_eq!(
                html.matches("&#34;&#38;").count(),
                10_000,
                "the whole text of moment {k}"
            );
            let back = format!(r#"href="?page={}#m{k}""#, page_of_moment(k));
            assert!(html.contains(&back), "moment {k} links back to its page");
        }
        assert_eq!(
            render_share_view(&sample_page(3), Lang::En, "https://m", View::Moment(4)),
            None
        );
    }

    #[test]
    fn long_texts_are_shortened_at_a_word_with_a_link_and_short_ones_are_not() {
        let (short, cut) = shorten("Oi, tudo bem?", 100);
        assert_eq!((short.as_str(), cut), ("Oi, tudo bem?", false));
        let long = "palavra ".repeat(1000);
        let (text, cut) = shorten(&long, 2_000);
        assert!(cut && text.ends_with("palavra…"), "{}", &text[text.len() - 20..]);
        assert!(text.len() <= 2_000 + "…".len());
        let (text, _) = shorten(&"\"".repeat(1000), 60);
        assert_eq!(text.chars().filter(|c| *c == '"').count(), 5, "escaping counts twice");
        let plain_title = "t".repeat(200);
        assert_eq!(
            shorten(&plain_title, Limits::LIST.title_units),
            (plain_title, false),
            "a plain title is whole"
        );
        let page = SharePage::from_json(&format!(
            r#"{{"child_name":"A","moments":[{{"title":"t","occurred_on":"2025-01-01","body":"{long}"}},{{"title":"u","occurred_on":"2025-01-02","body":"curto"}}]}}"#
        ))
        .unwrap();
        let html = render_share_page(&page, Lang::PtBr, "https://m");
        assert_eq!(html.matches(r#"<a href="?moment=1">Continuar lendo"#).count(), 1);
        assert!(!html.contains("?moment=2"));
    }

    #[test]
    fn english_is_rendered_when_negotiated() {
        let html = render_share_page(&sample_page(2), Lang::En, "https://media.babybook.com");
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
    fn a_page_shows_only_its_own_accounts_derivatives() {
        let account = "9a1e2b3c-4d5e-4f60-8a7b-c9d0e1f2a3b4";
        let page = |key: &str| {
            SharePage::from_json(&format!(
                r#"{{"account_id":"{account}","child_name":"A","moments":[{{"title":"t","occurred_on":"2025-01-01","media":[{{"width":9,"height":9,"previews":[{{"key":"{key}","width":480}}]}}]}}]}}"#
            ))
            .unwrap()
        };
        let own = format!("derived/{account}/asset/480.webp");
        let html = render_share_page(&page(&own), Lang::PtBr, "https://media.babybook.com");
        assert!(html.contains(&format!(r#"src="https://media.babybook.com/{own}""#)));
        for key in [
            format!("originals/{account}/asset.jpg"),
            format!("derived/{account}/../../originals/{account}/asset.jpg"),
            "derived/00000000-0000-4000-8000-000000000001/asset/480.webp".to_owned(),
            format!("/derived/{account}/a b.webp"),
        ] {
            let shown = page(&key);
            assert!(shown.moments[0].media.is_empty(), "{key} was kept");
            let html = render_share_page(&shown, Lang::PtBr, "https://media.babybook.com");
            assert!(
                !html.contains("originals/") && !html.contains(".."),
                "{key} reached the page"
            );
        }
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

    #[test]
    fn the_passphrase_form_is_labelled_posts_to_its_link_and_says_what_went_wrong() {
        for lang in Lang::ALL {
            let html = render_passphrase_page(lang, "/s/AAAAAAAAAAAAAAAAAAAAAA?page=2", "n.m\"<x>", None);
            assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())), "{html}");
            assert!(html.contains("<form class=\"pass\" method=\"post\" action=\"/s/AAAAAAAAAAAAAAAAAAAAAA?page=2\">"));
            assert!(
                html.contains("<label for=\"passphrase\">")
                    && html.contains("id=\"passphrase\" name=\"passphrase\" type=\"password\"")
            );
            assert!(
                html.contains("name=\"form_token\" value=\"n.m&#34;&#60;x&#62;\""),
                "escaped: {html}"
            );
            assert!(!html.contains("role=\"alert\"") && !html.contains("aria-invalid"));
            assert!(!html.contains("<script"), "no JavaScript");
            let wrong = render_passphrase_page(lang, "/s/AAAAAAAAAAAAAAAAAAAAAA", "t", Some(PassProblem::Wrong));
            assert!(wrong.contains("role=\"alert\">") && wrong.contains("aria-invalid=\"true\""));
            assert!(wrong.contains("aria-describedby=\"pass-help pass-problem\""));
            assert!(wrong.contains(words(lang).pass_wrong));
            let throttled = render_passphrase_page(lang, "/s/x", "t", Some(PassProblem::Throttled));
            assert!(throttled.contains(words(lang).pass_throttled));
        }
    }
}
