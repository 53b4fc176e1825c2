-- Notifications leave the write transactions.
--
-- A transaction that has called NOTIFY takes one database-wide lock when it commits and holds
-- it until its commit is flushed, so that notifications are queued in commit order. With the
-- history triggers notifying, every submit, claim and finish therefore committed one after the
-- other, each waiting for the previous one's WAL flush: more connections added nothing, and
-- the commits could not share a flush. The store now announces what it changed after the
-- commit, from a statement of its own that writes nothing (so it holds the lock only while
-- queueing the notifications, not through a flush). The triggers keep everything else: the
-- events, the attempts, the totals, in the statement's own transaction.

CREATE OR REPLACE FUNCTION ffarm_jobs_inserted() RETURNS trigger AS $$
BEGIN
    WITH ev AS (
        INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
        SELECT id, updated_at, 'status', NULL, status, last_reason, worker, attempt FROM new_rows
    )
    INSERT INTO job_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid() % 32, COUNT(*) FROM new_rows
     GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION ffarm_jobs_updated() RETURNS trigger AS $$
BEGIN
    WITH changed AS MATERIALIZED (
        SELECT n.id, n.updated_at, n.status, n.last_reason, n.worker, n.attempt, n.error,
               o.status AS old_status, o.attempt AS old_attempt
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE n.status IS DISTINCT FROM o.status OR n.attempt IS DISTINCT FROM o.attempt
    ), ev AS (
        INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
        SELECT id, updated_at, 'status', old_status, status, last_reason, worker, attempt
          FROM changed
    ), opened AS (
        INSERT INTO job_attempts (job_id, attempt, worker, started_at)
        SELECT id, attempt, worker, updated_at FROM changed WHERE attempt > old_attempt
    ), closed AS (
        UPDATE job_attempts a
           SET finished_at = c.updated_at, outcome = c.status, error = c.error
          FROM changed c
         WHERE a.job_id = c.id AND a.attempt = c.old_attempt
           AND c.old_status IN ('running', 'cancelling')
           AND c.status NOT IN ('running', 'cancelling')
    )
    INSERT INTO job_counts AS c (status, shard, n)
    SELECT d.status, pg_backend_pid() % 32, SUM(d.n)
      FROM (SELECT status, 1 AS n FROM changed WHERE status <> old_status
            UNION ALL
            SELECT old_status, -1 FROM changed WHERE status <> old_status) AS d
     GROUP BY d.status HAVING SUM(d.n) <> 0 ORDER BY d.status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
