//! The Worker's JSON log lines as `wrangler dev` prints them (sometimes inside a coloured
//! `[WARNING]` or `[ERROR]` frame).

use serde_json::Value;

/// The JSON object in a log line, if the line carries one of ours.
pub fn parse_line(line: &str) -> Option<Value> {
    let start = line.find("{\"")?;
    let end = line.rfind('}')?;
    if end <= start {
        return None;
    }
    let value: Value = serde_json::from_str(&line[start..=end]).ok()?;
    value.get("service").is_some().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_inside_wrangler_decoration() {
        let line = "\u{1b}[33m▲ \u{1b}[43;33m[WARNING]\u{1b}[0m \u{1b}[1m{\"service\":\"babybook-edge\",\"status\":404}\u{1b}[0m";
        assert_eq!(parse_line(line).unwrap()["status"], 404);
        assert!(parse_line("[wrangler:info] GET /health 200 OK").is_none());
        assert!(parse_line("{\"not\":\"ours\"}").is_none());
    }
}
