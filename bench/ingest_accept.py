"""Accept rate: events per second accepted over HTTP through gunicorn, batched and single,
with p50/p99 latency, beside a static file served by whitenoise in the same run.

Accepting means validated and fsync'd into the local spool (not yet applied). Uses wrk
(installed with apt-get when missing); only 127.0.0.1 is loaded, for a bounded time.

    python3 -m uv run python bench/ingest_accept.py [--seconds 10] [--workers 4]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from base64 import b64encode
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database  # noqa: E402

LUA = """
wrk.method = "{method}"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{auth}"
"""


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def v2_batch(size: int) -> str:
    operations = [
        {"type": "person", "identifiers": {"id": f"p{n % 1000}"}, "action": "event",
         "name": "purchase", "attributes": {"price": n, "sku": f"sku-{n % 50}"}}
        for n in range(size)
    ]  # fmt: skip
    return json.dumps({"batch": operations})


def run_wrk(url: str, seconds: int, connections: int, script: Path | None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)

    def percentile(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rate": rate, "p50": percentile("50"), "p99": percentile("99"),
            "errors": int(non_2xx.group(1)) if non_2xx else 0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args()
    ensure_wrk()
    with ferry_database() as (folder, url, key):
        env = {**os.environ, "DATABASE_URL": url, "FERRY_VAR_DIR": str(folder / "var"),
               "INGEST_SPOOL_PATH": str(folder / "spool.sqlite3"), "LOG_LEVEL": "WARNING"}  # fmt: skip
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                       cwd=BASE_DIR, env=env, check=True)  # fmt: skip
        port = 18000 + os.getpid() % 1000
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(options.workers), "--log-level", "warning"],
            cwd=BASE_DIR, env=env,
        )  # fmt: skip
        try:
            time.sleep(3)
            auth = "Basic " + b64encode(f"{key['site_id']}:{key['api_key']}".encode()).decode()
            base = f"http://127.0.0.1:{port}"
            results = [("static file (whitenoise), baseline", 1, run_wrk(
                f"{base}/static/img/ferry.svg", options.seconds, 16, None))]  # fmt: skip
            scenarios = [
                ("single event, POST /customers/{id}/events", 1, f"{base}/api/v1/customers/42/events",
                 json.dumps({"name": "purchase", "data": {"price": 3}})),
                ("batch of 100, POST /api/v2/batch", 100, f"{base}/api/v2/batch", v2_batch(100)),
                ("batch of 500, POST /api/v2/batch", 500, f"{base}/api/v2/batch", v2_batch(500)),
            ]  # fmt: skip
            for label, size, target, body in scenarios:
                script = folder / "post.lua"
                script.write_text(LUA.format(method="POST", body=body, auth=auth))
                results.append((label, size, run_wrk(target, options.seconds, 16, script)))
        finally:
            web.terminate()
            web.wait()

    base_rate = results[0][2]["rate"]
    print(
        f"\nAccept rate through gunicorn ({options.workers} workers), wrk -t2 -c16 -d{options.seconds}s\n"
    )
    print(
        f"| {'what':<42} | {'requests/s':>10} | {'events/s':>9} | {'p50 ms':>6} | {'p99 ms':>6} | {'x static':>8} | errors |"
    )
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 11}|{'-' * 8}|{'-' * 8}|{'-' * 10}|--------|")
    for label, size, result in results:
        events = "" if label.startswith("static") else f"{result['rate'] * size:,.0f}"
        print(f"| {label:<42} | {result['rate']:>10,.0f} | {events:>9} | {result['p50']:>6.1f} | "
              f"{result['p99']:>6.1f} | {result['rate'] / base_rate:>8.2f} | {result['errors']:>6} |")  # fmt: skip


if __name__ == "__main__":
    main()
