//! The list and count queries, built once for both backends from a `ListFilter`: keyset
//! pagination on (created_at, id), newest first, and the choice of how a page is read.
//!
//! A page is newest first, so an index in that order (all jobs, or per status, bucket or
//! preset) finds it by reading about a page of entries. A key prefix or a window on when jobs
//! started or finished cannot give that order. Matching few jobs, such a filter should find
//! them through its own index and sort them; matching many, it should rather be checked while
//! walking the newest-first order, which soon collects a page. Which one holds is counted, not
//! guessed: a probe counts the filter's matches up to `FEW` through its index (cheap whatever
//! the answer), and the query is written so that only the chosen path can be taken. Neither
//! backend's planner has to know the data: SQLite keeps no statistics, PostgreSQL may not
//! have gathered them yet.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::filters::{
    Access, Dialect, FINISHED, Keys, Narrowing, from_jobs, like_escape, on_spec, push_filters,
    push_statuses, window_narrowing,
};
use super::rows::JOB_COLUMNS;
use super::{ListFilter, Result, decode_cursor};
use crate::job::{Status, Timestamp};

/// How a list page is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Find the few jobs this filter matches through its index, then sort them.
    Find(Narrowing),
    /// Walk newest first (per status when the statuses are known), checking every filter.
    Walk,
}

/// At most this many matches: a narrowing filter finds its jobs itself. Fetching and sorting
/// a thousand rows takes about a millisecond; counting them in an index a fraction of that.
pub(crate) const FEW: i64 = 1000;

/// How a page of `f` is read: each narrowing filter's matches counted by running its probe
/// with `count` (on the backend's connection), then [`choose`].
pub(crate) async fn plan<DB, C, Fut>(dialect: Dialect, f: &ListFilter, mut count: C) -> Result<Plan>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    C: FnMut(QueryBuilder<DB>) -> Fut,
    Fut: std::future::Future<Output = Result<i64>>,
{
    let mut probed = Vec::new();
    for n in narrowings(f) {
        probed.push((n, count(probe(dialect, f, n)).await?));
    }
    Ok(choose(&probed))
}

/// The narrowing filters of `f`, each to be probed.
fn narrowings(f: &ListFilter) -> Vec<Narrowing> {
    let mut found = Vec::new();
    if f.key_prefix.is_some() {
        found.push(Narrowing::KeyPrefix);
    }
    found.extend(window_narrowing(f));
    found
}

/// The plan for the probed counts (each at most `FEW`): the first filter with fewer matches
/// finds the page; otherwise walk.
fn choose(probed: &[(Narrowing, i64)]) -> Plan {
    probed
        .iter()
        .find(|(_, n)| *n < FEW)
        .map_or(Plan::Walk, |(n, _)| Plan::Find(*n))
}

/// Counts up to `FEW` matches of one narrowing filter alone, through its index (what the
/// other filters would remove is not known before reading).
fn probe<DB>(dialect: Dialect, f: &ListFilter, n: Narrowing) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let window = window(f);
    let prefix = f.key_prefix.clone().unwrap_or_default();
    if dialect == Dialect::Postgres {
        // The functions of migration 0003, which read the index in order and stop at FEW.
        let mut qb = QueryBuilder::new("SELECT ");
        match n.functions() {
            None => {
                qb.push("ffarm_key_matches(")
                    .push_bind(format!("{}%", like_escape(&prefix)));
            }
            Some((matches, _)) => {
                let statuses = n.statuses().unwrap_or(&Status::ALL);
                push_window_call(&mut qb, matches, statuses, window);
            }
        }
        qb.push(", ").push_bind(FEW).push(")");
        return qb;
    }
    let alone = match n {
        Narrowing::KeyPrefix => ListFilter {
            key_prefix: Some(prefix),
            ..ListFilter::default()
        },
        Narrowing::Started | Narrowing::Finished => ListFilter {
            time_field: f.time_field,
            since: Some(Timestamp(window.0)),
            until: Some(Timestamp(window.1)),
            ..ListFilter::default()
        },
    };
    let access = Access::Only(n);
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1");
    qb.push(from_jobs(dialect, access)).push(" WHERE 1 = 1");
    if let Some(all) = n.statuses() {
        push_statuses(&mut qb, dialect, all, true);
    }
    push_filters(&mut qb, dialect, &alone, access, Keys::Spec);
    qb.push(" LIMIT ").push_bind(FEW).push(") AS few");
    qb
}

