-- Runtime control of schedules, kept apart from their definition so that a
-- config sync never undoes an operator's pause.

-- Set by `refnet-jobs schedule disable NAME`; a paused schedule does not fire
-- whatever its config says, until `schedule enable NAME`.
ALTER TABLE refnet_jobs.schedules ADD COLUMN paused_at timestamptz;

-- Why a schedule is disabled when its definition says so, e.g. "only in
-- production (this runner: development)", so a gated-out schedule is shown as
-- such rather than silently missing.
ALTER TABLE refnet_jobs.schedules ADD COLUMN disabled_reason text;
