"""An HTTP/1.1 keep-alive load generator in its own process, as ``wrk`` would be.

A server's latency measured by a client in the same process measures the client too: both
share one interpreter lock, so at 64 connections every response waits for the generator's
own work. Real callers of a token proxy are other processes (the pods), so the benchmarks drive
it from a child process: ``python -m tests.benchmarks.loadgen`` reads one JSON command per line
on stdin and answers one JSON line with every request's latency and the wall time of the run.
The parent blocks on the pipe meanwhile, so its CPU time is the server's alone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from tests.benchmarks.harness import percentile


@attrs.frozen
class LoadResult:
    """One run: every request's latency (seconds) and the run's wall time."""

    latencies: list[float]
    elapsed: float

    @property
    def rate(self) -> float:
        """Requests answered per second of the run."""
        return len(self.latencies) / self.elapsed

    def summary(self) -> str:
        """``p50 .. ms, p99 .. ms, .. req/s``."""
        return (
            f"p50 {percentile(self.latencies, 0.5) * 1e3:.2f} ms,"
            f" p99 {percentile(self.latencies, 0.99) * 1e3:.2f} ms,"
            f" {self.rate:,.0f} req/s"
        )


class LoadGenerator:
    """The child process; :meth:`run` sends one command and waits for its result."""

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],  # the repository root, where ``tests`` imports from
        )

    def run(
        self, port: int, *, connections: int, total: int, request: bytes, source_ip: str
    ) -> LoadResult:
        """``total`` requests over ``connections`` keep-alive connections from ``source_ip``."""
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        command = {
            "port": port,
            "connections": connections,
            "total": total,
            "request": request.decode("latin-1"),
            "source_ip": source_ip,
        }
        self._child.stdin.write(json.dumps(command) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self._child.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(answer["error"])
        return LoadResult(answer["latencies"], answer["elapsed"])

    def close(self) -> None:
        """End the child (it stops at the end of its input)."""
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait(timeout=30)
        if self._child.stdout is not None:
            self._child.stdout.close()


async def _connection(
    port: int, count: int, request: bytes, source_ip: str, latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source_ip, 0))
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise AssertionError(head[:200].decode("latin-1"))
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        await writer.wait_closed()


async def _load(command: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = []
    per = command["total"] // command["connections"]
    request = command["request"].encode("latin-1")
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(command["port"], per, request, command["source_ip"], latencies)
            for _ in range(command["connections"])
        )
    )
    return {"latencies": latencies, "elapsed": time.perf_counter() - started}


def main() -> None:
    """Serve commands from stdin until it closes."""
    loop = asyncio.new_event_loop()
    try:
        for line in sys.stdin:
            try:
                answer = loop.run_until_complete(_load(json.loads(line)))
            except (OSError, AssertionError) as err:
                answer = {"error": f"{type(err).__name__}: {err}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        loop.close()


if __name__ == "__main__":
    main()
