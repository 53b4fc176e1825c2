-- A job's state in a table of its own, apart from its spec.
--
-- A claim and a finish change a job's status, which is indexed, so neither can be a HOT
-- update: each writes a new version of the row and an entry into every index the row has.
-- Four of the jobs table's indexes are on what never changes after the submit (created,
-- bucket, key, preset), yet every claim and every finish wrote an entry into each. The spec
-- (what to do, and when it was asked) stays in `job_specs`, the renamed jobs table, with those
-- four indexes; the state (status, attempt, lease, times, progress, results) moves to
-- `job_states`, with the queue, per-status, worker and time-window indexes. A claim or a
-- finish now writes the narrow state row and its indexes only.
--
-- The state row keeps copies of four fields of the spec, written once with it and never
-- changed: `priority` and `created_at` order the queue and the per-status pages from the
-- state's own indexes, `on_success` and `on_failure` let the delivery trigger tell endings
-- with somewhere to go without reading the spec.
--
-- `jobs` becomes a view joining the two on `id`, so every read of whole jobs stays as it was.
-- It also shows the state's copies of `created_at` and `id` (`state_created_at`,
-- `state_id`): a page walked through a per-status index is ordered and paged on those, since
-- PostgreSQL carries the join's equality over to the order but not a cursor's `<` over to the
-- other table's index. Writes name the tables: a submit inserts into both, everything else
-- updates `job_states`. An operator pruning history deletes from `job_states` and
-- `job_specs` (the totals follow the states).

ALTER TABLE jobs RENAME TO job_specs;
ALTER INDEX jobs_pkey RENAME TO job_specs_pkey;
DROP TRIGGER jobs_inserted ON job_specs;
DROP TRIGGER jobs_updated ON job_specs;
DROP TRIGGER jobs_deleted ON job_specs;
DROP TRIGGER jobs_truncated ON job_specs;
DROP TRIGGER jobs_ended_delivery ON job_specs;
DROP INDEX jobs_queue, jobs_status_created, jobs_active, jobs_started, jobs_finished;

CREATE TABLE job_states (
    id               TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    on_success       TEXT,
    on_failure       TEXT,
    outputs          TEXT,
    progress         TEXT,
    error            TEXT,
    attempt          BIGINT NOT NULL DEFAULT 0,
    retry_base       BIGINT NOT NULL DEFAULT 0,
    worker           TEXT,
    last_reason      TEXT NOT NULL DEFAULT '',
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    run_after        BIGINT NOT NULL DEFAULT 0,
    lease_expires_at BIGINT
) WITH (fillfactor = 80); -- room on each page, so heartbeats update in place (HOT)

INSERT INTO job_states (id, status, priority, created_at, on_success, on_failure, outputs,
    progress, error, attempt, retry_base, worker, last_reason, updated_at, started_at,
    finished_at, run_after, lease_expires_at)
SELECT id, status, priority, created_at, on_success, on_failure, outputs, progress, error,
       attempt, retry_base, worker, last_reason, updated_at, started_at, finished_at,
       run_after, lease_expires_at
  FROM job_specs;

ALTER TABLE job_specs
    DROP COLUMN status, DROP COLUMN outputs, DROP COLUMN progress, DROP COLUMN error,
    DROP COLUMN attempt, DROP COLUMN retry_base, DROP COLUMN worker, DROP COLUMN last_reason,
    DROP COLUMN updated_at, DROP COLUMN started_at, DROP COLUMN finished_at,
    DROP COLUMN run_after, DROP COLUMN lease_expires_at;
ALTER TABLE job_specs SET (fillfactor = 100); -- written once

