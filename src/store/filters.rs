//! How a list filter is written into SQL for each backend (`Dialect`): each filter bare (an
//! index may serve it), hidden (checked, taken for selective) or checked (taken for
//! unselective), so that a statement leaves open only the access path `query` chose. The
//! filters that narrow a list without giving its order (`Narrowing`) are named here.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{ListFilter, TimeField};
use crate::job::Status;

/// The SQL a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A filter that narrows a list but cannot give its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Narrowing {
    KeyPrefix,
    Started,
    Finished,
}

impl Narrowing {
    /// The index that finds the filter's matches.
    pub(super) fn index(self) -> &'static str {
        match self {
            Narrowing::KeyPrefix => "jobs_key",
            Narrowing::Started => "jobs_started",
            Narrowing::Finished => "jobs_finished",
        }
    }

    /// PostgreSQL's functions over a time window's index (migrations 0003 and 0006): the one
    /// counting its matches up to a cap, and the one listing their ids.
    pub(super) fn functions(self) -> Option<(&'static str, &'static str)> {
        match self {
            Narrowing::KeyPrefix => None,
            Narrowing::Started => Some(("ffarm_started_matches", "ffarm_started_ids")),
            Narrowing::Finished => Some(("ffarm_finished_matches", "ffarm_finished_ids")),
        }
    }

    /// The statuses a job this filter can match may have, when its index is per status (a
    /// window on a time is one range per status there).
    pub(super) fn statuses(self) -> Option<&'static [Status]> {
        match self {
            Narrowing::KeyPrefix => None,
            Narrowing::Started => Some(&Status::ALL),
            Narrowing::Finished => Some(&FINISHED),
        }
    }
}

/// The statuses every job with a `finished_at` has: it is set exactly when a job ends.
pub(super) const FINISHED: [Status; 3] = [Status::Succeeded, Status::Failed, Status::Cancelled];

/// How far apart the farm's clocks may be for a time window's walk to miss nothing.
const CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// `%` and `_` match themselves in a LIKE pattern.
pub(super) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// How a filter is written into a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// As is: an index may serve it.
    Bare,
    /// Checked on rows found otherwise, taken for selective: the column is wrapped in a no-op
    /// expression no index matches (unary plus in SQLite; PostgreSQL has no unary plus for
    /// text, so text gets an empty string appended), which planners estimate to keep few rows.
    Hidden,
    /// Checked on a walk newest first, taken for unselective: `CASE WHEN … THEN TRUE ELSE
    /// FALSE END`, which no index serves and PostgreSQL estimates to keep half the rows. The
    /// probe counted many matches; a low estimate would lead the planner to read every row of
    /// a status and sort them instead of walking until a page is full.
    Checked,
}

fn column(dialect: Dialect, name: &str, form: Form) -> String {
    let text = !name.ends_with("_at");
    match (form, dialect, text) {
        (Form::Bare | Form::Checked, _, _) => name.to_string(),
        (Form::Hidden, Dialect::Sqlite, _) => format!("+{name}"),
        (Form::Hidden, Dialect::Postgres, true) => format!("({name} || '')"),
        (Form::Hidden, Dialect::Postgres, false) => format!("({name} + 0)"),
    }
}

/// Starts a filter: ` AND ` and, when checked, the opening of its `CASE`.
fn open<DB: Database>(qb: &mut QueryBuilder<DB>, form: Form) {
    match form {
        Form::Checked => qb.push(" AND CASE WHEN TRUE"),
        _ => qb.push(""),
    };
}

fn close<DB: Database>(qb: &mut QueryBuilder<DB>, form: Form) {
    if form == Form::Checked {
        qb.push(" THEN TRUE ELSE FALSE END");
    }
}

fn time_column(field: TimeField, keys: Keys) -> &'static str {
    match field {
        TimeField::Created => keys.created(),
        TimeField::Started => "started_at",
        TimeField::Finished => "finished_at",
    }
}

fn narrowing_of(field: TimeField) -> Option<Narrowing> {
    match field {
        TimeField::Created => None,
        TimeField::Started => Some(Narrowing::Started),
        TimeField::Finished => Some(Narrowing::Finished),
    }
}

/// The narrowing filter `f`'s time window is: a window on when jobs started or finished.
pub(super) fn window_narrowing(f: &ListFilter) -> Option<Narrowing> {
    narrowing_of(f.time_field).filter(|_| f.windowed())
}

/// Which copy of a job's creation time and id a statement orders, pages and windows on.
/// SQLite's jobs table has one. PostgreSQL's `jobs` view (migration 0007) shows the spec's
/// (`created_at`, `id`) and the state's (`state_created_at`, `state_id`): a walk through a
/// per-status index must order and page on the state's, since the planner does not carry a
/// cursor's `<` on one table over to the other table's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    Spec,
    State,
}

impl Keys {
    pub(super) fn created(self) -> &'static str {
        match self {
            Keys::Spec => "created_at",
            Keys::State => "state_created_at",
        }
    }

    pub(super) fn id(self) -> &'static str {
        match self {
            Keys::Spec => "id",
            Keys::State => "state_id",
        }
    }
}

