//! Audit export as CSV or NDJSON, streamed in pages so a large trail never
//! sits in memory. Used by `GET /api/v1/audit/export` and `ecr-portal audit export`.
use crate::clock::format_ms;
use crate::db::{EventFilter, EventRow};
use app::domain::time::Timestamp;
use axum::body::Bytes;
use futures::Stream;
use sqlx::SqlitePool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "csv" => Some(Self::Csv),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            _ => None,
        }
    }
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

pub const CSV_HEADER: &str = "id,at,actor,action,request_id,repository,detail,aws_request_ids,hash\n";

/// Quotes a CSV field when needed, and defuses spreadsheet formulas in free text.
fn csv_field(raw: &str, free_text: bool) -> String {
    let mut v = raw.to_string();
    if free_text && v.starts_with(['=', '+', '-', '@']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"', '\n', '\r']) || v != v.trim() {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

pub fn line(format: Format, e: &EventRow, hash: &str) -> String {
    match format {
        Format::Csv => format!(
            "{},{},{},{},{},{},{},{},{}\n",
            e.id,
            csv_field(&format_ms(e.at), false),
            csv_field(&e.actor, true),
            csv_field(&e.action, false),
            e.request_id.map(|i| i.to_string()).unwrap_or_default(),
            csv_field(e.repository.as_deref().unwrap_or(""), true),
            csv_field(&e.detail, true),
            csv_field(&e.aws_request_ids.join(" "), false),
            hash
        ),
        Format::Ndjson => {
            let mut s = serde_json::json!({
                "id": e.id, "at": Timestamp::from_unix_ms(e.at), "at_ms": e.at, "actor": e.actor, "action": e.action,
                "request_id": e.request_id, "repository": e.repository, "detail": e.detail,
                "aws_request_ids": e.aws_request_ids, "hash": hash,
            })
            .to_string();
            s.push('\n');
            s
        }
    }
}

/// The matching events, oldest first, as chunks of encoded lines.
pub fn stream(
    pool: SqlitePool,
    filter: EventFilter,
    format: Format,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    const PAGE: i64 = 2_000;
    let start = (Some(0i64), format == Format::Csv);
    futures::stream::unfold(start, move |(after, header)| {
        let pool = pool.clone();
        let filter = filter.clone();
        async move {
            let after = after?;
            let rows = match crate::db::events_ascending(&pool, &filter, after, PAGE).await {
                Ok(r) => r,
                Err(e) => return Some((Err(std::io::Error::other(e)), (None, false))),
            };
            let mut chunk = String::new();
            if header {
                chunk.push_str(CSV_HEADER);
            }
            for (e, hash) in &rows {
                chunk.push_str(&line(format, e, hash));
            }
            let next = if (rows.len() as i64) < PAGE { None } else { rows.last().map(|(e, _)| e.id) };
            if chunk.is_empty() {
                return None;
            }
            Some((Ok(Bytes::from(chunk)), (next, false)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain", true), "plain");
        assert_eq!(csv_field("a,b", true), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"", true), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)", true), "'=HYPERLINK(1)");
        assert_eq!(csv_field("line\nbreak", true), "\"line\nbreak\"");
    }
}
