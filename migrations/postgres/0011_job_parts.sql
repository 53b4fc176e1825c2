-- Split jobs (issue 19): a job whose video is encoded in parts by several workers.
--
-- `job_splits` keeps the plan the job's planning attempt made (where the parts' scratch
-- objects live, the input version finished parts may be reused for, how many parts may run
-- at once, the engine's opaque detail). `job_parts` holds one row per part, keyed by the job
-- and the part's seq, with a job's own state fields: status (the job Status values), its own
-- attempt (the fencing token of its reports), lease, backoff, progress and result. A part is
-- claimable when queued, its run_after passed, every part named in `after` (a JSON array of
-- seqs) succeeded, and its job running at the attempt that planned it (`job_attempt`).
--
-- While split, the job stays `running` in `job_states` but holds no worker and no lease: a
-- job running with a NULL lease is a split job, never reaped (its parts are). Its history,
-- totals and delivery outbox stay the job's (the triggers of 0007 on `job_states`); what its
-- parts do is noted in `job_events` by the store, in the same transaction.
--
-- Every write to a job's parts first locks the job's `job_states` row, so the writes of one
-- job's parts (claims counting the running ones against `max_parallel`, ends deciding the
-- job's fate from its siblings, a cancel) follow one another, and always lock in one order:
-- the job, then its parts.

CREATE TABLE job_splits (
    job_id         TEXT PRIMARY KEY,
    scratch_bucket TEXT NOT NULL,
    scratch_prefix TEXT NOT NULL,
    input_version  TEXT NOT NULL,
    max_parallel   BIGINT NOT NULL,
    detail         TEXT NOT NULL,
    job_attempt    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE job_parts (
    job_id           TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    start_us         BIGINT NOT NULL,
    end_us           BIGINT NOT NULL,
    after            TEXT NOT NULL DEFAULT '[]',
    status           TEXT NOT NULL,
    attempt          BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL,
    -- The attempt count when the part was last queued afresh (a retried job) or handed
    -- back: its automatic retries count from here.
    retry_base       BIGINT NOT NULL DEFAULT 0,
    job_attempt      BIGINT NOT NULL,
    worker           TEXT,
    lease_expires_at BIGINT,
    run_after        BIGINT NOT NULL DEFAULT 0,
    progress         TEXT,
    result           TEXT,
    error            TEXT,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITH (fillfactor = 80); -- room on each page, so heartbeats update in place (HOT)

-- The part queue (few rows at any time): claims scan it, joined to the running jobs.
CREATE INDEX job_parts_queued ON job_parts (job_id, seq) WHERE status = 'queued';
-- Parts held by workers (few at any time): reaping scans them, the registry lists them per
-- worker. Their leases are not indexed, so a heartbeat writes no index.
CREATE INDEX job_parts_worker ON job_parts (worker) WHERE status IN ('running', 'cancelling');
