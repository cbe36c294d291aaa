"""Session fixtures for the real-SDK (Python) suite.

One emulator process per pytest session: started from the built binary
(``$ALICOM_EMU_BIN``, default ``<repo>/target/release/alicom-emu``) with the two-tenant
fixture config and ephemeral ports, stopped with SIGTERM at the end (it must exit 0).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from emu_helpers import Admin, Emulator

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "tests" / "fixtures" / "two-tenants.toml"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def _binary() -> Path:
    env = os.environ.get("ALICOM_EMU_BIN")
    return Path(env) if env else REPO / "target" / "release" / "alicom-emu"


def _read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as e:  # pragma: no cover - diagnostics only
        return f"<cannot read {path}: {e}>"


@pytest.fixture(scope="session")
def emu(tmp_path_factory) -> Emulator:
    binary = _binary()
    if not binary.is_file():
        pytest.fail(f"emulator binary not found: {binary} (build it, or set ALICOM_EMU_BIN)", pytrace=False)
    tmp = tmp_path_factory.mktemp("alicom-emu")
    ready = tmp / "ready.json"
    log_path = tmp / "emulator.log"
    log = open(log_path, "wb")
    cmd = [str(binary), "--config", str(CONFIG), "--ephemeral-ports", "--ready-file", str(ready)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(tmp))

    info = None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            pytest.fail(
                f"emulator exited with {proc.returncode} before it was ready\ncommand: {cmd}\n--- log ---\n{_read_log(log_path)}",
                pytrace=False,
            )
        if ready.exists():
            try:
                info = json.loads(ready.read_text())
                break
            except (ValueError, OSError):
                pass  # written atomically, but be lenient
        time.sleep(0.05)
    if info is None:
        proc.kill()
        proc.wait(5)
        log.close()
        pytest.fail(
            f"emulator not ready within {READY_TIMEOUT_S}s (no parsable {ready})\n--- log ---\n{_read_log(log_path)}",
            pytrace=False,
        )

    emulator = Emulator(info=info, log_path=log_path, process=proc)
    try:
        yield emulator
    finally:
        failed_stop = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                failed_stop = f"emulator did not exit within {STOP_TIMEOUT_S}s of SIGTERM"
        else:
            failed_stop = f"emulator died during the tests (exit {proc.returncode})"
        log.close()
        if failed_stop is None and proc.returncode != 0:
            failed_stop = f"emulator exited with {proc.returncode} after SIGTERM (expected 0)"
        if failed_stop:
            pytest.fail(f"{failed_stop}\n--- log ---\n{_read_log(log_path)}", pytrace=False)


@pytest.fixture(scope="session")
def admin(emu: Emulator) -> Admin:
    return Admin(emu.admin_url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test, attach the tail of the emulator log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        emulator = item.funcargs.get("emu") if hasattr(item, "funcargs") else None
        if emulator is None:
            for name in ("classic", "tea", "flavour"):
                fx = item.funcargs.get(name) if hasattr(item, "funcargs") else None
                if fx is not None and hasattr(fx, "emu"):
                    emulator = fx.emu
                    break
        if emulator is not None:
            tail = _read_log(emulator.log_path)[-4000:]
            rep.sections.append(("emulator log (tail)", tail))
