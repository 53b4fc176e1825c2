-- ffarm job store, SQLite. Times are microseconds since the Unix epoch.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL,
    input_bucket     TEXT NOT NULL,
    input_key        TEXT NOT NULL,
    preset           TEXT NOT NULL,
    output_bucket    TEXT NOT NULL,
    output_prefix    TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout_seconds  INTEGER NOT NULL,
    on_success       TEXT,
    on_failure       TEXT,
    trigger          TEXT,
    outputs          TEXT,
    progress         TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    retry_base       INTEGER NOT NULL DEFAULT 0,
    worker           TEXT,
    -- Why the last transition happened; copied into job_events by the triggers below.
    last_reason      TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    run_after        INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER
);

-- The queue: claimable jobs by priority, then age.
CREATE INDEX jobs_queue ON jobs (priority DESC, created_at, id) WHERE status = 'queued';
-- Listing, newest first, with or without a status filter.
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
-- Filters by bucket (newest first) and by key prefix (a range on the key).
CREATE INDEX jobs_bucket ON jobs (input_bucket, created_at DESC, id DESC);
CREATE INDEX jobs_key ON jobs (input_key);
-- Jobs held by workers (few at any time): reaping scans them.
CREATE INDEX jobs_active ON jobs (worker) WHERE status IN ('running', 'cancelling');
CREATE INDEX jobs_preset ON jobs (preset, created_at DESC);

CREATE TABLE job_events (
    seq         INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    reason      TEXT NOT NULL,
    worker      TEXT,
    attempt     INTEGER NOT NULL,
    detail      TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, seq);

CREATE TABLE job_attempts (
    job_id      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    error       TEXT,
    stats       TEXT,
    log_lines   INTEGER NOT NULL DEFAULT 0,
    log_bytes   INTEGER NOT NULL DEFAULT 0,
    log_dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE job_logs (
    seq     INTEGER PRIMARY KEY,
    job_id  TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    line    TEXT NOT NULL
);
CREATE INDEX job_logs_job ON job_logs (job_id, attempt, seq);

CREATE TABLE workers (
    id         TEXT PRIMARY KEY NOT NULL,
    host       TEXT NOT NULL,
    address    TEXT,
    slots      INTEGER NOT NULL,
    version    TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    draining   INTEGER NOT NULL DEFAULT 0
);

-- Every transition is an event: the database writes it, so no code path can forget.
CREATE TRIGGER jobs_created_event AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
    VALUES (NEW.id, NEW.updated_at, 'status', NULL, NEW.status, NEW.last_reason, NEW.worker, NEW.attempt);
END;

CREATE TRIGGER jobs_status_event AFTER UPDATE OF status, attempt ON jobs
WHEN OLD.status IS NOT NEW.status OR OLD.attempt IS NOT NEW.attempt
BEGIN
    INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt)
    VALUES (NEW.id, NEW.updated_at, 'status', OLD.status, NEW.status, NEW.last_reason, NEW.worker, NEW.attempt);
END;

-- A claim opens an attempt; leaving running/cancelling closes it.
CREATE TRIGGER jobs_attempt_open AFTER UPDATE OF attempt ON jobs
WHEN NEW.attempt > OLD.attempt
BEGIN
    INSERT INTO job_attempts (job_id, attempt, worker, started_at)
    VALUES (NEW.id, NEW.attempt, NEW.worker, NEW.updated_at);
END;

CREATE TRIGGER jobs_attempt_close AFTER UPDATE OF status ON jobs
WHEN OLD.status IN ('running', 'cancelling') AND NEW.status NOT IN ('running', 'cancelling')
BEGIN
    UPDATE job_attempts
       SET finished_at = NEW.updated_at, outcome = NEW.status, error = NEW.error
     WHERE job_id = NEW.id AND attempt = OLD.attempt;
END;
