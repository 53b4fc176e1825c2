-- The delivery outbox: every ending of a job with somewhere to go (a success with an
-- on_success URL, a failure or cancellation with an on_failure URL; defaults are filled in
-- when a job is made) leaves a row here in the same transaction as the ending itself, so a
-- crash between the two cannot lose a delivery; an ending with nowhere to go costs nothing.
-- Any worker delivers the rows (holding each while it tries, FOR UPDATE SKIP LOCKED), records
-- every try in the job's history, and removes a row once it is delivered or given up.
--
-- A row keeps the job as it was when it ended, in the jobs table's own columns (the same
-- codec reads both), so what is delivered is that ending even if the job is retried later.
--
-- The trigger is a row trigger with a WHEN clause rather than a statement trigger over
-- transition tables: those cannot be limited to updates of `status`, and would run for
-- every heartbeat; this one runs only for the rows that end.

CREATE TABLE deliveries (
    delivery_id      BIGSERIAL PRIMARY KEY,
    -- The job as it ended.
    id               TEXT NOT NULL,
    status           TEXT NOT NULL,
    input_bucket     TEXT NOT NULL,
    input_key        TEXT NOT NULL,
    preset           TEXT NOT NULL,
    output_bucket    TEXT NOT NULL,
    output_prefix    TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    max_attempts     BIGINT NOT NULL,
    timeout_seconds  BIGINT NOT NULL,
    on_success       TEXT,
    on_failure       TEXT,
    trigger          TEXT,
    outputs          TEXT,
    progress         TEXT,
    error            TEXT,
    attempt          BIGINT NOT NULL,
    retry_base       BIGINT NOT NULL,
    worker           TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    run_after        BIGINT NOT NULL,
    lease_expires_at BIGINT,
    -- The delivery.
    tries            BIGINT NOT NULL DEFAULT 0,
    next_try_at      BIGINT NOT NULL,
    held_by          TEXT,
    held_until       BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_try_at);

CREATE FUNCTION ffarm_job_ended() RETURNS trigger AS $$
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
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_ended_delivery AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND ((NEW.status = 'succeeded' AND NEW.on_success IS NOT NULL)
               OR (NEW.status IN ('failed', 'cancelled') AND NEW.on_failure IS NOT NULL)))
    EXECUTE FUNCTION ffarm_job_ended();
