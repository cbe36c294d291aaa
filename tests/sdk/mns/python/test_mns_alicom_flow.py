"""The vendor's alicom consumer flow: temporary credentials for Alicom-Queue-<uid>-<MessageType>
(QueryTokenForMnsQueue), aliyun-mns-sdk receive with a long poll, delete; and the errors of
temporary credentials (wrong token, other queue, expiry)."""

from __future__ import annotations

import json
import time

import pytest
from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.queue import Message, QueueMeta

from mns_helpers import admin_post, query_token, unique


def ensure(account, name):
    try:
        account.get_queue(name).create(QueueMeta())
    except MNSServerException as e:
        assert e.type == "QueueAlreadyExist", e.type


def test_receipt_consumer_receives_and_deletes_with_temporary_credentials(emu):
    queue_name = f"Alicom-Queue-{emu.uid}-ArtcCdrReport"
    root = Account(emu.mns, emu.ak, emu.secret)
    ensure(root, queue_name)
    creds = query_token(emu, "ArtcCdrReport")
    report = {"channelId": unique("ch"), "duration": "60", "startTime": "2024-01-01 10:00:00"}
    root.get_queue(queue_name).send_message(Message(json.dumps(report)))

    consumer = Account(emu.mns, creds.access_key_id, creds.access_key_secret, creds.security_token).get_queue(queue_name)
    received = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = consumer.receive_message(3)  # what the Python receive demo does
        body = json.loads(msg.message_body)
        if body.get("channelId") == report["channelId"]:
            received = msg
            break
        consumer.delete_message(msg.receipt_handle)
    assert received is not None
    consumer.delete_message(received.receipt_handle)
    with pytest.raises(MNSServerException) as ei:
        consumer.receive_message(1)
    assert ei.value.type == "MessageNotExist"


def test_temporary_credentials_are_checked(emu):
    queue_name = f"Alicom-Queue-{emu.uid}-VoiceRecordReport"
    root = Account(emu.mns, emu.ak, emu.secret)
    ensure(root, queue_name)
    creds = query_token(emu, "VoiceRecordReport")

    wrong_token = Account(emu.mns, creds.access_key_id, creds.access_key_secret, "CAISnotthetoken").get_queue(queue_name)
    with pytest.raises(MNSServerException) as ei:
        wrong_token.receive_message(0)
    assert ei.value.type == "AccessDenied"
    no_token = Account(emu.mns, creds.access_key_id, creds.access_key_secret).get_queue(queue_name)
    with pytest.raises(MNSServerException) as ei:
        no_token.receive_message(0)
    assert ei.value.type == "AccessDenied"

    other_name = unique("not-the-alicom-queue")
    root.get_queue(other_name).create(QueueMeta())
    elsewhere = Account(emu.mns, creds.access_key_id, creds.access_key_secret, creds.security_token).get_queue(other_name)
    with pytest.raises(MNSServerException) as ei:
        elsewhere.receive_message(0)
    assert ei.value.type == "AccessDenied", "a token for one queue does not open another"
    root.get_queue(other_name).delete()


def test_expired_temporary_token_is_refused(emu):
    if not emu.admin:
        pytest.skip("no admin endpoint to issue a short-lived credential")
    name = unique("expiry")
    root = Account(emu.mns, emu.ak, emu.secret)
    root.get_queue(name).create(QueueMeta())
    status, c = admin_post(emu, "/admin/sts", {"lifetime_secs": 1})
    assert status == 200, c
    q = Account(emu.mns, c["accessKeyId"], c["accessKeySecret"], c["securityToken"]).get_queue(name)
    with pytest.raises(MNSServerException) as ei:
        q.receive_message(0)
    assert ei.value.type == "MessageNotExist", "valid before it expires"
    time.sleep(1.3)
    with pytest.raises(MNSServerException) as ei:
        q.receive_message(0)
    assert ei.value.type == "AccessDenied"
    assert "expired" in ei.value.message
    root.get_queue(name).delete()


def test_a_real_call_leaves_its_cdr_in_the_alicom_queue(emu):
    """A phone calls a bought number with no inbound route: the call ends unanswered, and its
    ArtcCdrReport reaches the tenant's queue, read with QueryTokenForMnsQueue credentials as the
    vendor's consumer does (base64 JSON body, decoded by the SDK)."""
    if emu.admin is None or emu.pop_hostport is None:
        pytest.skip("needs the full emulator (admin and pop endpoints)")
    status, call = admin_post(emu, "/admin/pstn/calls", {"from": "13911119999", "to": "02160000001"})
    assert status == 201, call
    channel_id = call["channelId"]
    queue_name = f"Alicom-Queue-{emu.uid}-ArtcCdrReport"
    creds = query_token(emu, "ArtcCdrReport")  # creates the queue if no call has yet
    consumer = Account(emu.mns, creds.access_key_id, creds.access_key_secret, creds.security_token).get_queue(queue_name)
    found = None
    deadline = time.monotonic() + 10
    while found is None and time.monotonic() < deadline:
        try:
            msg = consumer.receive_message(3)
        except MNSServerException as e:
            assert e.type == "MessageNotExist", e.type
            continue
        body = json.loads(msg.message_body)
        consumer.delete_message(msg.receipt_handle)
        if body.get("channelId") == channel_id:
            found = body
    assert found is not None, "the CDR of the call never arrived"
    assert found["duration"] == "0"
    assert "startTime" not in found
    assert found["callInInfo"]["caller"] == "13911119999"
    assert len(found["endTime"]) == 0
