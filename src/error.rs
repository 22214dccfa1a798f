//! One error type out of the edge, one envelope on the wire:
//! `{"error":{"code","message","trace_id"}}` (plus `fields` for validation errors).
//!
//! Each layer says what happened in its own terms and maps into [`ApiError`] once. The message a
//! client sees comes from the code and the language, never from the underlying error: the
//! detail goes to the log line (`ApiError::detail`) and nowhere else.

use crate::lang::Lang;
use crate::reply::Reply;

/// Declares `ErrorCode` and `ErrorCode::ALL` from one list, so no test or table has to repeat it.
macro_rules! error_codes {
    ($($code:ident),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($code),+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),+];
        }
    };
}

error_codes!(
    BadRequest,
    InvalidJson,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    CsrfFailed,
    OriginNotAllowed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    UriTooLong,
    HeadersTooLarge,
    MisdirectedRequest,
    RateLimited,
    ReadOnly,
    DatabaseUnavailable,
    ServiceUnavailable,
    BadGateway,
    GatewayTimeout,
    Internal,
);

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidJson => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::CsrfFailed | ErrorCode::OriginNotAllowed => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::MisdirectedRequest => 421,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::Internal => 500,
            ErrorCode::BadGateway => 502,
            ErrorCode::ReadOnly | ErrorCode::DatabaseUnavailable | ErrorCode::ServiceUnavailable => 503,
            ErrorCode::GatewayTimeout => 504,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::MisdirectedRequest => "misdirected_request",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::DatabaseUnavailable => "database_unavailable",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::GatewayTimeout => "gateway_timeout",
            ErrorCode::Internal => "internal_error",
        }
    }

    pub fn message(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (ErrorCode::BadRequest, Lang::PtBr) => "A requisição é inválida.",
            (ErrorCode::BadRequest, Lang::En) => "The request is invalid.",
            (ErrorCode::InvalidJson, Lang::PtBr) => "O corpo da requisição não é um JSON válido.",
            (ErrorCode::InvalidJson, Lang::En) => "The request body is not valid JSON.",
            (ErrorCode::ValidationFailed, Lang::PtBr) => "Alguns campos são inválidos.",
            (ErrorCode::ValidationFailed, Lang::En) => "Some fields are invalid.",
            (ErrorCode::Unauthorized, Lang::PtBr) => "Sua sessão não é válida. Entre novamente.",
            (ErrorCode::Unauthorized, Lang::En) => "Your session is not valid. Please sign in again.",
            (ErrorCode::Forbidden, Lang::PtBr) => "Você não tem permissão para isso.",
            (ErrorCode::Forbidden, Lang::En) => "You are not allowed to do that.",
            (ErrorCode::CsrfFailed, Lang::PtBr) => "Token CSRF ausente ou inválido. Recarregue a página.",
            (ErrorCode::CsrfFailed, Lang::En) => "Missing or invalid CSRF token. Reload the page.",
            (ErrorCode::OriginNotAllowed, Lang::PtBr) => "Origem não permitida.",
            (ErrorCode::OriginNotAllowed, Lang::En) => "Origin not allowed.",
            (ErrorCode::NotFound, Lang::PtBr) => "Não encontrado.",
            (ErrorCode::NotFound, Lang::En) => "Not found.",
            (ErrorCode::MethodNotAllowed, Lang::PtBr) => "Método não permitido para este endereço.",
            (ErrorCode::MethodNotAllowed, Lang::En) => "Method not allowed for this path.",
            (ErrorCode::Conflict, Lang::PtBr) => "O recurso mudou ou já existe.",
            (ErrorCode::Conflict, Lang::En) => "The resource changed or already exists.",
            (ErrorCode::PayloadTooLarge, Lang::PtBr) => "O corpo da requisição é grande demais.",
            (ErrorCode::PayloadTooLarge, Lang::En) => "The request body is too large.",
            (ErrorCode::UnsupportedMediaType, Lang::PtBr) => "Envie o corpo como application/json.",
            (ErrorCode::UnsupportedMediaType, Lang::En) => "Send the body as application/json.",
            (ErrorCode::UriTooLong, Lang::PtBr) => "O endereço é longo demais.",
            (ErrorCode::UriTooLong, Lang::En) => "The address is too long.",
            (ErrorCode::HeadersTooLarge, Lang::PtBr) => "Os cabeçalhos da requisição são grandes demais.",
            (ErrorCode::HeadersTooLarge, Lang::En) => "The request headers are too large.",
            (ErrorCode::MisdirectedRequest, Lang::PtBr) => "Este servidor não atende este domínio.",
            (ErrorCode::MisdirectedRequest, Lang::En) => "This server does not serve that host.",
            (ErrorCode::RateLimited, Lang::PtBr) => "Muitas requisições. Tente novamente em instantes.",
            (ErrorCode::RateLimited, Lang::En) => "Too many requests. Try again shortly.",
            (ErrorCode::ReadOnly, Lang::PtBr) => {
                "O Baby Book está em modo somente leitura para manutenção. Você pode ver tudo, mas alterações ficam para daqui a pouco."
            }
            (ErrorCode::ReadOnly, Lang::En) => {
                "Baby Book is in read-only mode for maintenance. You can view everything; changes will be back shortly."
            }
            (ErrorCode::DatabaseUnavailable, Lang::PtBr) => "Serviço temporariamente indisponível. Tente novamente em instantes.",
            (ErrorCode::DatabaseUnavailable, Lang::En) => "Service temporarily unavailable. Try again shortly.",
            (ErrorCode::ServiceUnavailable, Lang::PtBr) => "Serviço temporariamente indisponível.",
            (ErrorCode::ServiceUnavailable, Lang::En) => "Service temporarily unavailable.",
            (ErrorCode::BadGateway, Lang::PtBr) => "O serviço de origem falhou.",
            (ErrorCode::BadGateway, Lang::En) => "The upstream service failed.",
            (ErrorCode::GatewayTimeout, Lang::PtBr) => "O serviço de origem demorou demais para responder.",
            (ErrorCode::GatewayTimeout, Lang::En) => "The upstream service took too long to answer.",
            (ErrorCode::Internal, Lang::PtBr) => "Erro interno. Já fomos avisados.",
            (ErrorCode::Internal, Lang::En) => "Internal error. We have been notified.",
        }
    }

    /// Seconds a client should wait before retrying, for codes where retrying helps.
    pub fn default_retry_after(self) -> Option<u32> {
        match self {
            ErrorCode::ReadOnly => Some(300),
            ErrorCode::DatabaseUnavailable | ErrorCode::ServiceUnavailable => Some(5),
            _ => None,
        }
    }
}

