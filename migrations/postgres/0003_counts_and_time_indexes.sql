-- Counts by status, and time windows on when jobs started or finished.
--
-- The web page asks for counts by status on every load and again as jobs change; counting the
-- rows each time grows with the history (every finished job stays, and PostgreSQL reads the
-- table to count it). The history triggers now also keep running totals per status, in the
-- same statement as the change, so an unfiltered count reads a few dozen rows. Filtered
-- counts still count the rows their filter selects.
--
-- The totals are spread over shards by the writing connection (pg_backend_pid() % 32): every
-- claim, submit and finish changes the 'queued' or 'running' total, and one row per status
-- would make all of them wait for each other's commit. A connection runs one transaction at a
-- time, so its shard's rows are only contended when two connections share a shard; each
-- statement updates its rows in status order, so two such writers never deadlock.

CREATE TABLE job_counts (
    status TEXT NOT NULL,
    shard  INTEGER NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
);

INSERT INTO job_counts (status, shard, n) SELECT status, 0, COUNT(*) FROM jobs GROUP BY status;

-- The history triggers of 0002, each with the totals added (a CTE that runs with the rest).
CREATE OR REPLACE FUNCTION ffarm_jobs_inserted() RETURNS trigger AS $$
DECLARE
    notified BIGINT;
BEGIN
    WITH ev AS (
        INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
        SELECT id, updated_at, 'status', NULL, status, last_reason, worker, attempt FROM new_rows
    ), counted AS (
        INSERT INTO job_counts AS c (status, shard, n)
        SELECT status, pg_backend_pid() % 32, COUNT(*) FROM new_rows
         GROUP BY status ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n
    )
    -- Ids and statuses need no JSON escaping ([A-Za-z0-9_-] and fixed words).
    SELECT count(pg_notify('ffarm_changes',
                 '{"kind":"status","id":"' || id || '","status":"' || status || '"}'))
      INTO notified FROM new_rows;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION ffarm_jobs_updated() RETURNS trigger AS $$
DECLARE
    notified BIGINT;
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
    ), counted AS (
        INSERT INTO job_counts AS c (status, shard, n)
        SELECT d.status, pg_backend_pid() % 32, SUM(d.n)
          FROM (SELECT status, 1 AS n FROM changed WHERE status <> old_status
                UNION ALL
                SELECT old_status, -1 FROM changed WHERE status <> old_status) AS d
         GROUP BY d.status HAVING SUM(d.n) <> 0 ORDER BY d.status
        ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n
    )
    SELECT count(pg_notify('ffarm_changes',
                 '{"kind":"status","id":"' || id || '","status":"' || status || '"}'))
      INTO notified FROM changed;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- Jobs are never deleted by ffarm; an operator pruning history keeps the totals true.
CREATE FUNCTION ffarm_jobs_deleted() RETURNS trigger AS $$
BEGIN
    INSERT INTO job_counts AS c (status, shard, n)
    SELECT status, pg_backend_pid() % 32, -COUNT(*) FROM old_rows
     GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION ffarm_jobs_truncated() RETURNS trigger AS $$
BEGIN
    DELETE FROM job_counts;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_deleted();
CREATE TRIGGER jobs_truncated AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_truncated();

-- Windows on started_at or finished_at that match few jobs find them here, one range per
-- status (queued jobs have neither time and stay out of the index); with the status in the
-- index, counts over a window can skip the table where the visibility map allows. A claim
-- and a finish already change an indexed column (status), so they are not HOT updates and
-- every index gets an entry; these add one to a claim and two to a finish. Heartbeats change
-- no indexed column and stay HOT.
CREATE INDEX jobs_started ON jobs (status, started_at) WHERE started_at IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;

-- How many jobs (up to `cap`) a key prefix or a time window matches, counted in its index: the
-- store asks before listing, to decide whether the filter finds the page's jobs or is checked
-- while walking newest first. The count must stop at the cap: without statistics the planner
-- takes a range for narrow and reads it with a bitmap scan, which visits every match before
-- the LIMIT applies; with bitmap scans off here it reads the index in order and stops.
-- The key pattern is planned as a literal, so that PostgreSQL derives the index range of the
-- LIKE itself (in the database's own encoding).
CREATE FUNCTION ffarm_key_matches(pattern TEXT, cap BIGINT) RETURNS BIGINT
LANGUAGE plpgsql STABLE SET enable_bitmapscan = off AS $$
DECLARE
    n BIGINT;
BEGIN
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM jobs WHERE input_key LIKE %L ESCAPE %L '
                   'LIMIT %s) AS few', pattern, '\', cap)
       INTO n;
    RETURN n;
END
$$;

CREATE FUNCTION ffarm_started_matches(statuses TEXT[], since BIGINT, until BIGINT, cap BIGINT)
RETURNS BIGINT LANGUAGE sql STABLE SET enable_bitmapscan = off AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM jobs
         WHERE status = ANY (statuses) AND started_at >= since AND started_at < until LIMIT cap
    ) AS few
$$;

CREATE FUNCTION ffarm_finished_matches(statuses TEXT[], since BIGINT, until BIGINT, cap BIGINT)
RETURNS BIGINT LANGUAGE sql STABLE SET enable_bitmapscan = off AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM jobs
         WHERE status = ANY (statuses) AND finished_at >= since AND finished_at < until LIMIT cap
    ) AS few
$$;
