"""The names of roles/release_deploy's tasks that relpromote reads outcomes by (keep them in step with
roles/release_deploy/tasks/main.yml): one place for the runner adapter, which reads them from the events, and the
rollback rules, which decide by them."""

from __future__ import annotations

# The task that switches `current` (release_live): a host that started it and then never said what it runs (it became
# unreachable, the run was killed) may have switched, so it is rolled back too.
SWITCH_TASK = "Switch the current link to the release"
# The task a failed health check fails the host under: the release itself failed verification (not the
# infrastructure), so it is marked and can never be promoted again.
HEALTH_TASK = "Check that the application answers the release's version"
# The task a failed restart, pruning or bad input fails the host under.
RESTART_TASK = "Restart the application if needed, wait until it answers the release's version, prune"
# The task each failed step of release_live (its result's `failure`) fails the host under; the others (switch, lease)
# fail it under SWITCH_TASK.
STEP_TASKS = {"health": HEALTH_TASK, **dict.fromkeys(("restart", "prune", "inputs"), RESTART_TASK)}
