"""Session fixtures for the MNS real-SDK (Python) suite.

One emulator process per pytest session: started from the built binary (``$ALICOM_EMU_BIN``,
default ``<repo>/target/release/alicom-emu``) with the two-tenant fixture config and ephemeral
ports, stopped with SIGTERM at the end (it must exit 0). The MNS endpoint comes from the
ready-file key ``mns``; without it every test is skipped (the binary has no MNS service yet).
``$ALICOM_EMU_EXTRA_ARGS`` adds command-line arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mns_helpers import Emulator, start_emulator, stop_emulator

REPO = Path(__file__).resolve().parents[4]
CONFIG = REPO / "tests" / "fixtures" / "two-tenants.toml"


def binary() -> Path:
    env = os.environ.get("ALICOM_EMU_BIN")
    return Path(env) if env else REPO / "target" / "release" / "alicom-emu"


@pytest.fixture(scope="session")
def emu(tmp_path_factory) -> Emulator:
    b = binary()
    if not b.is_file():
        pytest.fail(f"emulator binary not found: {b} (build it, or set ALICOM_EMU_BIN)", pytrace=False)
    extra = os.environ.get("ALICOM_EMU_EXTRA_ARGS", "").split()
    e = start_emulator(b, CONFIG, tmp_path_factory.mktemp("alicom-emu-mns"), extra)
    if "mns" not in e.info:
        stop_emulator(e)
        pytest.skip(f"the ready-file of {b} has no 'mns' endpoint: the MNS service is not wired into this binary", allow_module_level=True)
    try:
        yield e
    finally:
        problem = stop_emulator(e)
        if problem:
            pytest.fail(problem, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test, attach the tail of the emulator log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        e = item.funcargs.get("emu") if hasattr(item, "funcargs") else None
        if e is not None:
            rep.sections.append(("emulator log (tail)", e.log()[-4000:]))
