"""How long the README's run command takes until Ferry answers, first and second time.

First run: a new embedded PostgreSQL cluster (initdb), migrations, demo data, gunicorn.
Second run: the same data directory, so the cluster is reused and migrations are no-ops.
Baseline, measured in the same run: `manage.py check` against the same cluster, i.e. the
cost of starting Python, Django and the embedded database with no work on top.

    python3 -m uv run python bench/startup.py [--rounds N]
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(scratch: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(FERRY_PGDATA=str(scratch / "pgdata"), FERRY_VAR_DIR=str(scratch / "var"))
    return env


def time_until_answer(scratch: Path) -> float:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2"],
        cwd=BASE_DIR,
        env=environment(scratch),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    request = Request(f"http://127.0.0.1:{port}/login/", headers={"Host": "acme.localhost"})
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("serve exited before answering")
            try:
                urlopen(request, timeout=2).read()
                return time.perf_counter() - started
            except HTTPError:
                return time.perf_counter() - started
            except (URLError, OSError):
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def time_check(scratch: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=environment(scratch),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds

    first, second, baseline = [], [], []
    for _ in range(rounds):
        scratch = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
        try:
            first.append(time_until_answer(scratch))
            second.append(time_until_answer(scratch))
            baseline.append(time_check(scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    base = statistics.median(baseline)
    print(f"\nStartup of the run command, median of {rounds} rounds\n")
    print(f"| {'what':<52} | {'seconds':>7} | {'x baseline':>10} |")
    print(f"|{'-' * 54}|{'-' * 9}|{'-' * 12}|")
    for label, values in [
        ("baseline: manage.py check (Python, Django, database)", baseline),
        ("first run: initdb, migrate, demo data, gunicorn", first),
        ("second run: reuse data, no-op migrate, gunicorn", second),
    ]:
        median = statistics.median(values)
        print(f"| {label:<52} | {median:>7.2f} | {median / base:>10.1f} |")


if __name__ == "__main__":
    main()
