-- The jobs a window on when they started or finished matches, read from that window's own
-- index.
--
-- A list page whose window matches few jobs finds them through the window's per-status index
-- and sorts them (`store/query.rs` counts them first; queued jobs that started, retries
-- waiting, are always found so). Once the tables have statistics, the planner may walk every
-- job newest first instead, checking the window on each: it takes the status and the window
-- for independent, and a window on started_at among queued jobs (none of which started, in a
-- queue of fresh jobs) is estimated at thousands of rows, so a page of none read all 100,000
-- jobs (50 ms). These read only the index; a page then takes its rows by id.
CREATE FUNCTION ffarm_started_ids(statuses TEXT[], since BIGINT, until BIGINT)
RETURNS SETOF TEXT LANGUAGE sql STABLE ROWS 100
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
    SELECT id FROM jobs WHERE status = ANY (statuses) AND started_at >= since AND started_at < until
$$;

CREATE FUNCTION ffarm_finished_ids(statuses TEXT[], since BIGINT, until BIGINT)
RETURNS SETOF TEXT LANGUAGE sql STABLE ROWS 100
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
    SELECT id FROM jobs WHERE status = ANY (statuses) AND finished_at >= since AND finished_at < until
$$;
