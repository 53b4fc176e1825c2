-- Who wrote each output key: the job, its attempt and the input it was made from. An attempt
-- reserves its final keys here before it uploads (`JobStore::reserve_outputs`), so that no
-- job replaces an output another input wrote unless it says `overwrite`; a new version of
-- the same input, or another attempt of the same job, takes its keys over. An attempt that
-- fails or is stopped gives its keys back (it takes its uploads back too).

CREATE TABLE output_owners (
    bucket       TEXT NOT NULL,
    key          TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    input_bucket TEXT NOT NULL,
    input_key    TEXT NOT NULL,
    reserved_at  BIGINT NOT NULL,
    PRIMARY KEY (bucket, key)
);
-- Releasing an attempt's keys.
CREATE INDEX output_owners_job ON output_owners (job_id, attempt);

-- Outputs written before this table existed belong to the succeeded job that wrote them last.
INSERT INTO output_owners (bucket, key, job_id, attempt, input_bucket, input_key, reserved_at)
SELECT DISTINCT ON (o->>'bucket', o->>'key')
       o->>'bucket', o->>'key', s.id, t.attempt, s.input_bucket, s.input_key,
       COALESCE(t.finished_at, t.updated_at)
  FROM job_states t
  JOIN job_specs s ON s.id = t.id,
       jsonb_array_elements(CASE WHEN jsonb_typeof(t.outputs::jsonb) = 'array'
                                 THEN t.outputs::jsonb ELSE '[]'::jsonb END) AS o
 WHERE t.status = 'succeeded' AND o->>'bucket' IS NOT NULL AND o->>'key' IS NOT NULL
 ORDER BY o->>'bucket', o->>'key', COALESCE(t.finished_at, t.updated_at) DESC, s.id DESC;
