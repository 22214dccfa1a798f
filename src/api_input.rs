//! Request bodies of the API, parsed into typed values at the edge of each handler.
//! Bad JSON is `400 invalid_json`; JSON with bad fields is `422 validation_failed` listing them.

use serde_json::{Map, Value};

use babybook_jobs::Id;

use crate::error::{ApiError, ErrorCode};

/// An email as typed by the user, trimmed; compared case-insensitively by the database (citext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, &'static str> {
        let text = text.trim();
        let (local, domain) = text.split_once('@').ok_or("must be an email address")?;
        if text.len() > 254
            || local.is_empty()
            || domain.len() < 3
            || !domain.contains('.')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("must be an email address");
        }
        Ok(Email(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub email: Email,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateShareRequest {
    pub moment_ids: Vec<Id>,
    pub title: Option<String>,
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateShareRequest {
    pub moment_ids: Option<Vec<Id>>,
    /// `Some(None)` clears the title.
    pub title: Option<Option<String>>,
    /// `Some(None)` (`"expires_in_days": null`) removes the expiry.
    pub expires_in_days: Option<Option<u32>>,
}

/// `POST /shares/:id/links`: a recipient link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLinkRequest {
    /// Whom the link is for ("Vovó Maria"), trimmed; shown only to the family.
    pub name: String,
    pub expires_in_days: Option<u32>,
    /// The link's passphrase (`share::passphrase`), trimmed; `None` for an open link.
    pub passphrase: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCompleteRequest {
    pub asset_id: Id,
    /// What the client says it uploaded; checked against the stored object, never trusted.
    pub size_bytes: i64,
    pub etag: String,
}

pub const MAX_MOMENTS_PER_SHARE: usize = 200;
pub const MAX_SHARE_DAYS: u32 = 365;
pub const MAX_LINK_NAME_CHARS: usize = 80;

/// Parses a JSON object body, or says why not.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(ErrorCode::InvalidJson, "body is JSON but not an object")),
        Err(e) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("body is not JSON: line {} column {}", e.line(), e.column()),
        )),
    }
}

/// Collects field problems so one response lists all of them.
#[derive(Default)]
struct Fields {
    errors: Vec<(String, String)>,
}

impl Fields {
    fn fail(&mut self, field: &str, problem: &str) {
        self.errors.push((field.to_owned(), problem.to_owned()));
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ApiError> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }

