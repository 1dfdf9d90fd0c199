"""`gru-edge bench --serve`: drive a `gru-edge serve` process with concurrent streaming clients
over loopback for a bounded time, and report what a user of the service sees.

For each number of clients: every client sends streaming completions of ``chars`` characters
back to back (each with its own seed) until ``seconds`` have passed and its last one has ended;
the report gives the characters received per second by all clients together (over that whole
time), the time from sending a request to its
first character (p50, p99), the requests that failed, and the server's peak RSS (VmHWM of its
process, Linux) over the whole run. The server runs in its own process, so the clients' work
is not counted in its memory; on a small machine they share its cores. Each request is one
plain HTTP/1.1 write on its own loopback connection and the events are scanned as bytes (the
usage event gives the count), so the clients cost little beside the server.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gru_edge.runtime.errors import UsageError
from gru_edge.serve.server import served_name


@dataclass
class LoadRow:
    clients: int
    chars_per_s: float
    first_char_p50_ms: float
    first_char_p99_ms: float
    requests: int  # completed
    errors: int
    ratio: float = 1.0  # aggregate chars/s to the first row's


@dataclass
class LoadReport:
    model: str
    chars: int  # per request
    seconds: float  # per row
    rows: list[LoadRow] = field(default_factory=list)
    server_peak_rss_mb: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def run_load(
    model: Path,
    clients: list[int],
    *,
    chars: int = 2000,
    seconds: float = 10.0,
    log=lambda _m: None,
) -> LoadReport:
    """Start `gru-edge serve MODEL` on a free loopback port and measure each row."""
    if not clients or any(c < 1 for c in clients):
        raise UsageError(f"--clients takes whole numbers >= 1, got {clients}")
    if chars < 1 or not seconds > 0:
        raise UsageError(f"--chars must be >= 1 and --seconds > 0, got {chars} and {seconds}")
    command = [_command(), "serve", str(model), "--port", "0", "--max-tokens", str(chars)]
    command += ["--max-queue", str(max(clients)), "--max-batch", str(max(clients))]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        base = _wait_for_url(server)
        report = LoadReport(str(model), chars, seconds)
        for count in clients:
            log(f"driving {count} streaming client(s) for {seconds:g} s")
            report.rows.append(
                asyncio.run(_drive(base, served_name(Path(model)), count, chars, seconds))
            )
        report.server_peak_rss_mb = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    first = report.rows[0].chars_per_s or 1.0
    for row in report.rows:
        row.ratio = row.chars_per_s / first
    return report


def format_load(report: LoadReport) -> str:
    """A Markdown table and the server's memory."""
    lines = [
        f"gru-edge serve {report.model}: streaming clients over loopback, {report.chars:,} "
        f"characters a request, {report.seconds:g} s a row",
        "",
        "| clients | chars/s, all clients | vs 1 client | first char p50 | first char p99 "
        "| requests | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.clients} | {r.chars_per_s:,.0f} | {r.ratio:.1f}x | {r.first_char_p50_ms:.1f} ms "
        f"| {r.first_char_p99_ms:.1f} ms | {r.requests:,} | {r.errors} |"
        for r in report.rows
    ]
    if report.server_peak_rss_mb is not None:
        lines += ["", f"- server peak RSS over the run: {report.server_peak_rss_mb:.0f} MB"]
    return "\n".join(lines)


async def _drive(base: str, model: str, clients: int, chars: int, seconds: float) -> LoadRow:
    """Each client sends requests back to back until ``seconds`` have passed, then finishes the
    one it is in; chars/s is everything received over the whole time."""
    firsts: list[float] = []
    received, done, errors = [0], [0], [0]
    deadline = time.perf_counter() + seconds
    host, port = base.removeprefix("http://").rsplit(":", 1)

    async def one(number: int, request: int) -> None:
        body = {"model": model, "prompt": "The ", "max_tokens": chars, "stream": True}
        body.update(seed=number * 1_000_003 + request, stream_options={"include_usage": True})
        payload = json.dumps(body).encode()
        sent = time.perf_counter()
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        try:
            writer.write(_request(host, payload))
            status = await reader.readline()
            if b" 200 " not in status:
                errors[0] += 1
                return
            seen, tail = b"", b""
            while data := await reader.read(1 << 16):
                if seen is not None:
                    seen += data
                    if _FIRST_TEXT.search(seen):
                        firsts.append(time.perf_counter() - sent)
                        seen = None
                tail = (tail + data)[-4096:]
        finally:
            writer.close()
        usage = _USAGE.search(tail)
        if b'"error": {' in tail or usage is None or b"[DONE]" not in tail:
            errors[0] += 1
            return
        received[0] += int(usage.group(1))
        done[0] += 1

    async def client(number: int) -> None:
        request = 0
        while time.perf_counter() < deadline:
            try:
                await one(number, request)
            except OSError:
                errors[0] += 1
            request += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    ms = sorted(1000 * f for f in firsts) or [float("nan")]
    return LoadRow(
        clients,
        received[0] / elapsed,
        statistics.median(ms),
        ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        done[0],
        errors[0],
    )


def _request(host: str, payload: bytes) -> bytes:
    """One HTTP/1.1 request in one write. (httpx, measured here, took ~40 ms longer to the first
    character than this, which is what the service itself takes: a client's cost, not the
    service's.)"""
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


_FIRST_TEXT = re.compile(rb'"text": "[^"]')  # a chunk with at least one character
_USAGE = re.compile(rb'"completion_tokens": (\d+)')


def _command() -> str:
    found = shutil.which("gru-edge", path=str(Path(sys.executable).parent)) or shutil.which(
        "gru-edge"
    )
    if found is None:
        raise UsageError("bench --serve starts the gru-edge command, which is not on PATH")
    return found


def _wait_for_url(server: subprocess.Popen) -> str:
    assert server.stderr is not None
    seen = []
    for line in server.stderr:
        seen.append(line.strip())
        found = re.search(r"at (http://\S+)/v1 ", line)
        if found:
            # Keep reading its stderr, or a chatty server would block on a full pipe.
            threading.Thread(target=server.stderr.read, daemon=True).start()
            return found.group(1)
    raise UsageError(f"gru-edge serve did not start: {seen[-1] if seen else 'no output'}")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
