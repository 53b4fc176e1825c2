-- What a job asks of its media beyond its presets (`job::MediaOptions`, as JSON: a clip of
-- the input, …); NULL when it asks nothing, as for every job made before. Part of the spec;
-- the delivery outbox keeps it with the rest of the job.

ALTER TABLE jobs ADD COLUMN media TEXT;
ALTER TABLE deliveries ADD COLUMN media TEXT;

DROP TRIGGER jobs_ended_delivery;
CREATE TRIGGER jobs_ended_delivery AFTER UPDATE OF status ON jobs
WHEN OLD.status IS NOT NEW.status
    AND ((NEW.status = 'succeeded' AND NEW.on_success IS NOT NULL)
         OR (NEW.status IN ('failed', 'cancelled') AND NEW.on_failure IS NOT NULL))
BEGIN
    INSERT INTO deliveries (id, status, input_bucket, input_key, preset, output_bucket,
        output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, trigger,
        outputs, progress, error, attempt, retry_base, worker, created_at, updated_at,
        started_at, finished_at, run_after, lease_expires_at, next_try_at, overwrite,
        chunking, media)
    VALUES (NEW.id, NEW.status, NEW.input_bucket, NEW.input_key, NEW.preset, NEW.output_bucket,
        NEW.output_prefix, NEW.priority, NEW.max_attempts, NEW.timeout_seconds, NEW.on_success,
        NEW.on_failure, NEW.trigger, NEW.outputs, NEW.progress, NEW.error, NEW.attempt,
        NEW.retry_base, NEW.worker, NEW.created_at, NEW.updated_at, NEW.started_at,
        NEW.finished_at, NEW.run_after, NEW.lease_expires_at, NEW.updated_at, NEW.overwrite,
        NEW.chunking, NEW.media);
END;
