"""Shared fixtures: a unique bus name removed after the test (even on failure),
and child processes with a watchdog."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from shm_bus import Bus, BusError

REPO = Path(__file__).resolve().parents[3]


def _remove(name: str) -> None:
    try:
        Bus.remove(name)
    except BusError:
        pass


@pytest.fixture
def bus_name():
    name = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    yield name
    _remove(name)
    assert not os.path.exists(f"/dev/shm/shm-bus.{name}")


class Child:
    """A Python child process running ``code``; killed if still running at teardown."""

    def __init__(self, code: str, *args: str, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)

    def expect_line(self, expected: str, timeout: float = 30.0) -> None:
        """Reads one stdout line within ``timeout`` (watchdog: kills the child)."""
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.kill()
            raise AssertionError(f"child said nothing within {timeout} s; stderr: {self.proc.stderr.read()}")
        line = self.proc.stdout.readline().strip()
        if line != expected:
            self.kill()
            raise AssertionError(f"child said {line!r}, expected {expected!r}; stderr: {self.proc.stderr.read()}")

    def finish(self, timeout: float = 60.0) -> tuple:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"child did not finish within {timeout} s; stderr: {err}")
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def child():
    children = []

    def spawn(code: str, *args: str, stdin: bool = False) -> Child:
        c = Child(code, *args, stdin=stdin)
        children.append(c)
        return c

    yield spawn
    for c in children:
        c.kill()


def shm_bus_cli() -> str | None:
    """The Rust CLI binary, if built (env SHM_BUS_CLI, else the repo's target/)."""
    env = os.environ.get("SHM_BUS_CLI")
    if env:
        return env
    for p in (REPO / "target/release/shm-bus", REPO / "target/debug/shm-bus"):
        if p.exists():
            return str(p)
    return None
