//! The list and count queries, built once for both backends from a `ListFilter`, with keyset
//! pagination on (created_at, id), newest first.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::codec::JOB_COLUMNS;
use super::{ListFilter, Result, TimeField, decode_cursor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// `%` and `_` match themselves in a LIKE pattern.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn push_filters<DB>(qb: &mut QueryBuilder<DB>, dialect: Dialect, f: &ListFilter, with_status: bool)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    qb.push(" WHERE 1 = 1");
    if with_status && !f.statuses.is_empty() {
        qb.push(" AND status IN (");
        let mut sep = qb.separated(", ");
        for s in &f.statuses {
            sep.push_bind(s.as_str().to_string());
        }
        qb.push(")");
    }
    let column = match f.time_field {
        TimeField::Created => "created_at",
        TimeField::Started => "started_at",
        TimeField::Finished => "finished_at",
    };
    if let Some(since) = f.since {
        qb.push(format!(" AND {column} >= ")).push_bind(since.0);
    }
    if let Some(until) = f.until {
        qb.push(format!(" AND {column} < ")).push_bind(until.0);
    }
    if let Some(bucket) = &f.bucket {
        qb.push(" AND input_bucket = ").push_bind(bucket.clone());
    }
    if let Some(prefix) = &f.key_prefix {
        match dialect {
            // A range on the BINARY-collated column uses the index.
            Dialect::Sqlite => {
                qb.push(" AND input_key >= ").push_bind(prefix.clone());
                qb.push(" AND input_key < ")
                    .push_bind(format!("{prefix}\u{10FFFF}"));
            }
            Dialect::Postgres => {
                qb.push(" AND input_key LIKE ")
                    .push_bind(format!("{}%", like_escape(prefix)))
                    .push(" ESCAPE '\\'");
            }
        }
    }
    if let Some(preset) = &f.preset {
        qb.push(" AND preset = ").push_bind(preset.clone());
    }
    if let Some(search) = &f.search {
        let pattern = format!("%{}%", like_escape(&search.to_lowercase()));
        qb.push(" AND (LOWER(id) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR LOWER(input_key) LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

/// `SELECT … FROM jobs WHERE … ORDER BY created_at DESC, id DESC LIMIT n+1`: one extra row
/// tells whether another page follows.
pub(crate) fn list<DB>(
    dialect: Dialect,
    f: &ListFilter,
    limit: u32,
    cursor: Option<&str>,
) -> Result<QueryBuilder<DB>>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
    push_filters(&mut qb, dialect, f, true);
    if let Some(c) = cursor {
        let (created, id) = decode_cursor(c)?;
        qb.push(" AND (created_at, id) < (")
            .push_bind(created.0)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    Ok(qb)
}

/// `SELECT status, COUNT(*) … GROUP BY status` over the filter, ignoring its statuses.
pub(crate) fn counts<DB>(dialect: Dialect, f: &ListFilter) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("SELECT status, COUNT(*) AS n FROM jobs");
    push_filters(&mut qb, dialect, f, false);
    qb.push(" GROUP BY status");
    qb
}
