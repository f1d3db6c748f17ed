"""Ingestion's signals for the status console: how far behind data collection is."""

from ingest.models import DeadLetter
from ingest.spool import get_spool
from status.component_signals import Reading, signal_provider, status_for

# Seconds the oldest accepted item may wait before the drain counts as behind.
AGE_THRESHOLDS = [(3600, "major_outage"), (600, "partial_outage"), (120, "degraded_performance")]


@signal_provider("data-processing")
def drain_backlog(component) -> Reading:
    backlog = get_spool().backlog()
    if not backlog:
        return Reading("Drain backlog", "nothing waiting", "operational")
    waiting = sum(row.waiting for row in backlog)
    oldest = max(row.oldest_age_seconds for row in backlog)
    rate = sum(row.applied_per_second for row in backlog)
    value = f"{waiting:,} items waiting, oldest {oldest:.0f} s, applying {rate:,.0f}/s"
    return Reading("Drain backlog", value, status_for(oldest, AGE_THRESHOLDS))


@signal_provider("data-collection")
def spool_acceptance(component) -> Reading:
    """Data collection is up while the spool takes writes; dead letters say what bounced."""
    spool = get_spool()
    pending = spool.pending_count()
    dead = DeadLetter.objects.waiting().count()
    return Reading("Spool", f"{pending:,} accepted and waiting, {dead:,} dead letters", None)
