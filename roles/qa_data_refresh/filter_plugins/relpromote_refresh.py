"""Filters that let the role ask relpromote's pure core for decisions: the plan and the dry-run summary.

They run on the controller, where relpromote is installed (the role ships inside it), so the
masking rules are interpreted by exactly one implementation: relpromote.masking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _plain(value: Any) -> Any:
    """Ansible 2.19 hands filters lazy containers whose items pydantic would see unresolved: copy them out."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _need_relpromote() -> None:
    """relpromote's core, imported when a filter is used: ansible-playbook imports every filter plugin of the role at
    start-up, and pydantic would cost every refresh 0.3 s (quiet controller) to 1 s (under load) before its first task,
    though the role itself plans in its action plugin."""
    try:
        import relpromote.errors
        import relpromote.refresh  # noqa: F401
    except ImportError as exc:  # pragma: no cover - only when the role is used without relpromote
        raise AnsibleFilterError(f"the qa_data_refresh role needs relpromote on the controller ({exc}); pip install relpromote") from None


def refresh_plan(
    catalog: dict[str, Any], masking: dict[str, Any] | None, carry_over: list[str] | None = None, qa_database: str | None = None
) -> dict[str, Any]:
    """catalog (the module's inspect result) + masking rules -> the plan the module executes."""
    _need_relpromote()
    from relpromote.errors import RelpromoteError
    from relpromote.refresh import Catalog, parse_masking, plan_refresh

    try:
        plan = plan_refresh(
            Catalog.model_validate(_plain(catalog)),
            parse_masking(_plain(masking)),
            carry_over=_plain(carry_over or []),
            qa_database=qa_database or None,
        )
    except RelpromoteError as exc:
        raise AnsibleFilterError(f"qa_data_refresh: {exc.message}") from None
    return plan.for_module()


def refresh_dry_run(plan: dict[str, Any], qa: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of a dry run: tables with their rows, masked columns, warnings."""
    _need_relpromote()
    from relpromote.refresh import dry_run_report

    return dry_run_report(_plain(plan), _plain(qa) if qa else None)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"relpromote_refresh_plan": refresh_plan, "relpromote_refresh_dry_run": refresh_dry_run}