CREATE INDEX jobs_queue ON job_states (priority DESC, created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_status_created ON job_states (status, created_at DESC, id DESC);
CREATE INDEX jobs_active ON job_states (worker) WHERE status IN ('running', 'cancelling');
CREATE INDEX jobs_started ON job_states (status, started_at) WHERE started_at IS NOT NULL;
CREATE INDEX jobs_finished ON job_states (status, finished_at) WHERE finished_at IS NOT NULL;

CREATE VIEW jobs AS
SELECT s.id, t.status, s.input_bucket, s.input_key, s.preset, s.output_bucket,
       s.output_prefix, s.priority, s.max_attempts, s.timeout_seconds, s.on_success,
       s.on_failure, s.trigger, t.outputs, t.progress, t.error, t.attempt, t.retry_base,
       t.worker, t.last_reason, s.created_at, t.updated_at, t.started_at, t.finished_at,
       t.run_after, t.lease_expires_at, t.created_at AS state_created_at, t.id AS state_id
  FROM job_specs s JOIN job_states t ON t.id = s.id;

-- The history and the totals follow the states (the functions of 0005 and 0003 read only
-- state columns).
CREATE TRIGGER jobs_inserted AFTER INSERT ON job_states
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_inserted();
CREATE TRIGGER jobs_updated AFTER UPDATE ON job_states
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_updated();
CREATE TRIGGER jobs_deleted AFTER DELETE ON job_states
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_deleted();
CREATE TRIGGER jobs_truncated AFTER TRUNCATE ON job_states
    FOR EACH STATEMENT EXECUTE FUNCTION ffarm_jobs_truncated();

-- An ending with somewhere to go leaves the job as it ended in the outbox (0004), the spec
-- read beside the state.
CREATE OR REPLACE FUNCTION ffarm_job_ended() RETURNS trigger AS $$
BEGIN
    INSERT INTO deliveries (id, status, input_bucket, input_key, preset, output_bucket,
        output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, trigger,
        outputs, progress, error, attempt, retry_base, worker, created_at, updated_at,
        started_at, finished_at, run_after, lease_expires_at, next_try_at)
    SELECT NEW.id, NEW.status, s.input_bucket, s.input_key, s.preset, s.output_bucket,
        s.output_prefix, s.priority, s.max_attempts, s.timeout_seconds, s.on_success,
        s.on_failure, s.trigger, NEW.outputs, NEW.progress, NEW.error, NEW.attempt,
        NEW.retry_base, NEW.worker, s.created_at, NEW.updated_at, NEW.started_at,
        NEW.finished_at, NEW.run_after, NEW.lease_expires_at, NEW.updated_at
      FROM job_specs s WHERE s.id = NEW.id;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_ended_delivery AFTER UPDATE OF status ON job_states
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND ((NEW.status = 'succeeded' AND NEW.on_success IS NOT NULL)
               OR (NEW.status IN ('failed', 'cancelled') AND NEW.on_failure IS NOT NULL)))
    EXECUTE FUNCTION ffarm_job_ended();

-- The index probes and id lists of 0003 and 0006, on the table that holds their index.
CREATE OR REPLACE FUNCTION ffarm_key_matches(pattern TEXT, cap BIGINT) RETURNS BIGINT
LANGUAGE plpgsql STABLE SET enable_bitmapscan = off AS $$
DECLARE
    n BIGINT;
BEGIN
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM job_specs WHERE input_key LIKE %L '
                   'ESCAPE %L LIMIT %s) AS few', pattern, '\', cap)
       INTO n;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION ffarm_started_matches(statuses TEXT[], since BIGINT, until BIGINT,
    cap BIGINT)
RETURNS BIGINT LANGUAGE sql STABLE SET enable_bitmapscan = off AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM job_states
         WHERE status = ANY (statuses) AND started_at >= since AND started_at < until LIMIT cap
    ) AS few
$$;

CREATE OR REPLACE FUNCTION ffarm_finished_matches(statuses TEXT[], since BIGINT, until BIGINT,
    cap BIGINT)
RETURNS BIGINT LANGUAGE sql STABLE SET enable_bitmapscan = off AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM job_states
         WHERE status = ANY (statuses) AND finished_at >= since AND finished_at < until LIMIT cap
    ) AS few
$$;

CREATE OR REPLACE FUNCTION ffarm_started_ids(statuses TEXT[], since BIGINT, until BIGINT)
RETURNS SETOF TEXT LANGUAGE sql STABLE ROWS 100
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
    SELECT id FROM job_states
     WHERE status = ANY (statuses) AND started_at >= since AND started_at < until
$$;

CREATE OR REPLACE FUNCTION ffarm_finished_ids(statuses TEXT[], since BIGINT, until BIGINT)
RETURNS SETOF TEXT LANGUAGE sql STABLE ROWS 100
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
    SELECT id FROM job_states
     WHERE status = ANY (statuses) AND finished_at >= since AND finished_at < until
$$;

-- The jobs a key prefix matches, read from `jobs_key` alone: with the spec and the state in two
-- tables, a planner without statistics read every spec for a prefix of 100 jobs (20 ms) rather
-- than the index. The pattern is planned as a literal, as in `ffarm_key_matches`.
CREATE FUNCTION ffarm_key_ids(pattern TEXT)
RETURNS SETOF TEXT LANGUAGE plpgsql STABLE ROWS 100
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT id FROM job_specs WHERE input_key LIKE %L ESCAPE %L',
                                pattern, '\');
END
$$;