/// The ends of `f`'s time window, open ends as far as they go.
fn window(f: &ListFilter) -> (i64, i64) {
    (
        f.since.map_or(i64::MIN, |t| t.0),
        f.until.map_or(i64::MAX, |t| t.0),
    )
}

/// `FUNCTION(statuses, since, until` — the arguments PostgreSQL's window functions begin
/// with; the caller closes the call.
fn push_window_call<DB>(
    qb: &mut QueryBuilder<DB>,
    function: &str,
    statuses: &[Status],
    (since, until): (i64, i64),
) where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    qb.push(format!("{function}(string_to_array("))
        .push_bind(names.join(","))
        .push(", ','), ")
        .push_bind(since)
        .push(", ")
        .push_bind(until);
}

/// One part of a page's query; a page of several parts merges them newest first.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Newest first through an ordered index, for one status or (None) all jobs.
    Walk(Option<Status>),
    /// The matches of a narrowing filter through its index, sorted: for these statuses, or
    /// (empty) any.
    Find(Narrowing, Vec<Status>),
}

/// The parts a page is read in, or None when the filter can match nothing.
fn parts(f: &ListFilter, plan: Plan) -> Option<Vec<Part>> {
    let mut wanted: Vec<Status> = Vec::new();
    for s in &f.statuses {
        if !wanted.contains(s) {
            wanted.push(*s);
        }
    }
    let n = match plan {
        Plan::Find(n) => return Some(vec![Part::Find(n, wanted)]),
        Plan::Walk => window_narrowing(f),
    };
    match n {
        // Walking only ended jobs skips the queued and running ones, which have no
        // finished_at and would all be read and rejected.
        Some(Narrowing::Finished) => {
            let ended: Vec<Status> = if wanted.is_empty() {
                FINISHED.to_vec()
            } else {
                wanted
                    .into_iter()
                    .filter(|s| FINISHED.contains(s))
                    .collect()
            };
            (!ended.is_empty()).then(|| ended.into_iter().map(|s| Part::Walk(Some(s))).collect())
        }
        // Queued jobs have started only if an attempt failed and waits for its retry: few,
        // found through the index, where a walk would read the whole queue.
        Some(Narrowing::Started) => {
            let all = if wanted.is_empty() {
                Status::ALL.to_vec()
            } else {
                wanted
            };
            let mut parts: Vec<Part> = all
                .iter()
                .filter(|s| **s != Status::Queued)
                .map(|s| Part::Walk(Some(*s)))
                .collect();
            if all.contains(&Status::Queued) {
                parts.push(Part::Find(Narrowing::Started, vec![Status::Queued]));
            }
            Some(parts)
        }
        _ if wanted.is_empty() => Some(vec![Part::Walk(None)]),
        _ => Some(wanted.into_iter().map(|s| Part::Walk(Some(s))).collect()),
    }
}

/// How a part's rows come in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// From a newest-first index on `keys`; `by_status` first by the status too, which a part
    /// of one status may be ordered by without changing its order (see `pins_status`).
    Walked { by_status: bool, keys: Keys },
    /// Sorted once found: written so that no index can give the order, or a planner without
    /// statistics may walk every job newest first checking the filter instead (PostgreSQL
    /// did, through the join of migration 0007: 21 ms for a prefix of 100 jobs).
    Sorted,
}

/// `ORDER BY … LIMIT n+1`, newest first.
fn push_page_end<DB>(qb: &mut QueryBuilder<DB>, limit: u32, order: Order)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let order = match order {
        Order::Walked { by_status, keys } => format!(
            "{}{} DESC, {} DESC",
            if by_status { "status, " } else { "" },
            keys.created(),
            keys.id()
        ),
        Order::Sorted => "created_at + 0 DESC, id DESC".to_string(),
    };
    qb.push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(i64::from(limit) + 1);
}

/// Whether a walk of one status is written for the per-status index (PostgreSQL). With
/// statistics, PostgreSQL may walk every job newest first and check the status on each
/// instead, expecting the status's share of jobs to be spread evenly over time; when the
/// newest jobs are all queued (a backlog), a page of succeeded ones then reads the whole
/// backlog first (20,000 rows, 11 ms, seen at 100,000 jobs). Written `status = ANY(…)` the
/// status is no longer a constant to the planner, so `ORDER BY status, created_at …` is an
/// order only that index gives. A bucket or preset filter stays bare beside it: the planner
/// may still find a rare one through its own index and sort. Since the state has a table of
/// its own (migration 0007), the spec's indexes (bucket, preset) can no longer give the
/// per-status order: walked through them, succeeded jobs in a bucket behind a backlog of
/// 20,000 queued ones looked up 20,000 states (33 ms).
fn pins_status(dialect: Dialect) -> bool {
    dialect == Dialect::Postgres
}

