"""The optional HTTPS listener: the self-signed certificate (CA in the ready-file's
``tls_ca_cert``) is trusted by the standard library, and the SDK works over https://."""

from __future__ import annotations

import os
import ssl

import pytest
from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.queue import Message, QueueMeta

from mns_helpers import unique


def test_sdk_over_https(emu):
    url = emu.info.get("mns_tls")
    ca = emu.info.get("tls_ca_cert")
    if not url or not ca:
        pytest.skip("no TLS MNS listener in the ready-file")
    # The SDK uses http.client's default context: trust the emulator's CA for this test.
    ctx = ssl.create_default_context(cafile=ca)
    old = ssl._create_default_https_context
    ssl._create_default_https_context = lambda *a, **k: ctx
    try:
        q = Account(url, emu.ak, emu.secret).get_queue(unique("tls"))
        q.create(QueueMeta())
        q.send_message(Message("secure"))
        got = q.receive_message(1)
        assert got.message_body == b"secure"
        q.delete_message(got.receipt_handle)
        q.delete()
    finally:
        ssl._create_default_https_context = old
