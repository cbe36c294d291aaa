"""Helpers shared by the Python real-SDK tests.

* ``Emulator``: what the ready-file says (endpoints, default key).
* ``Admin``: a tiny JSON client for the emulator's admin API.
* ``ClassicFlavour`` / ``TeaFlavour``: drive the *unmodified* vendor SDKs and normalise their
  outcome to ``Reply`` (success or business error, HTTP 2xx) or ``ApiError`` (gateway error,
  raised by the SDK itself; the original SDK exception is kept in ``.exc``).
* ``sign_rpc_v1`` and friends: an independent RPC v1 signer for the hand-made raw requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import urllib.error
import urllib.request
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

API_VERSION = "2017-05-25"
HTTP_TIMEOUT_S = 10

# --------------------------------------------------------------------------------------------
# emulator + admin


@dataclass
class Emulator:
    info: dict
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def pop_url(self) -> str:
        return self.info["pop"].rstrip("/")

    @property
    def pop_hostport(self) -> str:
        """``127.0.0.1:PORT`` of the POP listener (what every SDK gets as its endpoint)."""
        return urlparse(self.info["pop"]).netloc

    @property
    def admin_url(self) -> str:
        return self.info["admin"].rstrip("/")

    @property
    def mqtt_ws(self) -> str:
        return self.info["mqtt_ws"]

    @property
    def expected_token_host(self) -> str:
        """GetRtcToken ``host``: ``<mqtt_ws host:port>/mqtt`` (scheme stripped)."""
        u = urlparse(self.info["mqtt_ws"])
        return f"{u.netloc}{u.path}"

    @property
    def ak(self) -> str:
        return self.info.get("access_key_id", "testAK")

    @property
    def secret(self) -> str:
        return self.info.get("access_key_secret", "testSecret")


class Admin:
    def __init__(self, base: str):
        self.base = base.rstrip("/")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert 200 <= status < 300, f"GET {path} -> {status} {body!r}"
        return body

    def put(self, path: str, body: Any) -> Any:
        status, resp = self.request("PUT", path, body)
        assert 200 <= status < 300, f"PUT {path} {body!r} -> {status} {resp!r}"
        return resp

    def post(self, path: str, body: Any = None) -> Any:
        status, resp = self.request("POST", path, body)
        assert 200 <= status < 300, f"POST {path} -> {status} {resp!r}"
        return resp

    def set_tenant_state(self, tenant: str, state: str) -> None:
        self.put(f"/admin/tenants/{tenant}/state", {"state": state})

    def set_key_fault(self, key_id: str, fault: str) -> None:
        self.put(f"/admin/access-keys/{key_id}/fault", {"fault": fault})

    def requests(self, limit: int = 5) -> list[dict]:
        body = self.get(f"/admin/requests?limit={limit}")
        assert isinstance(body, dict) and isinstance(body.get("requests"), list), body
        return body["requests"]

    def accounts(self, tenant: str) -> list[dict]:
        """The tenant's accounts made through the POP API: without the ready-made virtual
        devices' accounts (DeviceId virtual-…, docs/voip-devices.md), which the emulator makes
        itself and which do not count against the account limit."""
        body = self.get(f"/admin/accounts?tenant={tenant}")
        assert isinstance(body, dict) and isinstance(body.get("accounts"), list), body
        return [a for a in body["accounts"] if not str(a.get("deviceId", "")).startswith("virtual-")]


def new_device_id(prefix: str = "dev") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------------------------
# SDK flavours


@dataclass
class Reply:
    """A 2xx answer: ``body`` is the decoded JSON envelope; ``status`` None when the SDK hides it."""

    status: int | None
    body: dict
    headers: dict | None = None

    @property
    def code(self) -> str:
        return self.body.get("Code")


class ApiError(Exception):
    def __init__(self, status: int | None, code: str | None, exc: BaseException):
        super().__init__(f"HTTP {status} {code}: {exc}")
        self.status = status
        self.code = code
        self.exc = exc


def _classic_request_class(action: str):
    import importlib

    try:
        mod = importlib.import_module(f"aliyunsdkdyvmsapi.request.v20170525.{action}Request")
    except ImportError:
        return None
    return getattr(mod, f"{action}Request", None)


class ClassicFlavour:
    """aliyun-python-sdk-core 2.16.1 (+ aliyun-python-sdk-dyvmsapi 3.2.0): RPC v1, POST, query."""

    name = "classic"
    wrong_secret_code = "InvalidAccessKeySecret"  # core rewrites SignatureDoesNotMatch (docs/pop-api.md#errors)

    def __init__(self, emu: Emulator):
        self.emu = emu
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, ak: str | None = None, secret: str | None = None):
        from aliyunsdkcore.client import AcsClient

        key = (ak or self.emu.ak, secret or self.emu.secret)
        c = self._clients.get(key)
        if c is None:
            c = AcsClient(key[0], key[1], "cn-hangzhou", auto_retry=False, timeout=HTTP_TIMEOUT_S, connect_timeout=5)
            c.add_endpoint("cn-hangzhou", "Dyvmsapi", self.emu.pop_hostport)
            self._clients[key] = c
        return c

    def build(self, action: str, params: dict, common: bool = False):
        from aliyunsdkcore.request import CommonRequest

        cls = None if common else _classic_request_class(action)
        if cls is None:
            req = CommonRequest(product="Dyvmsapi", version=API_VERSION, action_name=action)
            req.set_method("POST")
            for k, v in params.items():
                req.add_query_param(k, v)
            return req
        req = cls()
        for k, v in params.items():
            getattr(req, f"set_{k}")(v)
        return req

    def call(self, action: str, params: dict, *, ak=None, secret=None, common=False) -> Reply:
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        req = self.build(action, params, common=common)
        try:
            raw = self.client(ak, secret).do_action_with_exception(req)
        except ServerException as e:
            raise ApiError(e.get_http_status(), e.get_error_code(), e) from None
        return Reply(None, json.loads(raw))

    def call_with_status(self, action: str, params: dict, *, ak=None, secret=None, common=False) -> Reply:
        """Same request through ``get_response`` (public, deprecated) to see the HTTP status."""
        req = self.build(action, params, common=common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            status, headers, raw = self.client(ak, secret).get_response(req)
        return Reply(status, json.loads(raw), {str(k).lower(): v for k, v in headers.items()})


class TeaFlavour:
    """alibabacloud-dyvmsapi20170525 5.3.0 + tea-openapi 0.4.6 via ``call_api(Params(style='RPC'))``.

    ``algorithm`` None = the default ACS3-HMAC-SHA256 headers; ``'v2'`` = RPC v1 in the query.
    """

    wrong_secret_code = "SignatureDoesNotMatch"

    def __init__(self, emu: Emulator, algorithm: str | None):
        self.emu = emu
        self.algorithm = algorithm
        self.name = "tea-v2" if algorithm == "v2" else "tea-acs3"
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, ak: str | None = None, secret: str | None = None):
        from alibabacloud_dyvmsapi20170525.client import Client
        from alibabacloud_tea_openapi.models import Config

        key = (ak or self.emu.ak, secret or self.emu.secret)
        c = self._clients.get(key)
        if c is None:
            cfg = Config(
                access_key_id=key[0],
                access_key_secret=key[1],
                region_id="cn-hangzhou",
                endpoint=self.emu.pop_hostport,
                protocol="http",
                read_timeout=HTTP_TIMEOUT_S * 1000,
                connect_timeout=5000,
            )
            if self.algorithm:
                cfg.signature_algorithm = self.algorithm
            c = Client(cfg)
            self._clients[key] = c
        return c

    def call(self, action: str, params: dict, *, ak=None, secret=None, common=False) -> Reply:
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
        from alibabacloud_tea_openapi.models import OpenApiRequest, Params
        from alibabacloud_tea_openapi.utils import Utils
        from darabonba.runtime import RuntimeOptions

        p = Params(
            action=action,
            version=API_VERSION,
            protocol="HTTPS",  # Config.protocol='http' overrides it
            pathname="/",
            method="POST",
            auth_type="AK",
            style="RPC",
            req_body_type="formData",
            body_type="json",
        )
        req = OpenApiRequest(query=Utils.query(dict(params)))
        runtime = RuntimeOptions(autoretry=False, read_timeout=HTTP_TIMEOUT_S * 1000, connect_timeout=5000)
        try:
            res = self.client(ak, secret).call_api(p, req, runtime)
        except AlibabaCloudException as e:
            raise ApiError(e.status_code, e.code, e) from None
        headers = {str(k).lower(): v for k, v in (res.get("headers") or {}).items()}
        return Reply(res.get("statusCode"), res.get("body"), headers)

    call_with_status = call


# --------------------------------------------------------------------------------------------
# independent RPC v1 signer (for raw requests)


def pct(s: str | bytes) -> str:
    """POP percent-encoding: UTF-8, keep A-Z a-z 0-9 - _ . ~, everything else %XX upper-case."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return quote(s, safe="-_.~")


