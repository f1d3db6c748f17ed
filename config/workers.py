"""What every long-running worker command shares: stopping cleanly when told to."""

import signal
from collections.abc import Callable


def stop_requested() -> Callable[[], bool]:
    """Install SIGTERM/SIGINT handlers; the returned function says whether one arrived.

    Workers check it between rounds, so a batch in progress is finished (or, if killed
    harder, left to its lease) rather than cut off halfway through a transaction.
    """
    received: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, remember)
    signal.signal(signal.SIGINT, remember)
    return lambda: bool(received)
