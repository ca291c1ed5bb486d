"""A bounded closed-loop HTTP load on loopback: Debian's wrk when installed, else Python threads."""
from __future__ import annotations

import http.client
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from bench.harness import BenchError


def load(url: str, headers: dict, *, seconds: int, tool: str, connections: int = 16) -> float:
    """Requests per second answered 2xx/304 under `connections` clients for `seconds`; any error raises."""
    return _wrk(url, headers, seconds, connections) if tool == "wrk" else _threads(url, headers, seconds, connections)


def _wrk(url: str, headers: dict, seconds: int, connections: int) -> float:
    script = Path(os.environ["BENCH_WORKDIR"]) / "headers.lua"
    # Lua long strings: an ETag carries double quotes.
    script.write_text("".join(f'wrk.headers["{k}"] = [==[{v}]==]\n' for k, v in headers.items()))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out) or "Socket errors" in out:
        raise BenchError(f"load on {url}: errors (a request now answers {_sample(url, headers)})\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def _sample(url: str, headers: dict) -> str:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return f"{answer.status} {answer.read(300)!r}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read(300)!r}"


def _threads(url: str, headers: dict, seconds: int, connections: int) -> float:
    parts = urlsplit(url)
    counts = [0] * connections
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            while time.monotonic() < deadline:
                connection.request("GET", parts.path, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status not in (200, 304):
                    errors.append(f"HTTP {response.status}")
                    return
                counts[index] += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()  # the next request reconnects
        except OSError as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    if errors:
        raise BenchError(f"load on {url}: {errors[:3]}")
    return sum(counts) / seconds