    fn string(&mut self, map: &Map<String, Value>, field: &str, max: usize) -> Option<String> {
        match map.get(field) {
            None | Some(Value::Null) => {
                self.fail(field, "required");
                None
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                self.fail(field, &format!("at most {max} characters"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    fn optional_title(&mut self, map: &Map<String, Value>) -> Option<Option<String>> {
        match map.get("title") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.chars().count() > 120 => {
                self.fail("title", "at most 120 characters");
                None
            }
            Some(Value::String(s)) => Some(Some(s.trim().to_owned()).filter(|t| !t.is_empty())),
            Some(_) => {
                self.fail("title", "must be a string or null");
                None
            }
        }
    }

    fn days(&mut self, map: &Map<String, Value>) -> Option<u32> {
        match map.get("expires_in_days") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(d) if (1..=u64::from(MAX_SHARE_DAYS)).contains(&d) => Some(d as u32),
                _ => {
                    self.fail(
                        "expires_in_days",
                        &format!("must be a whole number from 1 to {MAX_SHARE_DAYS}"),
                    );
                    None
                }
            },
        }
    }

    fn moment_ids(&mut self, value: Option<&Value>) -> Option<Vec<Id>> {
        let Some(Value::Array(items)) = value else {
            self.fail("moment_ids", "must be a list of moment ids");
            return None;
        };
        if items.is_empty() || items.len() > MAX_MOMENTS_PER_SHARE {
            self.fail("moment_ids", &format!("must list 1 to {MAX_MOMENTS_PER_SHARE} moments"));
            return None;
        }
        let mut ids = Vec::with_capacity(items.len());
        for item in items {
            match item.as_str().map(Id::parse) {
                Some(Ok(id)) if !ids.contains(&id) => ids.push(id),
                Some(Ok(_)) => {}
                _ => {
                    self.fail("moment_ids", "every item must be a moment id (UUID)");
                    return None;
                }
            }
        }
        Some(ids)
    }
}

impl LoginRequest {
    pub fn parse(body: &[u8]) -> Result<LoginRequest, ApiError> {
        let map = json_object(body)?;
        let mut f = Fields::default();
        let email = f.string(&map, "email", 254).and_then(|e| match Email::parse(&e) {
            Ok(email) => Some(email),
            Err(problem) => {
                f.fail("email", problem);
                None
            }
        });
        let password = f.string(&map, "password", 1024);
        if password.as_deref() == Some("") {
            f.fail("password", "required");
        }
        f.finish(|| LoginRequest {
            email: email.expect("checked"),
            password: password.expect("checked"),
        })
    }
}

impl CreateShareRequest {
    pub fn parse(body: &[u8]) -> Result<CreateShareRequest, ApiError> {
        let map = json_object(body)?;
        let mut f = Fields::default();
        let moment_ids = f.moment_ids(map.get("moment_ids"));
        let title = f.optional_title(&map).flatten();
        let expires_in_days = f.days(&map);
        f.finish(|| CreateShareRequest {
            moment_ids: moment_ids.expect("checked"),
            title,
            expires_in_days,
        })
    }
}

impl UpdateShareRequest {
    pub fn parse(body: &[u8]) -> Result<UpdateShareRequest, ApiError> {
        let map = json_object(body)?;
        let mut f = Fields::default();
        let moment_ids = map.get("moment_ids").map(|v| f.moment_ids(Some(v)));
        let title = f.optional_title(&map);
        let expires_in_days = match map.get("expires_in_days") {
            None => None,
            Some(serde_json::Value::Null) => Some(None),
            Some(_) => f.days(&map).map(Some),
        };
        if moment_ids.is_none() && title.is_none() && expires_in_days.is_none() && f.errors.is_empty() {
            f.fail("body", "change at least one of moment_ids, title, expires_in_days");
        }
        f.finish(|| UpdateShareRequest {
            moment_ids: moment_ids.flatten(),
            title,
            expires_in_days,
        })
    }
}

impl CreateLinkRequest {
    pub fn parse(body: &[u8]) -> Result<CreateLinkRequest, ApiError> {
        let map = json_object(body)?;
        let mut f = Fields::default();
        let name = f
            .string(&map, "name", MAX_LINK_NAME_CHARS)
            .map(|n| n.trim().to_owned())
            .filter(|n| {
                let ok = !n.is_empty() && !n.chars().any(char::is_control);
                if !ok {
                    f.fail("name", "must be 1 to 80 characters of text");
                }
                ok
            });
        let expires_in_days = f.days(&map);
        let passphrase = match map.get("passphrase") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => crate::share::passphrase::check_new(p)
                .map_err(|problem| f.fail("passphrase", &problem))
                .ok(),
            Some(_) => {
                f.fail("passphrase", "must be a string or null");
                None
            }
        };
        f.finish(|| CreateLinkRequest {
            name: name.expect("checked"),
            expires_in_days,
            passphrase,
        })
    }
}

impl UploadCompleteRequest {
    pub fn parse(body: &[u8]) -> Result<UploadCompleteRequest, ApiError> {
        let map = json_object(body)?;
        let mut f = Fields::default();
        let asset_id = f.string(&map, "asset_id", 36).and_then(|s| match Id::parse(&s) {
            Ok(id) => Some(id),
            Err(_) => {
                f.fail("asset_id", "must be an asset id (UUID)");
                None
            }
        });
        let size_bytes = match map.get("size_bytes").and_then(Value::as_i64) {
            Some(n) if n > 0 => Some(n),
            _ => {
                f.fail("size_bytes", "must be a positive whole number");
                None
            }
        };
        let etag = f.string(&map, "etag", 128).map(|e| e.trim_matches('"').to_owned());
        if etag.as_deref() == Some("") {
            f.fail("etag", "required");
        }
        f.finish(|| UploadCompleteRequest {
            asset_id: asset_id.expect("checked"),
            size_bytes: size_bytes.expect("checked"),
            etag: etag.expect("checked"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: ApiError) -> Vec<String> {
        assert_eq!(err.code, ErrorCode::ValidationFailed, "{err:?}");
        err.fields.into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_link_names_its_recipient_in_1_to_80_characters_of_text() {
        let ok = CreateLinkRequest::parse(br#"{"name":"  Vov\u00f3 Maria ","expires_in_days":30}"#).unwrap();
        assert_eq!(ok.name, "Vov\u{f3} Maria");
        assert_eq!(ok.expires_in_days, Some(30));
        assert_eq!(ok.passphrase, None);
        let locked = CreateLinkRequest::parse(br#"{"name":"Tio","passphrase":" bolo de fub\u00e1 "}"#).unwrap();
        assert_eq!(locked.passphrase.as_deref(), Some("bolo de fub\u{e1}"));
        for bad in [
            &br#"{"name":"Tio","passphrase":"short"}"#[..],
            br#"{"name":"Tio","passphrase":12345678}"#,
        ] {
            assert_eq!(fields(CreateLinkRequest::parse(bad).unwrap_err()), ["passphrase"]);
        }
        for bad in [
            &br#"{}"#[..],
            br#"{"name":"   "}"#,
            br#"{"name":"a\u0000b"}"#,
            br#"{"name":7}"#,
            br#"{"name":"Tio","expires_in_days":0}"#,
        ] {
            let refused = CreateLinkRequest::parse(bad).unwrap_err();
            assert_eq!(refused.code.status(), 422, "{}", String::from_utf8_lossy(bad));
            assert!(!refused.fields.is_empty());
        }
        let long = format!(r#"{{"name":"{}"}}"#, "a".repeat(81));
        assert_eq!(
            CreateLinkRequest::parse(long.as_bytes()).unwrap_err().code.status(),
            422
        );
        assert_eq!(CreateLinkRequest::parse(b"[1]").unwrap_err().code.status(), 400);
    }

    #[test]
    fn malformed_json_is_400_not_422() {
        for body in [&b"{"[..], b"", b"[1,2]", b"\"text\"", b"\xff\xfe"] {
            assert_eq!(
                LoginRequest::parse(body).unwrap_err().code,
                ErrorCode::InvalidJson,
                "{body:?}"
            );
        }
    }

    #[test]
    fn login_lists_every_bad_field() {
        assert_eq!(
            fields(LoginRequest::parse(br#"{}"#).unwrap_err()),
            ["email", "password"]
        );
        assert_eq!(
            fields(LoginRequest::parse(br#"{"email":"no-at-sign","password":""}"#).unwrap_err()),
            ["email", "password"]
        );
        assert_eq!(
            fields(LoginRequest::parse(br#"{"email":7,"password":"x"}"#).unwrap_err()),
            ["email"]
        );
        let ok = LoginRequest::parse(br#"{"email":" Mae@Example.com ","password":"pw"}"#).unwrap();
        assert_eq!(ok.email.as_str(), "Mae@Example.com");
    }

    #[test]
    fn share_creation_needs_real_moment_ids() {
        let id = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";
        assert_eq!(
            fields(CreateShareRequest::parse(br#"{"moment_ids":[]}"#).unwrap_err()),
            ["moment_ids"]
        );
        assert_eq!(
            fields(CreateShareRequest::parse(br#"{"moment_ids":["1; DROP TABLE moment"]}"#).unwrap_err()),
            ["moment_ids"]
        );
        assert_eq!(
            fields(
                CreateShareRequest::parse(format!(r#"{{"moment_ids":["{id}"],"expires_in_days":0}}"#).as_bytes())
                    .unwrap_err()
            ),
            ["expires_in_days"]
        );
        let ok =
            CreateShareRequest::parse(format!(r#"{{"moment_ids":["{id}","{id}"],"title":" Férias "}}"#).as_bytes())
                .unwrap();
        assert_eq!(ok.moment_ids.len(), 1, "duplicates collapse");
        assert_eq!(ok.title.as_deref(), Some("Férias"));
    }

    #[test]
    fn an_update_must_change_something() {
        assert_eq!(fields(UpdateShareRequest::parse(b"{}").unwrap_err()), ["body"]);
        let ok = UpdateShareRequest::parse(br#"{"title":null}"#).unwrap();
        assert_eq!(ok.title, Some(None));
        assert_eq!(
            UpdateShareRequest::parse(br#"{"expires_in_days":null}"#)
                .unwrap()
                .expires_in_days,
            Some(None)
        );
        assert_eq!(
            UpdateShareRequest::parse(br#"{"expires_in_days":7}"#)
                .unwrap()
                .expires_in_days,
            Some(Some(7))
        );
    }

    #[test]
    fn upload_completion_checks_its_fields() {
        assert_eq!(
            fields(UploadCompleteRequest::parse(br#"{"asset_id":"x","size_bytes":-1}"#).unwrap_err()),
            ["asset_id", "size_bytes", "etag"]
        );
        let ok = UploadCompleteRequest::parse(
            br#"{"asset_id":"6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab","size_bytes":10,"etag":"\"abc\""}"#,
        )
        .unwrap();
        assert_eq!(ok.etag, "abc");
    }
}
