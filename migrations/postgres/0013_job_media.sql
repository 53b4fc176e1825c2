-- What a job asks of its media beyond its presets (`job::MediaOptions`, as JSON: a clip of
-- the input, …); NULL when it asks nothing, as for every job made before. Part of the spec,
-- so it lives in `job_specs`; the `jobs` view shows it (a new last column), and the delivery
-- outbox keeps it with the rest of the job.

ALTER TABLE job_specs ADD COLUMN media TEXT;
ALTER TABLE deliveries ADD COLUMN media TEXT;

CREATE OR REPLACE VIEW jobs AS
SELECT s.id, t.status, s.input_bucket, s.input_key, s.preset, s.output_bucket,
       s.output_prefix, s.priority, s.max_attempts, s.timeout_seconds, s.on_success,
       s.on_failure, s.trigger, t.outputs, t.progress, t.error, t.attempt, t.retry_base,
       t.worker, t.last_reason, s.created_at, t.updated_at, t.started_at, t.finished_at,
       t.run_after, t.lease_expires_at, t.created_at AS state_created_at, t.id AS state_id,
       s.overwrite, s.chunking, s.media
  FROM job_specs s JOIN job_states t ON t.id = s.id;

CREATE OR REPLACE FUNCTION ffarm_job_ended() RETURNS trigger AS $$
BEGIN
    INSERT INTO deliveries (id, status, input_bucket, input_key, preset, output_bucket,
        output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, trigger,
        outputs, progress, error, attempt, retry_base, worker, created_at, updated_at,
        started_at, finished_at, run_after, lease_expires_at, next_try_at, overwrite,
        chunking, media)
    SELECT NEW.id, NEW.status, s.input_bucket, s.input_key, s.preset, s.output_bucket,
        s.output_prefix, s.priority, s.max_attempts, s.timeout_seconds, s.on_success,
        s.on_failure, s.trigger, NEW.outputs, NEW.progress, NEW.error, NEW.attempt,
        NEW.retry_base, NEW.worker, s.created_at, NEW.updated_at, NEW.started_at,
        NEW.finished_at, NEW.run_after, NEW.lease_expires_at, NEW.updated_at, s.overwrite,
        s.chunking, s.media
      FROM job_specs s WHERE s.id = NEW.id;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
