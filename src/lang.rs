//! The two languages the edge speaks, chosen from `Accept-Language`.

/// pt-BR is the default; English when the client prefers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    PtBr,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::PtBr, Lang::En];

    pub fn tag(self) -> &'static str {
        match self {
            Lang::PtBr => "pt-BR",
            Lang::En => "en",
        }
    }

    /// For `og:locale`.
    pub fn og_locale(self) -> &'static str {
        match self {
            Lang::PtBr => "pt_BR",
            Lang::En => "en_US",
        }
    }

    /// Picks the served language with the highest `q` (RFC 9110 §12.5.4); ties go to the one listed
    /// first, and anything unparseable or unsupported falls back to pt-BR.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else {
            return Lang::PtBr;
        };
        let mut best: Option<(u16, Lang)> = None;
        // A header longer than this is junk; the hygiene layer bounds headers, this bounds work.
        for item in header.split(',').take(32) {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(parse_qvalue))
                .unwrap_or(Some(1000));
            let Some(q) = q else { continue };
            let lang = match range.split('-').next() {
                Some("pt") => Lang::PtBr,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > 0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, lang)| lang).unwrap_or(Lang::PtBr)
    }
}

/// `q=0.8` → 800. `None` for a malformed value (the item is then ignored).
fn parse_qvalue(text: &str) -> Option<u16> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negotiation_follows_quality_values() {
        let rows = [
            (None, Lang::PtBr),
            (Some(""), Lang::PtBr),
            (Some("en-US,en;q=0.9"), Lang::En),
            (Some("pt-BR,pt;q=0.9,en;q=0.8"), Lang::PtBr),
            (Some("de-DE,en;q=0.5"), Lang::En),
            (Some("fr"), Lang::PtBr),
            (Some("en;q=0.3,pt;q=0.7"), Lang::PtBr),
            (Some("pt;q=0.3,en;q=0.7"), Lang::En),
            (Some("en;q=0"), Lang::PtBr),
            (Some("en;q=2,pt;q=0.1"), Lang::PtBr),
            (Some("EN-gb"), Lang::En),
            (Some("*"), Lang::PtBr),
        ];
        for (header, want) in rows {
            assert_eq!(Lang::negotiate(header), want, "row {header:?}");
        }
    }

    proptest! {
        #[test]
        fn any_header_negotiates_without_panicking(header in ".{0,300}") {
            let _ = Lang::negotiate(Some(&header));
        }
    }
}