/// An error on its way out of the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    /// For the log line only; never serialized into a response.
    pub detail: String,
    pub retry_after: Option<u32>,
    /// Field name → problem, for `validation_failed`.
    pub fields: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            retry_after: code.default_retry_after(),
            fields: Vec::new(),
        }
    }

    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn validation(fields: Vec<(String, String)>) -> ApiError {
        let detail = fields.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(",");
        ApiError {
            code: ErrorCode::ValidationFailed,
            detail,
            retry_after: None,
            fields,
        }
    }

    /// The canonical envelope. `Cache-Control: no-store`: errors are never cached.
    pub fn to_reply(&self, trace_id: &str, lang: Lang) -> Reply {
        let mut error = serde_json::json!({
            "code": self.code.as_str(),
            "message": self.code.message(lang),
            "trace_id": trace_id,
        });
        if !self.fields.is_empty() {
            let fields: serde_json::Map<String, serde_json::Value> = self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            error["fields"] = serde_json::Value::Object(fields);
        }
        let mut reply = Reply::json(self.code.status(), &serde_json::json!({ "error": error }))
            .header("cache-control", "no-store")
            .header("content-language", lang.tag());
        if let Some(seconds) = self.retry_after {
            reply.set_header("retry-after", seconds.to_string());
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_exactly_code_message_and_trace_id() {
        let reply = ApiError::new(ErrorCode::NotFound, "no route for /x").to_reply("trace-0001", Lang::En);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(reply.status, 404);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_found", "message": "Not found.", "trace_id": "trace-0001"}})
        );
        assert_eq!(reply.get("cache-control"), Some("no-store"));
    }

    #[test]
    fn the_detail_never_reaches_the_body() {
        let reply = ApiError::new(
            ErrorCode::Internal,
            "db error: relation \"secret_table\" does not exist",
        )
        .to_reply("t-12345678", Lang::PtBr);
        assert!(!String::from_utf8_lossy(&reply.body).contains("secret_table"));
    }

    #[test]
    fn read_only_is_localised_and_asks_clients_to_come_back_later() {
        let pt = ApiError::new(ErrorCode::ReadOnly, "").to_reply("t-12345678", Lang::PtBr);
        let en = ApiError::new(ErrorCode::ReadOnly, "").to_reply("t-12345678", Lang::En);
        assert_eq!(pt.status, 503);
        assert!(String::from_utf8_lossy(&pt.body).contains("somente leitura"));
        assert!(String::from_utf8_lossy(&en.body).contains("read-only"));
        assert!(pt.get("retry-after").is_some_and(|s| s.parse::<u32>().unwrap() > 0));
    }

    #[test]
    fn validation_errors_list_their_fields() {
        let reply = ApiError::validation(vec![("email".into(), "required".into())]).to_reply("t-12345678", Lang::En);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(reply.status, 422);
        assert_eq!(body["error"]["fields"]["email"], "required");
    }

    #[test]
    fn the_openapi_error_code_enum_is_exactly_the_codes() {
        let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).expect("openapi.yaml");
        // components.schemas.ErrorCode: the `- code` lines of its `enum:`.
        let schema = spec.split("\n    ErrorCode:\n").nth(1).expect("an ErrorCode schema");
        let listed: std::collections::BTreeSet<&str> = schema
            .split("\n      enum:\n")
            .nth(1)
            .expect("its enum")
            .lines()
            .map_while(|l| l.strip_prefix("        - "))
            .map(str::trim)
            .collect();
        let codes: std::collections::BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes, "openapi.yaml's ErrorCode enum and ErrorCode::ALL differ");
    }

    #[test]
    fn every_code_has_a_status_in_the_error_range_and_messages_in_both_languages() {
        let mut codes = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!((400..600).contains(&code.status()), "{code:?}");
            assert!(codes.insert(code.as_str()), "{code:?} repeats a wire code");
            assert_ne!(
                code.message(Lang::PtBr),
                code.message(Lang::En),
                "{code:?} is not translated"
            );
        }
    }
}
