"""Ferry's own signals beside each component in the staff console.

A provider is a function that looks at one component and returns a `Reading`: what it
measured and, when it has an opinion, the status that measurement suggests. The console
shows the readings and proposes the worst suggested status when it differs from the
component's; nothing changes until a person confirms.

Register a provider in a module named `status_signals.py` in any installed app (the status
app imports them all at start-up):

    from status.component_signals import Reading, signal_provider, status_for

    @signal_provider("data-collection")
    def ingestion_backlog(component) -> Reading:
        backlog = ...
        return Reading("Spool backlog", f"{backlog} events",
                       status_for(backlog, [(1_000_000, "major_outage"), (10_000, "degraded_performance")]))
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from status.models import SEVERITY, Component, ComponentStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    label: str
    value: str
    # A ComponentStatus value, or None when the provider has no opinion (too little data).
    proposed_status: str | None = None


Provider = Callable[[Component], Reading]
_providers: dict[str, list[Provider]] = defaultdict(list)


def signal_provider(component_key: str) -> Callable[[Provider], Provider]:
    """Register the decorated function as a signal for the component with this `key`."""

    def register(provider: Provider) -> Provider:
        if provider not in _providers[component_key]:
            _providers[component_key].append(provider)
        return provider

    return register


def status_for(value: float, thresholds: list[tuple[float, str]]) -> str:
    """The status of the first threshold `value` reaches (list them worst first)."""
    for limit, status in sorted(thresholds, key=lambda t: -SEVERITY[t[1]]):
        if value >= limit:
            return status
    return ComponentStatus.OPERATIONAL


def readings_for(component: Component) -> list[Reading]:
    readings = []
    for provider in _providers.get(component.key, []):
        try:
            readings.append(provider(component))
        except Exception:
            # One broken provider must not take the console down with it.
            log.exception("status signal %s failed", provider.__name__)
            readings.append(Reading(provider.__name__.replace("_", " "), "unavailable"))
    return readings


def proposal(component: Component, readings: list[Reading]) -> str | None:
    """The status the signals suggest, if it differs from the component's; else None.

    Maintenance is a decision people made in advance, so signals never propose over it.
    """
    suggested = [r.proposed_status for r in readings if r.proposed_status]
    if not suggested or component.status == ComponentStatus.UNDER_MAINTENANCE:
        return None
    worst = max(suggested, key=lambda status: SEVERITY[status])
    return worst if worst != component.status else None
