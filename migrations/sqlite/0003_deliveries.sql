-- The delivery outbox: every ending of a job with somewhere to go (a success with an
-- on_success URL, a failure or cancellation with an on_failure URL; defaults are filled in
-- when a job is made) leaves a row here in the same transaction as the ending itself, so a
-- crash between the two cannot lose a delivery; an ending with nowhere to go costs nothing.
-- Any worker delivers the rows (holding each while it tries), records every try in the job's
-- history, and removes a row once it is delivered or given up.
--
-- A row keeps the job as it was when it ended, in the jobs table's own columns (the same
-- codec reads both), so what is delivered is that ending even if the job is retried later.

CREATE TABLE deliveries (
    delivery_id      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: part of the idempotency key
    -- The job as it ended.
    id               TEXT NOT NULL,
    status           TEXT NOT NULL,
    input_bucket     TEXT NOT NULL,
    input_key        TEXT NOT NULL,
    preset           TEXT NOT NULL,
    output_bucket    TEXT NOT NULL,
    output_prefix    TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    timeout_seconds  INTEGER NOT NULL,
    on_success       TEXT,
    on_failure       TEXT,
    trigger          TEXT,
    outputs          TEXT,
    progress         TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL,
    retry_base       INTEGER NOT NULL,
    worker           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    run_after        INTEGER NOT NULL,
    lease_expires_at INTEGER,
    -- The delivery.
    tries            INTEGER NOT NULL DEFAULT 0,
    next_try_at      INTEGER NOT NULL,
    held_by          TEXT,
    held_until       INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_try_at);

CREATE TRIGGER jobs_ended_delivery AFTER UPDATE OF status ON jobs
WHEN OLD.status IS NOT NEW.status
    AND ((NEW.status = 'succeeded' AND NEW.on_success IS NOT NULL)
         OR (NEW.status IN ('failed', 'cancelled') AND NEW.on_failure IS NOT NULL))
BEGIN
    INSERT INTO deliveries (id, status, input_bucket, input_key, preset, output_bucket,
        output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, trigger,
        outputs, progress, error, attempt, retry_base, worker, created_at, updated_at,
        started_at, finished_at, run_after, lease_expires_at, next_try_at)
    VALUES (NEW.id, NEW.status, NEW.input_bucket, NEW.input_key, NEW.preset, NEW.output_bucket,
        NEW.output_prefix, NEW.priority, NEW.max_attempts, NEW.timeout_seconds, NEW.on_success,
        NEW.on_failure, NEW.trigger, NEW.outputs, NEW.progress, NEW.error, NEW.attempt,
        NEW.retry_base, NEW.worker, NEW.created_at, NEW.updated_at, NEW.started_at,
        NEW.finished_at, NEW.run_after, NEW.lease_expires_at, NEW.updated_at);
END;