/// One page: `SELECT … ORDER BY created_at DESC, id DESC LIMIT n+1` (one extra row tells
/// whether another page follows), read as `plan` says. A page of several parts (a walk per
/// status) is their merge, each part limited to a page.
pub(crate) fn list<DB>(
    dialect: Dialect,
    f: &ListFilter,
    plan: Plan,
    limit: u32,
    cursor: Option<&str>,
) -> Result<QueryBuilder<DB>>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let after = cursor.map(decode_cursor).transpose()?;
    let select = format!("SELECT {JOB_COLUMNS}");
    let part = |qb: &mut QueryBuilder<DB>, part: &Part| {
        let by_status = matches!(part, Part::Walk(Some(_))) && pins_status(dialect);
        let keys = if by_status { Keys::State } else { Keys::Spec };
        match part {
            Part::Walk(status) => {
                qb.push(" FROM jobs WHERE 1 = 1");
                match status {
                    Some(s) if by_status => {
                        qb.push(" AND status = ANY(string_to_array(")
                            .push_bind(s.as_str().to_string())
                            .push(", ','))");
                    }
                    Some(s) => {
                        qb.push(" AND status = ").push_bind(s.as_str().to_string());
                    }
                    None => {}
                }
                push_filters(qb, dialect, f, Access::Ordered, keys);
            }
            Part::Find(n, statuses) => {
                let access = Access::Only(*n);
                qb.push(from_jobs(dialect, access)).push(" WHERE 1 = 1");
                // A time's index is per status: name them, and it is one range each.
                let named = match (n.statuses(), statuses.is_empty()) {
                    (Some(all), true) => Some(all),
                    (Some(_), false) => Some(statuses.as_slice()),
                    (None, _) => None,
                };
                match named {
                    Some(named) => push_statuses(qb, dialect, named, true),
                    None if !statuses.is_empty() => push_statuses(qb, dialect, statuses, false),
                    None => {}
                }
                push_filters(qb, dialect, f, access, keys);
                // PostgreSQL is handed the window's matches from its index (migration 0006):
                // with statistics, it may otherwise walk every job checking the window.
                if let (Dialect::Postgres, Some((_, ids)), Some(named)) =
                    (dialect, n.functions(), named)
                {
                    qb.push(" AND id IN (SELECT ");
                    push_window_call(qb, ids, named, window(f));
                    qb.push("))");
                }
                // And a key prefix's from its index (migration 0007).
                if let (Dialect::Postgres, Narrowing::KeyPrefix, Some(prefix)) =
                    (dialect, n, &f.key_prefix)
                {
                    qb.push(" AND id IN (SELECT ffarm_key_ids(")
                        .push_bind(format!("{}%", like_escape(prefix)))
                        .push("))");
                }
            }
        }
        if let Some((created, id)) = &after {
            qb.push(format!(" AND ({}, {}) < (", keys.created(), keys.id()))
                .push_bind(created.0)
                .push(", ")
                .push_bind(id.clone())
                .push(")");
        }
        let order = match part {
            Part::Find(..) if dialect == Dialect::Postgres => Order::Sorted,
            _ => Order::Walked { by_status, keys },
        };
        push_page_end(qb, limit, order);
    };
    let Some(parts) = parts(f, plan) else {
        let mut qb = QueryBuilder::new(select);
        qb.push(" FROM jobs WHERE 0 = 1");
        return Ok(qb);
    };
    let mut qb;
    if let [one] = parts.as_slice() {
        qb = QueryBuilder::new(select);
        part(&mut qb, one);
    } else {
        qb = QueryBuilder::new("");
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ALL ");
            }
            qb.push(format!("SELECT * FROM ({select}"));
            part(&mut qb, p);
            qb.push(format!(") AS p{i}"));
        }
        let merged = Order::Walked {
            by_status: false,
            keys: Keys::Spec,
        };
        push_page_end(&mut qb, limit, merged);
    }
    Ok(qb)
}

/// Whether `f` narrows the jobs at all (statuses aside, which counts ignore).
fn unfiltered(f: &ListFilter) -> bool {
    !f.windowed() && !on_spec(f)
}

