"""The gates hold at the moment a promotion starts, not only when they were shown: a rejection recorded in between wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from relpromote import events
from relpromote.errors import Refused
from relpromote.policy import Verdict
from relpromote.project import Project, load_actor
from relpromote.testing.sshd import SshHostFarm
from relpromote.usecases.promote import PromoteRequest, promote
from tests.helpers import make_app_source, make_project
from tests.integration.conftest import write_inventories
from tests.integration.test_promote import build, ledger_payloads, live_version


def test_a_rejection_recorded_after_the_gates_were_shown_stops_the_promotion_before_anything_starts(
    tmp_path: Path, farm: SshHostFarm
) -> None:
    project = make_project(tmp_path / "proj")
    write_inventories(project, farm)
    build(project, make_app_source(tmp_path / "app"), "1.0.0", "first")
    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    project.run("accept", "1.0.0", "--env", "qa", identity="quinn", check=True)

    shown: list[Verdict] = []

    def qa_rejects_meanwhile(verdict: Verdict) -> None:
        # Between the gates the operator saw pass and the start of the run, QA rejects the release.
        shown.append(verdict)
        project.run("reject", "1.0.0", "--env", "qa", "--reason", "data loss found late", identity="quinn", check=True)

    opened = Project.open(project.cwd / "relpromote.yml")
    try:
        identity, actor = load_actor(opened, str(project.cwd / ".keys" / "oscar.key"))
        with pytest.raises(Refused) as refused:
            promote(opened, identity, actor, PromoteRequest("1.0.0", "deployment"), on_plan=qa_rejects_meanwhile)
    finally:
        opened.close()
    assert shown and shown[0].allowed  # every gate had passed when they were shown
    assert "not-rejected" in str(refused.value) and "data loss found late" in str(refused.value)
    assert not any(p["environment"] == "deployment" for p in ledger_payloads(project, events.PROMOTION_STARTED))
    assert not any(p["environment"] == "deployment" for p in ledger_payloads(project, events.PROMOTION_FINISHED))
    assert live_version(farm, "deployment-app-1") is None
    reopened = Project.open(project.cwd / "relpromote.yml")
    try:
        assert reopened.ledger.current("deployment") is None  # the environment's lock was given back
    finally:
        reopened.close()
