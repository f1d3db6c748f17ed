"""Facts about processes on this machine that more than one part of Ferry needs."""

import os


def alive(pid: int) -> bool:
    """Is a process with this id running here (whoever owns it)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
