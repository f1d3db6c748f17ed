"""Load on the status host, beside a plain static file, with PostgreSQL up and unreachable.

Requests per second and p99 latency, measured with wrk through gunicorn, for:
- a static file served by WhiteNoise (the baseline, measured in the same run),
- the status page `/` and `/api/v2/summary.json` on status.<BASE_DOMAIN>, answered from
  the published snapshot.
Then the same again with gunicorn given a DATABASE_URL where nothing listens. The issue's
target: at least 0.8 times the static-file rate, both ways.

Everything runs on a throwaway embedded PostgreSQL and var directory; only 127.0.0.1 is
loaded, each target for --seconds (default 3) in each of --rounds (default 3).

    python3 -m uv run python bench/status_load.py [--seconds 3] [--rounds 3] [--connections 16]
"""

import argparse
import os
import re
import shutil
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
WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk") or sys.exit("wrk is not available")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def wait_until_up(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("gunicorn exited")
        try:
            urlopen(Request(f"http://127.0.0.1:{port}/static/img/ferry.svg"), timeout=2)
            return
        except HTTPError:
            return
        except (URLError, OSError):
            time.sleep(0.2)
    sys.exit("gunicorn did not answer")


def static_path(port: int) -> str:
    """The stylesheet the staff login links to: a hashed file WhiteNoise serves."""
    page = (
        urlopen(Request(f"http://127.0.0.1:{port}/staff/login/", headers={"Host": "localhost"}))
        .read()
        .decode()
    )
    return re.search(r'rel="stylesheet" href="([^"]+)"', page).group(1)


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(wrk: str, port: int, host: str, path: str, seconds: int, connections: int,
         gzip: bool) -> tuple:  # fmt: skip
    headers = ["-H", f"Host: {host}"] + (["-H", "Accept-Encoding: gzip"] if gzip else [])
    command = [
        wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *headers,
        f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = to_ms(re.search(r"99%\s+(\S+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        sys.exit(f"{host}{path}: {errors.group(1)} error responses\n{output}")
    return rate, p99


def measure(env, database_url, wrk, seconds, connections, rounds) -> list[tuple[str, float, float]]:
    port = free_port()
    server_env = dict(env)
    if database_url:
        server_env["DATABASE_URL"] = database_url
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(WORKERS), "--log-level", "warning"],
        cwd=BASE_DIR, env=server_env,
    )  # fmt: skip
    try:
        wait_until_up(port, server)
        targets = [
            ("static file (WhiteNoise)", "localhost", static_path(port)),
            ("status page /", "status.localhost", "/"),
            ("/api/v2/summary.json", "status.localhost", "/api/v2/summary.json"),
        ]
        for _name, host, path in targets:  # warm every worker's snapshot cache
            for _ in range(WORKERS * 4):
                urlopen(Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host}))
        # Browsers ask for gzip (both WhiteNoise and the snapshot keep .gz twins); curl and
        # many API clients do not. Measure both. Targets take turns, round after round, and
        # the median is kept, so a burst of other work on the machine hits them all alike.
        runs = [(gzip, target) for gzip in (False, True) for target in targets]
        results: dict[int, list[tuple[float, float]]] = {n: [] for n in range(len(runs))}
        for _round in range(rounds):
            for n, (gzip, (_name, host, path)) in enumerate(runs):
                results[n].append(load(wrk, port, host, path, seconds, connections, gzip))
        return [
            (f"{name}{', gzip' if gzip else ''}",
             statistics.median(r for r, _ in results[n]),
             statistics.median(p for _, p in results[n]))
            for n, (gzip, (name, _host, _path)) in enumerate(runs)
        ]  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    wrk = ensure_wrk()
    scratch = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        FERRY_PGDATA=str(scratch / "pgdata"), FERRY_VAR_DIR=str(scratch / "var"),
        STATUS_SNAPSHOT_DIR=str(scratch / "status"),
    )  # fmt: skip
    try:
        manage(env, "migrate_schemas", "--shared", "-v0")
        manage(env, "load_status_demo", "-v0")  # publishes the first snapshot
        manage(env, "collectstatic", "--noinput", "-v0")
        unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/ferry?connect_timeout=2"
        phases = [
            ("PostgreSQL up", measure(env, "", wrk, options.seconds, options.connections, options.rounds)),
            ("PostgreSQL unreachable",
             measure(env, unreachable, wrk, options.seconds, options.connections, options.rounds)),
        ]  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nwrk -t2 -c{options.connections} -d{options.seconds}s, median of {options.rounds} "
          f"interleaved rounds, gunicorn {WORKERS} sync "
          f"workers, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| database | target | requests/s | p99 ms | x static |")
    print("|---|---|---|---|---|")
    for phase, rows in phases:
        for n, (name, rate, p99) in enumerate(rows):
            baseline = rows[n - n % 3][1]  # the static file with the same encoding
            print(f"| {phase} | {name} | {rate:,.0f} | {p99:.1f} | {rate / baseline:.2f} |")


if __name__ == "__main__":
    main()
