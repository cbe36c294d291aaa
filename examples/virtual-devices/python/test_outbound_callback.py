"""Testing a customer's outbound-callback server with nothing but HTTP.

The system under test is `authorize` below: the app server's outbound callback, which the
platform asks before every call an app starts (docs/calls.md#customer-callbacks). It lets app
users call each other for at most 60 s and refuses calls to phones. The test plays every party
with the emulator's virtual devices (docs/voip-devices.md) and its manual clock: no SDK, no
MQTT client, no browser.

Run: ALICOM_EMU_BIN=target/release/alicom-emu pytest examples/virtual-devices/python
"""

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALICOM_EMU_BIN", REPO / "target" / "release" / "alicom-emu"))


# ---------------------------------------------------------------- the system under test


def authorize(request: dict) -> dict:
    """The customer's rule: app-to-app calls only, 60 s at most."""
    if any(c.get("isPstn") for c in request.get("calleeInfos", [])):
        return {"success": False, "message": "calls to phones are not part of this plan"}
    return {"success": True, "model": {"timeLimit": 60}}


class CallbackServer:
    """The customer's HTTP server, serving `authorize` and remembering what it was asked."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                answer = json.dumps(authorize(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/outbound"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


# ---------------------------------------------------------------- the emulator, over HTTP


class Emulator:
    def __init__(self, admin: str):
        self.admin = admin

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method: str, path: str, body=None):
        status, reply = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, reply)
        return reply

    def advance(self, ms: int):
        self.ok("POST", "/admin/clock/advance", {"ms": ms})


@pytest.fixture
def emu():
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        env = dict(os.environ, ALICOM_EMU_CLOCK__MODE="manual", ALICOM_EMU_SERVER__LOG_LEVEL="warn")
        proc = subprocess.Popen([str(BINARY), "--ephemeral-ports", "--ready-file", str(ready)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while not ready.exists():
                assert proc.poll() is None, "the emulator exited"
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.02)
            yield Emulator(json.loads(ready.read_text())["admin"])
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def customer(emu):
    server = CallbackServer()
    emu.ok("PUT", "/admin/callbacks", {"outbound": server.url})
    yield server
    server.close()


def device(emu, rtc_id: str, behavior: dict) -> dict:
    return emu.ok("PUT", f"/admin/voip/devices/{rtc_id}", {"deviceId": f"app-{rtc_id}", "behavior": behavior})


def last_call(emu, rtc_id: str) -> dict:
    return emu.ok("GET", f"/admin/voip/devices/{rtc_id}")["calls"][-1]


def wait_until(check, timeout: float = 5.0):
    """The callback goes out over real HTTP: wait (bounded) until `check()` returns something."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def state(emu, rtc_id: str) -> str:
    return emu.ok("GET", f"/admin/voip/devices/{rtc_id}")["state"]


# ---------------------------------------------------------------- the tests


def test_app_to_app_calls_are_allowed_for_60_seconds(emu, customer):
    device(emu, "8000000000000001", {"then": "manual"})
    device(emu, "8000000000000002", {"ring_ms": 1000, "then": "answer"})
    ch = emu.ok("POST", "/admin/voip/calls", {"from": "8000000000000001", "to": ["8000000000000002"],
                                              "extend": "order-7"})["channelId"]

    # The platform asks the customer's server first; the callee rings once it said yes.
    wait_until(lambda: state(emu, "8000000000000002") == "ringing")
    asked = customer.requests[-1]
    assert asked["callerInfo"]["voipId"] == "8000000000000001"
    assert asked["calleeInfos"] == [{"isPstn": False, "voipId": "8000000000000002"}]
    assert (asked["channelId"], asked["extend"]) == (ch, "order-7")

    emu.advance(1000)  # the callee answers
    assert emu.ok("GET", f"/admin/calls/{ch}")["state"] == "active"
    emu.advance(60_000)  # the customer's timeLimit
    call = emu.ok("GET", f"/admin/calls/{ch}")
    assert call["state"] == "ended"
    assert call["cdr"]["duration"] == "60"
    assert last_call(emu, "8000000000000001")["outcome"] == "completed"


def test_calls_to_phones_are_refused(emu, customer):
    device(emu, "8000000000000003", {"then": "manual"})
    ch = emu.ok("POST", "/admin/voip/calls", {"from": "8000000000000003", "phone": "13912345678",
                                              "display": "02160000001"})["channelId"]
    call = wait_until(lambda: (c := emu.ok("GET", f"/admin/calls/{ch}"))["state"] == "ended" and c)
    assert customer.requests[-1]["calleeInfos"][0]["isPstn"] is True
    assert call["causeCode"] == 3100007, call
    refused = last_call(emu, "8000000000000003")
    assert refused["outcome"] == "failed", refused
    assert refused["cause"] == "calls to phones are not part of this plan", refused
