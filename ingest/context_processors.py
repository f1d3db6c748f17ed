from django.http import HttpRequest

from ingest.spool import Backlog, get_spool

# An account is "behind" once its oldest waiting item is older than this.
BEHIND_AFTER_SECONDS = 30


def ingest_backlog(request: HttpRequest) -> dict:
    """The account's own ingestion backlog, for the dashboard banner (read from the spool)."""
    account = getattr(request, "account", None)
    if account is None:
        return {}
    backlog: list[Backlog] = get_spool().backlog(str(account.pk))
    if backlog and backlog[0].oldest_age_seconds >= BEHIND_AFTER_SECONDS:
        return {"ingest_backlog": backlog[0]}
    return {}
