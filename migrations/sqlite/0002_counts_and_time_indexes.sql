-- Counts by status, and time windows on when jobs started or finished.
--
-- The web page asks for counts by status on every load and again as jobs change; counting the
-- rows each time grows with the history (every finished job stays). The triggers below keep one
-- row per status up to date instead, in the same transaction as the change, so an unfiltered
-- count reads six rows. Filtered counts still count the rows their filter selects.

CREATE TABLE job_counts (
    status TEXT PRIMARY KEY NOT NULL,
    n      INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO job_counts (status, n)
VALUES ('queued', 0), ('running', 0), ('cancelling', 0), ('succeeded', 0), ('failed', 0),
       ('cancelled', 0);
UPDATE job_counts SET n = (SELECT COUNT(*) FROM jobs WHERE jobs.status = job_counts.status);

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
BEGIN
    UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;
END;

CREATE TRIGGER jobs_count_update AFTER UPDATE OF status ON jobs
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE job_counts SET n = n + 1 WHERE status = NEW.status;
END;

CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
END;

-- Windows on started_at or finished_at that match few jobs find them here, one range per
-- status (queued jobs have neither time and stay out of the index); with the status first,
-- counts over a window read only the index, already grouped. A claim writes started_at and a
-- finish finished_at (and both the status), so each updates these too; heartbeats write
-- neither.
CREATE INDEX jobs_started ON jobs (status, started_at) WHERE started_at IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;
