-- ffarm job store, PostgreSQL. Times are microseconds since the Unix epoch (as in SQLite,
-- so both backends share one row codec).

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    input_bucket     TEXT NOT NULL,
    input_key        TEXT NOT NULL,
    preset           TEXT NOT NULL,
    output_bucket    TEXT NOT NULL,
    output_prefix    TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    timeout_seconds  BIGINT NOT NULL,
    on_success       TEXT,
    on_failure       TEXT,
    trigger          TEXT,
    outputs          TEXT,
    progress         TEXT,
    error            TEXT,
    attempt          BIGINT NOT NULL DEFAULT 0,
    retry_base       BIGINT NOT NULL DEFAULT 0,
    worker           TEXT,
    last_reason      TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    run_after        BIGINT NOT NULL DEFAULT 0,
    lease_expires_at BIGINT
) WITH (fillfactor = 80); -- room on each page, so heartbeats update in place (HOT)

CREATE INDEX jobs_queue ON jobs (priority DESC, created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_bucket ON jobs (input_bucket, created_at DESC, id DESC);
CREATE INDEX jobs_key ON jobs (input_key text_pattern_ops);
-- Jobs held by workers (few at any time): reaping scans them. Leases are deliberately not
-- indexed, so a heartbeat changes no indexed column and is a HOT update.
CREATE INDEX jobs_active ON jobs (worker) WHERE status IN ('running', 'cancelling');
CREATE INDEX jobs_preset ON jobs (preset, created_at DESC);

CREATE TABLE job_events (
    seq         BIGSERIAL PRIMARY KEY,
    job_id      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    reason      TEXT NOT NULL,
    worker      TEXT,
    attempt     BIGINT NOT NULL,
    detail      TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, seq);

CREATE TABLE job_attempts (
    job_id      TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    worker      TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT,
    error       TEXT,
    stats       TEXT,
    log_lines   BIGINT NOT NULL DEFAULT 0,
    log_bytes   BIGINT NOT NULL DEFAULT 0,
    log_dropped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE job_logs (
    seq     BIGSERIAL PRIMARY KEY,
    job_id  TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    line    TEXT NOT NULL
);
CREATE INDEX job_logs_job ON job_logs (job_id, attempt, seq);

CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    address    TEXT,
    slots      BIGINT NOT NULL,
    version    TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    draining   BOOLEAN NOT NULL DEFAULT FALSE
);

-- Every transition is an event and a notification, written in the same transaction as the
-- change itself; attempts open on claim and close when the job leaves its worker.
CREATE FUNCTION ffarm_job_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
        VALUES (NEW.id, NEW.updated_at, 'status', NULL, NEW.status, NEW.last_reason, NEW.worker, NEW.attempt);
    ELSIF NEW.status IS DISTINCT FROM OLD.status OR NEW.attempt IS DISTINCT FROM OLD.attempt THEN
        INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
        VALUES (NEW.id, NEW.updated_at, 'status', OLD.status, NEW.status, NEW.last_reason, NEW.worker, NEW.attempt);
        IF NEW.attempt > OLD.attempt THEN
            INSERT INTO job_attempts (job_id, attempt, worker, started_at)
            VALUES (NEW.id, NEW.attempt, NEW.worker, NEW.updated_at);
        END IF;
        IF OLD.status IN ('running', 'cancelling') AND NEW.status NOT IN ('running', 'cancelling') THEN
            UPDATE job_attempts
               SET finished_at = NEW.updated_at, outcome = NEW.status, error = NEW.error
             WHERE job_id = NEW.id AND attempt = OLD.attempt;
        END IF;
    ELSE
        RETURN NULL;
    END IF;
    -- Ids and statuses need no JSON escaping ([A-Za-z0-9_-] and fixed words).
    PERFORM pg_notify('ffarm_changes',
        '{"kind":"status","id":"' || NEW.id || '","status":"' || NEW.status || '"}');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE OF status, attempt ON jobs
    FOR EACH ROW EXECUTE FUNCTION ffarm_job_changed();
