"""Hostile / malformed input straight to the POP listener (no SDK).

Each request must get an HTTP 4xx with a JSON body carrying Code, Message and RequestId: never a
5xx, never a hang, never a dropped connection; and the emulator must keep serving signed
requests afterwards.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time

import pytest

from emu_helpers import ClassicFlavour, new_device_id, pct, signed_query, v1_system_params

TIMEOUT_S = 10


def check_error_reply(status: int, headers: dict, body: bytes, what: str) -> dict:
    assert 400 <= status < 500, f"{what}: expected a 4xx, got {status}: {body[:300]!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        pytest.fail(f"{what}: body is not JSON (status {status}): {body[:300]!r}")
    assert isinstance(doc, dict), f"{what}: {doc!r}"
    for k in ("Code", "Message", "RequestId"):
        assert isinstance(doc.get(k), str) and doc[k], f"{what}: {k} missing/empty in {doc}"
    ctype = headers.get("content-type", "")
    assert "json" in ctype.lower(), f"{what}: Content-Type {ctype!r}"
    return doc


def http_request(emu, method: str, target: str, body: bytes = b"", headers: dict | None = None):
    host, port = emu.pop_hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
    try:
        conn.request(method, target, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def raw_exchange(emu, head: bytes, body: bytes) -> tuple[int, dict, bytes]:
    """Send head+body on a raw socket, stopping the upload as soon as the server answers
    (a server may reply 413 before reading a large body), then read the whole response."""
    host, port = emu.pop_hostport.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
    try:
        sock.sendall(head)
        view = memoryview(body)
        deadline = time.monotonic() + TIMEOUT_S
        while view and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break  # early answer
            if writable:
                try:
                    n = sock.send(view[:65536])
                except (BrokenPipeError, ConnectionResetError):
                    break
                view = view[n:]
        # read the response: http.client parses it from the socket
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        sock.close()


@pytest.fixture(scope="module")
def classic(emu):
    return ClassicFlavour(emu)


def still_serving(classic):
    r = classic.call("AddRtcAccount", {"DeviceId": new_device_id("after")})
    assert r.code == "OK", r.body


def test_garbage_form_body(emu, classic):
    body = b"\x00\xff\xfe%%%zz=&&==&Action&%E4%B8=\r\n" + bytes(range(256))
    status, headers, data = http_request(
        emu, "POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    check_error_reply(status, headers, data, "garbage form body")
    still_serving(classic)


def test_two_mib_body(emu, classic):
    params = v1_system_params(emu.ak, "AddRtcAccount") + [("DeviceId", new_device_id())]
    form = signed_query("POST", params, emu.secret).encode()
    body = form + b"&Pad=" + b"a" * (2 * 1024 * 1024)
    head = (
        f"POST / HTTP/1.1\r\nHost: {emu.pop_hostport}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode()
    status, headers, data = raw_exchange(emu, head, body)
    check_error_reply(status, headers, data, "2 MiB body")
    still_serving(classic)


def test_invalid_utf8_percent_escapes(emu, classic):
    params = v1_system_params(emu.ak, "AddRtcAccount")
    query = signed_query("POST", params, emu.secret) + "&DeviceId=%FF%FE"
    status, headers, data = http_request(emu, "POST", "/?" + query)
    check_error_reply(status, headers, data, "invalid UTF-8 in query")
    still_serving(classic)


def test_duplicate_parameters(emu, classic):
    params = v1_system_params(emu.ak, "AddRtcAccount") + [("DeviceId", "a"), ("DeviceId", "b")]
    query = signed_query("POST", params, emu.secret)
    assert query.count("DeviceId=") == 2
    status, headers, data = http_request(emu, "POST", "/?" + query)
    check_error_reply(status, headers, data, "duplicate DeviceId")
    still_serving(classic)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_empty_request(emu, classic, method):
    status, headers, data = http_request(emu, method, "/")
    check_error_reply(status, headers, data, f"empty {method} /")
    still_serving(classic)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_non_pop_path(emu, classic, method):
    status, headers, data = http_request(emu, method, "/foo")
    check_error_reply(status, headers, data, f"{method} /foo")
    still_serving(classic)


def test_raw_signed_request_works(emu):
    """Sanity check of the hand-made signer used above: a correct raw request succeeds."""
    params = v1_system_params(emu.ak, "AddRtcAccount") + [("DeviceId", new_device_id("raw"))]
    status, headers, data = http_request(emu, "POST", "/?" + signed_query("POST", params, emu.secret))
    assert status == 200, data
    doc = json.loads(data)
    assert doc["Code"] == "OK" and doc["Module"].isdigit(), doc
    # and the same as a GET with everything in the query, and as a form body
    params = v1_system_params(emu.ak, "AddRtcAccount") + [("DeviceId", new_device_id("raw"))]
    status, _, data = http_request(emu, "GET", "/?" + signed_query("GET", params, emu.secret))
    assert status == 200 and json.loads(data)["Code"] == "OK", data
    params = v1_system_params(emu.ak, "AddRtcAccount") + [("DeviceId", new_device_id("raw"))]
    status, _, data = http_request(
        emu,
        "POST",
        "/",
        signed_query("POST", params, emu.secret).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and json.loads(data)["Code"] == "OK", data
    assert pct("a b*c~") == "a%20b%2Ac~"
