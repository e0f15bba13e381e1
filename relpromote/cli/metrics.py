"""`relpromote metrics [--env ENV] [--since WHEN]`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape

from relpromote.cli._common import Session, pass_session


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 60:.0f} min"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"


@click.command()
@click.option("--env", "env_name", metavar="ENV", help="Only this environment (default: every environment of the path).")
@click.option("--since", "since", metavar="WHEN", help="Start of the period: 2026-11-01, 2026-11-01T09:00, or 30d / 12w ago (default 30d).")
@pass_session
def metrics(session: Session, env_name: str | None, since: str | None) -> None:
    """Delivery metrics: deployment frequency, lead time for changes, change failure rate, time to restore."""
    from relpromote.metrics import DEFINITIONS
    from relpromote.usecases.metrics import project_metrics

    data = project_metrics(session.project, env_name, since)

    def human(console: Console) -> None:
        console.print(f"from {data['since'][:16]} to {data['until'][:16]} UTC", markup=False)
        for figures in data["environments"]:
            frequency, lead = figures["deployment_frequency"], figures["lead_time"]
            failures, restore = figures["change_failure_rate"], figures["time_to_restore"]
            rate = "-" if failures["rate"] is None else f"{failures['rate']:.0%}"
            console.print(f"\n[bold]{escape(figures['environment'])}[/]", markup=True)
            console.print(f"  deployment frequency  {frequency['deployments']} deployments, {frequency['per_week']:.2f} per week", markup=False)
            console.print(f"  lead time for changes median {_hours(lead['median_hours'])}, mean {_hours(lead['mean_hours'])} "
                          f"over {lead['change_count']} changes", markup=False)
            console.print(f"  change failure rate   {rate} ({failures['failed']} of {failures['deployments']} promotions)", markup=False)
            console.print(f"  time to restore       median {_hours(restore['median_hours'])}, mean {_hours(restore['mean_hours'])} "
                          f"over {restore['restored']} restored; {len(restore['open'])} open", markup=False)
        console.print("\nDefinitions:", markup=False)
        for name, text in DEFINITIONS.items():
            console.print(f"  {name.replace('_', ' ')}: {text}", markup=False)

    session.emit(data, human)