/// Which access paths a statement leaves open to the planner.
#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    /// Only this narrowing filter's index (finding, probing, counting over a window).
    Only(Narrowing),
    /// The newest-first indexes: created, per status, bucket, preset. Narrowing filters are
    /// checked on the way.
    Ordered,
    /// Any index (counting, where order does not matter).
    Any,
}

impl Access {
    /// The form of a filter that an ordered index can serve (created window, bucket, preset).
    fn ordered(self) -> Form {
        match self {
            Access::Ordered | Access::Any => Form::Bare,
            Access::Only(_) => Form::Hidden,
        }
    }

    /// The form of a narrowing filter.
    fn narrowing(self, n: Narrowing) -> Form {
        match self {
            Access::Any => Form::Bare,
            Access::Only(m) if m == n => Form::Bare,
            Access::Only(_) => Form::Hidden,
            Access::Ordered => Form::Checked,
        }
    }
}

/// Appends `AND …` for every filter of `f` but the statuses, creation times on `keys`.
pub(super) fn push_filters<DB>(
    qb: &mut QueryBuilder<DB>,
    dialect: Dialect,
    f: &ListFilter,
    access: Access,
    keys: Keys,
) where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    if f.windowed() {
        let field = f.time_field;
        let form = narrowing_of(field).map_or(access.ordered(), |n| access.narrowing(n));
        let c = column(dialect, time_column(field, keys), form);
        // Found through its index, a window is written with both ends, so that a planner
        // without statistics takes it for the narrow range it is known to be.
        let finding = narrowing_of(field).is_some()
            && matches!(access, Access::Only(_))
            && form == Form::Bare;
        let since = f.since.map(|t| t.0).or(finding.then_some(i64::MIN));
        let until = f.until.map(|t| t.0).or(finding.then_some(i64::MAX));
        open(qb, form);
        if let Some(since) = since {
            qb.push(format!(" AND {c} >= ")).push_bind(since);
        }
        if let Some(until) = until {
            qb.push(format!(" AND {c} < ")).push_bind(until);
        }
        close(qb, form);
        // A job starts and finishes after it was created: a walk newest first can begin at
        // the window's end. The times come from different machines' clocks (the API's, the
        // worker's), so the walk begins a little later than that, by more than leases (30 s)
        // already allow the clocks to differ.
        if let (Some(until), Form::Checked) = (f.until, form) {
            qb.push(format!(" AND {} < ", keys.created()))
                .push_bind(until.plus(CLOCK_MARGIN).0);
        }
    }
    if let Some(bucket) = &f.bucket {
        let c = column(dialect, "input_bucket", access.ordered());
        qb.push(format!(" AND {c} = ")).push_bind(bucket.clone());
    }
    if let Some(prefix) = &f.key_prefix {
        let form = access.narrowing(Narrowing::KeyPrefix);
        let c = column(dialect, "input_key", form);
        open(qb, form);
        match dialect {
            // A range on the BINARY-collated column is what its index can serve.
            Dialect::Sqlite => {
                qb.push(format!(" AND {c} >= ")).push_bind(prefix.clone());
                qb.push(format!(" AND {c} < "))
                    .push_bind(format!("{prefix}\u{10FFFF}"));
            }
            // LIKE on a text_pattern_ops index, whatever the database's collation.
            Dialect::Postgres => {
                qb.push(format!(" AND {c} LIKE "))
                    .push_bind(format!("{}%", like_escape(prefix)))
                    .push(" ESCAPE '\\'");
            }
        }
        close(qb, form);
    }
    if let Some(preset) = &f.preset {
        let c = column(dialect, "preset", access.ordered());
        qb.push(format!(" AND {c} = ")).push_bind(preset.clone());
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

/// `AND status IN (…)`, through the status index or not.
pub(super) fn push_statuses<DB>(
    qb: &mut QueryBuilder<DB>,
    dialect: Dialect,
    statuses: &[Status],
    indexed: bool,
) where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let form = if indexed { Form::Bare } else { Form::Hidden };
    let c = column(dialect, "status", form);
    qb.push(format!(" AND {c} IN ("));
    let mut sep = qb.separated(", ");
    for s in statuses {
        sep.push_bind(s.as_str().to_string());
    }
    qb.push(")");
}

/// Whether `f` filters on the job's spec (beyond its creation time): otherwise PostgreSQL
/// can count in `job_states` alone.
pub(super) fn on_spec(f: &ListFilter) -> bool {
    f.bucket.is_some() || f.key_prefix.is_some() || f.preset.is_some() || f.search.is_some()
}

/// `FROM jobs`, with SQLite told which index to use when there is only one choice.
pub(super) fn from_jobs(dialect: Dialect, access: Access) -> String {
    match (dialect, access) {
        (Dialect::Sqlite, Access::Only(n)) => format!(" FROM jobs INDEXED BY {}", n.index()),
        _ => " FROM jobs".to_string(),
    }
}