def v1_system_params(ak: str, action: str) -> list[tuple[str, str]]:
    return [
        ("AccessKeyId", ak),
        ("Action", action),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", uuid.uuid4().hex),
        ("SignatureVersion", "1.0"),
        ("Timestamp", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("Version", API_VERSION),
    ]


def sign_rpc_v1(method: str, params: list[tuple[str, str]], secret: str) -> str:
    canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params))
    sts = f"{method}&{pct('/')}&{pct(canon)}"
    digest = hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_query(method: str, params: list[tuple[str, str]], secret: str) -> str:
    sig = sign_rpc_v1(method, params, secret)
    return "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params)) + "&Signature=" + pct(sig)


TOKEN_BOOL_FIELDS = ("cleansession", "useTLS")
TOKEN_INT_FIELDS = (
    "meetingEventKeepAliveInterval",
    "port",
    "reconnectTimeout",
    "registerTime",
    "sdkClientPort",
    "tlsport",
)
TOKEN_STR_FIELDS = (
    "clientId",
    "conferenceTopic",
    "host",
    "phoneTopic",
    "serverId",
    "sgwServerTopic",
    "tokenData",
)


def check_token_module(module: Any, emu: Emulator, rtc_id: str) -> dict:
    """Decode a GetRtcToken/VoipGetToken ``Module`` and check all 15 fields and their JSON types."""
    assert isinstance(module, str), f"Module must be a JSON *string*, got {type(module).__name__}: {module!r}"
    token = json.loads(module)
    assert isinstance(token, dict), token
    expected = set(TOKEN_BOOL_FIELDS + TOKEN_INT_FIELDS + TOKEN_STR_FIELDS)
    missing = expected - token.keys()
    assert not missing, f"token lacks {sorted(missing)}: {token}"
    for f in TOKEN_BOOL_FIELDS:
        assert isinstance(token[f], bool), f"{f} must be a JSON bool: {token[f]!r}"
    for f in TOKEN_INT_FIELDS:
        assert isinstance(token[f], int) and not isinstance(token[f], bool), f"{f} must be a JSON int: {token[f]!r}"
    for f in TOKEN_STR_FIELDS:
        assert isinstance(token[f], str), f"{f} must be a JSON string: {token[f]!r}"
    assert token["host"] == emu.expected_token_host, (token["host"], emu.mqtt_ws)
    assert token["clientId"].startswith(f"GID_VOIP@@@ClientId_{rtc_id}_"), token["clientId"]
    assert token["tokenData"], "tokenData must not be empty"
    return token
