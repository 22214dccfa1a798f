//! Which part of a share a request asks for (`?page=N`, `?moment=K`), parsed once at the edge of
//! the share route, and the arithmetic of pages. Every view is one cached variant of the link's
//! page, so the set of views is bounded: a purge can name every one (see `share::purge`).

/// Moments on one page of a share.
pub const MOMENTS_PER_PAGE: usize = 24;
/// The most moments a share link holds (`share_link.moment_ids`, migration V2).
pub const MAX_MOMENTS: usize = 200;
/// The most pages a share can have: `ceil(MAX_MOMENTS / MOMENTS_PER_PAGE)`.
pub const MAX_PAGES: u16 = MAX_MOMENTS.div_ceil(MOMENTS_PER_PAGE) as u16;

/// One page variant of a share link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// Page `n` (1-based) of the moments, with long texts shortened.
    List(u16),
    /// Moment `k` (1-based, in the page's date order) in full: where "continue reading" leads.
    Moment(u16),
}

/// A query that names no view of any share (`?page=0`, `?page=x`, `?page=99`): the 404 page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchView;

impl View {
    pub const FIRST: View = View::List(1);

    /// The view a query names. Parameters other than `page` and `moment` (`utm_source`,
    /// `fbclid`, what messaging apps append) are ignored; `moment` wins over `page`. A number out
    /// of the range any share can have is [`NoSuchView`]; whether this share has that page is
    /// decided by the render.
    pub fn from_query(query: Option<&str>) -> Result<View, NoSuchView> {
        let mut page = None;
        let mut moment = None;
        for pair in query.unwrap_or("").split('&').take(16) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "page" => page = Some(number(value, MAX_PAGES)?),
                "moment" => moment = Some(number(value, MAX_MOMENTS as u16)?),
                _ => {}
            }
        }
        Ok(match (moment, page) {
            (Some(k), _) => View::Moment(k),
            (None, Some(n)) => View::List(n),
            (None, None) => View::FIRST,
        })
    }

    /// The query that links to this view (`?page=1` for the first, which is the same variant as
    /// no query at all).
    pub fn query(self) -> String {
        match self {
            View::List(n) => format!("?page={n}"),
            View::Moment(k) => format!("?moment={k}"),
        }
    }

    /// What the view adds to the link's share URL (`og:url`): nothing for the first page.
    pub fn url_suffix(self) -> String {
        match self {
            View::List(1) => String::new(),
            other => other.query(),
        }
    }

    /// Every list page any share can have, in order: with the language, the cache variants a
    /// purge names.
    pub fn all_list_pages() -> impl Iterator<Item = View> {
        (1..=MAX_PAGES).map(View::List)
    }
}

/// `1..=max`, decimal digits only, no sign, no leading zero.
fn number(text: &str, max: u16) -> Result<u16, NoSuchView> {
    if text.is_empty() || text.len() > 3 || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NoSuchView);
    }
    text.parse::<u16>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or(NoSuchView)
}

/// How many pages `moments` moments fill (an empty share has one page that says so).
pub fn page_count(moments: usize) -> u16 {
    u16::try_from(moments.div_ceil(MOMENTS_PER_PAGE).max(1)).unwrap_or(u16::MAX)
}

/// The page that shows moment `k` (1-based).
pub fn page_of_moment(k: u16) -> u16 {
    (usize::from(k.max(1)) - 1) as u16 / MOMENTS_PER_PAGE as u16 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_pages_and_moments_and_ignore_what_apps_append() {
        let rows: [(Option<&str>, Result<View, NoSuchView>); 16] = [
            (None, Ok(View::List(1))),
            (Some(""), Ok(View::List(1))),
            (Some("page=1"), Ok(View::List(1))),
            (Some("page=2"), Ok(View::List(2))),
            (Some("page=9"), Ok(View::List(9))),
            (Some("fbclid=abc&page=3"), Ok(View::List(3))),
            (Some("utm_source=whatsapp"), Ok(View::List(1))),
            (Some("moment=200"), Ok(View::Moment(200))),
            (Some("page=2&moment=30"), Ok(View::Moment(30))),
            (Some("page=10"), Err(NoSuchView)),
            (Some("page=0"), Err(NoSuchView)),
            (Some("page=01"), Err(NoSuchView)),
            (Some("page=-1"), Err(NoSuchView)),
            (Some("page=x"), Err(NoSuchView)),
            (Some("page="), Err(NoSuchView)),
            (Some("moment=201"), Err(NoSuchView)),
        ];
        for (query, want) in rows {
            assert_eq!(View::from_query(query), want, "query {query:?}");
        }
    }

    #[test]
    fn a_view_links_back_to_itself() {
        for view in [View::List(1), View::List(7), View::Moment(1), View::Moment(200)] {
            let query = view.query();
            assert_eq!(View::from_query(query.strip_prefix('?')), Ok(view));
        }
        assert_eq!(View::List(1).url_suffix(), "");
        assert_eq!(View::List(2).url_suffix(), "?page=2");
    }

    #[test]
    fn two_hundred_moments_fill_nine_pages_of_twenty_four() {
        assert_eq!(MAX_PAGES, 9);
        assert_eq!(page_count(0), 1);
        assert_eq!(page_count(24), 1);
        assert_eq!(page_count(25), 2);
        assert_eq!(page_count(MAX_MOMENTS), MAX_PAGES);
        assert_eq!(View::all_list_pages().count(), usize::from(MAX_PAGES));
        assert_eq!((page_of_moment(1), page_of_moment(24), page_of_moment(25)), (1, 1, 2));
        assert_eq!(page_of_moment(200), 9);
    }
}
