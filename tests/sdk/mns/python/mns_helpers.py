"""Helpers of the MNS real-SDK suite: starting the emulator, temporary credentials, and an
independent MNS V2 signer for hand-made requests (malformed XML, oversized bodies)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 40


@dataclass
class Emulator:
    info: dict
    log_path: Path
    process: subprocess.Popen | None = None
    tmp: Path | None = None
    extra_args: list = field(default_factory=list)

    @property
    def mns(self) -> str:
        return self.info["mns"].rstrip("/")

    @property
    def admin(self) -> str | None:
        a = self.info.get("admin")
        return a.rstrip("/") if a else None

    @property
    def pop_hostport(self) -> str | None:
        p = self.info.get("pop")
        return urlparse(p).netloc if p else None

    @property
    def ak(self) -> str:
        return self.info.get("access_key_id", "testAK")

    @property
    def secret(self) -> str:
        return self.info.get("access_key_secret", "testSecret")

    @property
    def uid(self) -> str:
        return self.info.get("uid", "1234567890123456")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:  # pragma: no cover
            return f"<cannot read {self.log_path}: {e}>"


def start_emulator(binary: Path, config: Path, tmp: Path, extra_args: list | None = None) -> Emulator:
    ready = tmp / "ready.json"
    if ready.exists():
        ready.unlink()
    log_path = tmp / "emulator.log"
    log = open(log_path, "ab")
    cmd = [str(binary), "--config", str(config), "--ephemeral-ports", "--ready-file", str(ready)] + list(extra_args or [])
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(tmp))
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode} before it was ready\ncommand: {cmd}\n--- log ---\n{log_path.read_text(errors='replace')}")
        if ready.exists():
            try:
                return Emulator(info=json.loads(ready.read_text()), log_path=log_path, process=proc, tmp=tmp, extra_args=list(extra_args or []))
            except (ValueError, OSError):
                pass
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"emulator not ready within {READY_TIMEOUT_S}s\n--- log ---\n{log_path.read_text(errors='replace')}")


def stop_emulator(e: Emulator) -> str | None:
    """SIGTERM and wait; returns a problem description, or None when it exited 0."""
    proc = e.process
    if proc is None:
        return None
    if proc.poll() is not None:
        return f"emulator died during the tests (exit {proc.returncode})\n--- log ---\n{e.log()[-4000:]}"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return f"emulator did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n--- log ---\n{e.log()[-4000:]}"
    if proc.returncode != 0:
        return f"emulator exited with {proc.returncode} after SIGTERM (expected 0)\n--- log ---\n{e.log()[-4000:]}"
    return None


def admin_post(e: Emulator, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(e.admin + path, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def admin_get(e: Emulator, path: str) -> Any:
    with urllib.request.urlopen(e.admin + path, timeout=10) as r:
        return json.loads(r.read())


@dataclass
class TempCreds:
    access_key_id: str
    access_key_secret: str
    security_token: str
    expire_time: str | None = None


def query_token(e: Emulator, message_type: str, queue_name: str | None = None) -> TempCreds:
    """Temporary credentials for an alicom queue, as the vendor's pullers get them: through
    QueryTokenForMnsQueue (aliyun-python-sdk-dybaseapi) when the emulator serves POP; with the
    stand-alone MNS harness (no POP), through its POST /admin/sts with a queue scope."""
    queue = queue_name or f"Alicom-Queue-{e.uid}-{message_type}"
    if e.pop_hostport:
        from aliyunsdkcore.client import AcsClient
        from aliyunsdkdybaseapi.request.v20170525.QueryTokenForMnsQueueRequest import QueryTokenForMnsQueueRequest

        client = AcsClient(e.ak, e.secret, "cn-hangzhou", auto_retry=False, timeout=10)
        client.add_endpoint("cn-hangzhou", "Dybaseapi", e.pop_hostport)
        req = QueryTokenForMnsQueueRequest()
        req.set_MessageType(message_type)
        if queue_name:
            req.set_QueueName(queue_name)
        body = json.loads(client.do_action_with_exception(req))
        assert body["Code"] == "OK", body
        dto = body["MessageTokenDTO"]
        return TempCreds(dto["AccessKeyId"], dto["AccessKeySecret"], dto["SecurityToken"], dto["ExpireTime"])
    status, body = admin_post(e, "/admin/sts", {"scope": [queue]})
    assert status == 200, body
    return TempCreds(body["accessKeyId"], body["accessKeySecret"], body["securityToken"])


# --------------------------------------------------------------------------------------------
# an independent MNS V2 signer for raw requests


def raw_request(e: Emulator, method: str, target: str, body: bytes = b"", ak: str | None = None, secret: str | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    ak = ak or e.ak
    secret = secret or e.secret
    h = {"x-mns-version": "2015-06-06", "date": formatdate(usegmt=True)}
    if body:
        h["content-type"] = "text/xml;charset=UTF-8"
        h["content-md5"] = base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode()
    h.update(headers or {})
    mns_headers = "".join(f"{k}:{h[k]}\n" for k in sorted(h) if k.startswith("x-mns-"))
    sts = f"{method}\n{h.get('content-md5', '')}\n{h.get('content-type', '')}\n{h['date']}\n{mns_headers}{target}"
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    h["authorization"] = f"MNS {ak}:{sig}"
    req = urllib.request.Request(e.mns + target, data=body or None, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
