-- Who wrote each output key: the job, its attempt and the input it was made from. An attempt
-- reserves its final keys here before it uploads (`JobStore::reserve_outputs`), so that no
-- job replaces an output another input wrote unless it says `overwrite`; a new version of
-- the same input, or another attempt of the same job, takes its keys over. An attempt that
-- fails or is stopped gives its keys back (it takes its uploads back too).

CREATE TABLE output_owners (
    bucket       TEXT NOT NULL,
    key          TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    input_bucket TEXT NOT NULL,
    input_key    TEXT NOT NULL,
    reserved_at  INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
-- Releasing an attempt's keys.
CREATE INDEX output_owners_job ON output_owners (job_id, attempt);

-- Outputs written before this table existed belong to the succeeded job that wrote them last.
INSERT OR REPLACE INTO output_owners (bucket, key, job_id, attempt, input_bucket, input_key,
    reserved_at)
SELECT json_extract(o.value, '$.bucket'), json_extract(o.value, '$.key'), j.id, j.attempt,
       j.input_bucket, j.input_key, COALESCE(j.finished_at, j.updated_at)
  FROM jobs j, json_each(CASE WHEN json_valid(j.outputs) THEN j.outputs ELSE '[]' END) o
 WHERE j.status = 'succeeded'
   AND json_extract(o.value, '$.bucket') IS NOT NULL
   AND json_extract(o.value, '$.key') IS NOT NULL
 ORDER BY COALESCE(j.finished_at, j.updated_at), j.id;