/// Counts by status over the filter, ignoring its statuses. Unfiltered, the running totals
/// the triggers keep; otherwise `SELECT status, COUNT(*) … GROUP BY status` over the
/// matching rows, a time window through its per-status index (counted in the index alone).
pub(crate) fn counts<DB>(dialect: Dialect, f: &ListFilter) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    if unfiltered(f) {
        return QueryBuilder::new(
            "SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM job_counts GROUP BY status",
        );
    }
    let windowed = f.windowed();
    let access = window_narrowing(f).map_or(Access::Any, Access::Only);
    let mut qb = QueryBuilder::new("SELECT status, COUNT(*) AS n");
    if dialect == Dialect::Postgres && !on_spec(f) {
        // Statuses and times only: the states' own table and indexes (migration 0007).
        qb.push(" FROM job_states WHERE 1 = 1");
    } else {
        qb.push(from_jobs(dialect, access)).push(" WHERE 1 = 1");
    }
    // Every status a match can have, named: a time window is then a range per status in an
    // index that holds both columns, already grouped.
    let named = match access {
        Access::Only(n) => n.statuses(),
        _ if windowed => Some(&Status::ALL[..]),
        _ => None,
    };
    if let Some(statuses) = named {
        push_statuses(&mut qb, dialect, statuses, true);
    }
    push_filters(&mut qb, dialect, f, access, Keys::Spec);
    qb.push(" GROUP BY status");
    qb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TimeField;

    fn sql(qb: QueryBuilder<sqlx::Sqlite>) -> String {
        qb.into_sql().as_str().to_string()
    }

    #[test]
    fn the_probe_decides_between_finding_and_walking() {
        use Narrowing::*;
        assert_eq!(choose(&[]), Plan::Walk);
        assert_eq!(choose(&[(KeyPrefix, FEW)]), Plan::Walk);
        assert_eq!(choose(&[(KeyPrefix, FEW - 1)]), Plan::Find(KeyPrefix));
        assert_eq!(
            choose(&[(KeyPrefix, FEW), (Finished, 3)]),
            Plan::Find(Finished)
        );
    }

    #[test]
    fn only_the_chosen_path_is_open() {
        let f = ListFilter {
            statuses: vec![Status::Failed],
            key_prefix: Some("in/".into()),
            bucket: Some("media".into()),
            ..ListFilter::default()
        };
        let find = sql(list(
            Dialect::Sqlite,
            &f,
            Plan::Find(Narrowing::KeyPrefix),
            50,
            None,
        )
        .unwrap());
        assert!(find.contains("INDEXED BY jobs_key"), "{find}");
        assert!(
            find.contains("+status IN") && find.contains("+input_bucket ="),
            "{find}"
        );
        assert!(find.contains(" input_key >="), "{find}");
        let walk = sql(list(Dialect::Sqlite, &f, Plan::Walk, 50, None).unwrap());
        assert!(
            walk.contains(" status = ") && walk.contains(" input_bucket ="),
            "{walk}"
        );
        assert!(walk.contains("CASE WHEN TRUE AND input_key >="), "{walk}");
        let pg = list::<sqlx::Postgres>(Dialect::Postgres, &f, Plan::Walk, 50, None)
            .unwrap()
            .into_sql()
            .as_str()
            .to_string();
        assert!(pg.contains("CASE WHEN TRUE AND input_key LIKE"), "{pg}");
        let pg_find = list::<sqlx::Postgres>(
            Dialect::Postgres,
            &f,
            Plan::Find(Narrowing::KeyPrefix),
            50,
            None,
        )
        .unwrap()
        .into_sql()
        .as_str()
        .to_string();
        assert!(pg_find.contains("(status || '') IN"), "{pg_find}");
    }

    #[test]
    fn a_finished_window_walks_only_ended_jobs() {
        let window = ListFilter {
            time_field: TimeField::Finished,
            since: Some(Timestamp(1)),
            until: Some(Timestamp(2)),
            ..ListFilter::default()
        };
        let walk = sql(list(Dialect::Sqlite, &window, Plan::Walk, 50, None).unwrap());
        assert_eq!(walk.matches("UNION ALL").count(), 2, "{walk}");
        assert!(walk.contains("created_at < "), "{walk}");
        let running = ListFilter {
            statuses: vec![Status::Running],
            ..window
        };
        let none = sql(list(Dialect::Sqlite, &running, Plan::Walk, 50, None).unwrap());
        assert!(none.contains("0 = 1"), "{none}");
    }
}
