-- What the sandbox of a worker's engine processes holds (`sandbox::Level`, as JSON: whether
-- it is on, the Landlock ABI, seccomp, the network namespace, the limits, the layers missing
-- and why). NULL for a worker that reported none, and for every worker registered before.

ALTER TABLE workers ADD COLUMN sandbox TEXT;
