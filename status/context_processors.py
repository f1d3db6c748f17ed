from django.http import HttpRequest

from status.snapshot import current_snapshot


def status_banner(request: HttpRequest) -> dict:
    """Active incidents and maintenance that concern this dashboard's account.

    Read from the published snapshot (a file already in memory once per version), so the
    banner costs no query and still shows while PostgreSQL is down.
    """
    account = getattr(request, "account", None)
    if account is None:
        return {}
    snapshot = current_snapshot()
    if snapshot is None:
        return {}
    notices = [
        notice
        for notice in snapshot.banner["notices"]
        if not notice["accounts"] or account.slug in notice["accounts"]
    ]
    return {"status_banner": notices}
