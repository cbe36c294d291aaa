"""--data-dir: a kill -9 loses nothing that was acknowledged; unacknowledged (received, not
deleted) messages come back after a restart, their receipt handles still valid."""

from __future__ import annotations

import signal
import subprocess

import pytest
from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.queue import Message, QueueMeta

from conftest import CONFIG, binary
from mns_helpers import start_emulator, stop_emulator


def test_kill_9_and_restart_keep_messages_and_visibility(tmp_path):
    data = tmp_path / "data"
    try:
        first = start_emulator(binary(), CONFIG, tmp_path, ["--data-dir", str(data)])
    except RuntimeError as e:
        if "--data-dir" in str(e) or "unexpected argument" in str(e):
            pytest.skip("this binary has no --data-dir")
        raise
    if "mns" not in first.info:
        stop_emulator(first)
        pytest.skip("no 'mns' endpoint in the ready-file")
    q = Account(first.mns, first.ak, first.secret).get_queue("Durable-Queue")
    meta = QueueMeta()
    meta.set_visibilitytimeout(600)
    q.create(meta)
    for i in range(20):
        q.send_message(Message(f"m{i}"))
    inflight = q.receive_message(0)
    done = q.receive_message(0)
    q.delete_message(done.receipt_handle)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(5)

    second = start_emulator(binary(), CONFIG, tmp_path, ["--data-dir", str(data)])
    try:
        q = Account(second.mns, second.ak, second.secret).get_queue("Durable-Queue")
        attrs = q.get_attributes()
        assert attrs.visibility_timeout == 600
        assert (attrs.active_messages, attrs.inactive_messages) == (18, 1)
        bodies = [m.message_body for m in q.batch_peek_message(16)]
        assert bodies[0] == b"m2", "FIFO order kept"
        q.delete_message(inflight.receipt_handle)  # still the valid handle
        assert q.get_attributes().inactive_messages == 0
        with pytest.raises(MNSServerException):
            q.delete_message(done.receipt_handle)
    finally:
        problem = stop_emulator(second)
    assert problem is None, problem
