"""HTTP load from wrk and the parsing of its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_PCT_RE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_TOTAL_RE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # "50", "75", "90", "99"
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """Failed requests: non-2xx answers, connect/write errors and timeouts.

        Read "errors" are left out: uWSGI's http-socket closes the connection after every
        response (no keep-alive), which wrk counts as a read error after a complete response.
        """
        return self.non_2xx + sum(n for kind, n in self.socket_errors.items() if kind != "read")


def parse(text: str) -> WrkResult:
    """wrk's ``--latency`` report as numbers (latencies in milliseconds)."""
    total = _TOTAL_RE.search(text)
    rps = _RPS_RE.search(text)
    if total is None or rps is None:
        raise ValueError(f"unexpected wrk output:\n{text}")
    result = WrkResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS[total.group(3)] / 1000.0,
        rps=float(rps.group(1)),
        latency_ms={m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _PCT_RE.finditer(text)},
    )
    non2xx = _NON2XX_RE.search(text)
    if non2xx:
        result.non_2xx = int(non2xx.group(1))
    sock = _SOCKET_RE.search(text)
    if sock:
        result.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
    return result


def run(url: str, seconds: float, *, connections: int, threads: int, wrk: str = "wrk") -> WrkResult:
    """Load ``url`` for ``seconds`` and return wrk's figures.

    ``subprocess.run`` kills wrk if the bench is interrupted; wrk's own timeout (2 s) bounds
    how long a request to a stuck server can hold a connection.
    """
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse(done.stdout)
