-- A job's HLS segment key (decision 0082): 16 random bytes, made the first time a job that
-- encrypts runs and kept for every retry, so segments of any attempt decrypt with the key
-- players were given. A table of its own, so no job row, listing, event or delivery ever
-- carries it; it goes with its job.

CREATE TABLE job_keys (
    job_id TEXT PRIMARY KEY REFERENCES job_specs (id) ON DELETE CASCADE,
    key BYTEA NOT NULL CHECK (length(key) = 16),
    created_at BIGINT NOT NULL
);
