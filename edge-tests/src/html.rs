//! A small well-formedness check for the HTML the edge renders: every non-void element closed,
//! in order; no stray closing tags. (The pages are ours and simple; this is not a full parser.)

const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
];

/// `Err` names the first problem.
pub fn check_balanced(html: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if rest.starts_with("!--") {
            let end = rest.find("-->").ok_or("unclosed comment")?;
            rest = &rest[end + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unclosed tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue; // doctype
        }
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("malformed tag <{tag}>"));
        }
        if quotes_unbalanced(tag) {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if VOID.contains(&name.as_str()) || tag.ends_with('/') {
            continue;
        }
        if closing {
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("</{name}> closes <{open}>")),
                None => return Err(format!("stray </{name}>")),
            }
        } else {
            stack.push(name);
        }
    }
    match stack.last() {
        None => Ok(()),
        Some(open) => Err(format!("<{open}> never closed")),
    }
}

fn quotes_unbalanced(tag: &str) -> bool {
    tag.matches('"').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nested_pages_and_catches_broken_ones() {
        assert_eq!(
            check_balanced("<!doctype html><html><body><p>a<br>b</p><img src=\"x\"></body></html>"),
            Ok(())
        );
        assert!(check_balanced("<html><body><p>a</body></html>").is_err());
        assert!(check_balanced("<html><p>a</p>").is_err());
        assert!(check_balanced("<p class=\"a>b</p>").is_err());
        assert!(check_balanced("</p>").is_err());
    }
}
