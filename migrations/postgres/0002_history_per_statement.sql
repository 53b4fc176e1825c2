-- The history trigger, once per statement instead of once per row. The store changes many
-- jobs in one statement (batched submits, claims and finishes); a row trigger ran three
-- single-row INSERTs or UPDATEs and a NOTIFY per job, each through its own executor start.
-- Statement triggers see every changed row at once (transition tables) and write the events,
-- the attempts and the notifications as one set-based statement. What is recorded is the
-- same: an event per insert and per change of status or attempt, an attempt opened by a claim
-- and closed when the job leaves its worker, a notification per change, all in the
-- statement's transaction.

DROP TRIGGER jobs_changed ON jobs;
DROP FUNCTION ffarm_job_changed();

CREATE FUNCTION ffarm_jobs_inserted() RETURNS trigger AS $$
DECLARE
    notified BIGINT;
BEGIN
    WITH ev AS (
        INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
        SELECT id, updated_at, 'status', NULL, status, last_reason, worker, attempt FROM new_rows
    )
    -- Ids and statuses need no JSON escaping ([A-Za-z0-9_-] and fixed words).
    SELECT count(pg_notify('ffarm_changes',
                 '{"kind":"status","id":"' || id || '","status":"' || status || '"}'))
      INTO notified FROM new_rows;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION ffarm_jobs_updated() RETURNS trigger AS $$
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
    )
    SELECT count(pg_notify('ffarm_changes',
                 '{"kind":"status","id":"' || id || '","status":"' || status || '"}'))
      INTO notified FROM changed;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_inserted();
CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_updated();
