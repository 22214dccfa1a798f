//! The `slo_burn` cron job: reads the edge SLIs for the last hour and the last six from the
//! Analytics Engine SQL API (the same SQL `scripts/slo` runs, `crate::slo::edge_window_sql`)
//! and raises `slo_fast_burn` when the 5xx rate or the share TTFB burns fast in both windows.
//! Skipped (and says so in its report) until `CF_ACCOUNT_ID` and `CF_ANALYTICS_TOKEN` are set.

use serde_json::{json, Value};

use babybook_jobs::TraceId;

use crate::alerts::Alert;
use crate::config::{AnalyticsSql, Config};
use crate::slo::{self, Sli, Window};
use crate::telemetry::Level;

use super::context::{self, Io};

const QUERY_TIMEOUT_MS: u32 = 10_000;

pub async fn check(io: &Io, config: &Config, trace: &TraceId) -> Result<Value, String> {
    let Some(source) = &config.analytics_sql else {
        return Ok(json!({"skipped": "CF_ACCOUNT_ID or CF_ANALYTICS_TOKEN is not set"}));
    };
    let environment = config.environment.as_str();
    let one_hour = slo::edge_windows(&query(source, &slo::edge_window_sql(environment, 1)).await?)?;
    let six_hours = slo::edge_windows(&query(source, &slo::edge_window_sql(environment, 6)).await?)?;
    let burning = slo::fast_burning(&one_hour, &six_hours);
    let rates = |windows: &[(Sli, Window)]| -> Value {
        windows
            .iter()
            .map(|(sli, w)| {
                (
                    sli.name().to_owned(),
                    json!((w.burn_rate(*sli) * 100.0).round() / 100.0),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let report = json!({
        "burn_1h": rates(&one_hour),
        "burn_6h": rates(&six_hours),
        "fast_burning": burning.iter().map(|s| s.name()).collect::<Vec<_>>(),
    });
    if !burning.is_empty() {
        let names: Vec<&str> = burning.iter().map(|s| s.name()).collect();
        let summary = format!("error budget burning fast: {}", names.join(", "));
        let line = Alert::SloFastBurn.on(context::line(config, trace, Level::Error, &summary));
        super::alerts::raise(io, config, line.field("burn", report.clone()));
    }
    Ok(report)
}

async fn query(source: &AnalyticsSql, sql: &str) -> Result<Value, String> {
    use worker::{Fetch, Headers, Method, Request, RequestInit};
    let headers = Headers::new();
    let _ = headers.set("authorization", &format!("Bearer {}", source.token.expose()));
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(sql.into()));
    let url = format!(
        "{}/accounts/{}/analytics_engine/sql",
        source.api_base, source.account_id
    );
    let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let call = async {
        let mut response = Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
        let status = response.status_code();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            let start: String = text.chars().take(200).collect();
            return Err(format!("the SQL API answered {status}: {start}"));
        }
        serde_json::from_str(&text).map_err(|_| "the SQL API did not answer JSON".to_owned())
    };
    super::timeout::within(QUERY_TIMEOUT_MS, call)
        .await
        .unwrap_or_else(|_| Err(format!("the SQL API did not answer within {QUERY_TIMEOUT_MS} ms")))
}
