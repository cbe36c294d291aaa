"""aliyun-mns-sdk 1.3.0 (unmodified) against the emulator's MNS service: every queue operation
and the vendor errors, as the SDK surfaces them (MNSServerException.type / req_id / host_id)."""

from __future__ import annotations

import base64
import threading
import time

import pytest
from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.queue import Message, QueueMeta

from mns_helpers import raw_request, unique


@pytest.fixture
def account(emu):
    return Account(emu.mns, emu.ak, emu.secret)


@pytest.fixture
def queue(account):
    name = unique("sdk-py")
    q = account.get_queue(name)
    meta = QueueMeta()
    meta.set_visibilitytimeout(30)
    q.create(meta)
    yield q
    try:
        q.delete()
    except MNSServerException:
        pass


def server_error(fn, *args, **kwargs) -> MNSServerException:
    with pytest.raises(MNSServerException) as ei:
        fn(*args, **kwargs)
    e = ei.value
    assert e.req_id, "every error carries a RequestId"
    if e.sub_errors is None:  # batch partial failures have per-handle errors instead
        assert e.host_id, "every error carries a HostId"
    return e


def test_queue_lifecycle_attributes_and_list(account):
    prefix = unique("life")
    q = account.get_queue(prefix + "-a")
    meta = QueueMeta()
    meta.set_visibilitytimeout(45)
    meta.set_polling_wait_seconds(2)
    meta.set_delay_seconds(0)
    meta.set_maximum_message_size(2048)
    meta.set_message_retention_period(3600)
    meta.set_logging_enabled(False)
    url = q.create(meta)
    assert url.endswith(f"/queues/{prefix}-a")
    assert q.create(meta) == url, "CreateQueue with the same attributes is idempotent (204)"
    other = QueueMeta()
    other.set_visibilitytimeout(46)
    assert server_error(q.create, other).type == "QueueAlreadyExist"

    attrs = q.get_attributes()
    assert (attrs.visibility_timeout, attrs.polling_wait_seconds, attrs.maximum_message_size) == (45, 2, 2048)
    assert attrs.message_retention_period == 3600 and attrs.logging_enabled is False
    assert attrs.queue_name == prefix + "-a"
    assert attrs.create_time > 1_600_000_000 and attrs.last_modify_time >= attrs.create_time

    change = QueueMeta()
    change.set_visibilitytimeout(60)
    change.set_logging_enabled(True)
    q.set_attributes(change)
    attrs = q.get_attributes()
    assert attrs.visibility_timeout == 60 and attrs.logging_enabled is True
    assert attrs.polling_wait_seconds == 2, "unchanged attributes stay"

    for s in ("b", "c"):
        account.get_queue(f"{prefix}-{s}").create(QueueMeta())
    urls, marker = account.list_queue(prefix=prefix, ret_number=2)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"{prefix}-a", f"{prefix}-b"]
    assert marker
    urls, marker = account.list_queue(prefix=prefix, ret_number=2, marker=marker)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"{prefix}-c"] and marker == ""

    for s in ("a", "b", "c"):
        account.get_queue(f"{prefix}-{s}").delete()
    assert server_error(q.get_attributes).type == "QueueNotExist"


def test_send_receive_delete(queue):
    sent = queue.send_message(Message('{"call_id":"1","duration":"60"}'))
    assert len(sent.message_id) == 32 and len(sent.message_body_md5) == 32
    got = queue.receive_message(3)
    assert got.message_body == b'{"call_id":"1","duration":"60"}'
    assert got.message_id == sent.message_id
    assert got.dequeue_count == 1 and got.priority == 8
    assert got.first_dequeue_time >= got.enqueue_time
    assert got.next_visible_time >= got.first_dequeue_time + 29_000
    # PHP demos check md5(base64 body) against MessageBodyMD5.
    import hashlib

    b64 = base64.b64encode(got.message_body).decode()
    assert hashlib.md5(b64.encode()).hexdigest().upper() == got.message_body_md5
    assert all(c.isalnum() or c == "-" for c in got.receipt_handle)
    queue.delete_message(got.receipt_handle)
    e = server_error(queue.delete_message, got.receipt_handle)
    assert e.type == "ReceiptHandleError"
    assert server_error(queue.receive_message, 0).type == "MessageNotExist"


def test_batch_send_receive_peek_and_delete(queue):
    msgs = [Message(f"m{i}", priority=(i % 16) + 1) for i in range(16)]
    sent = queue.batch_send_message(msgs)
    assert len(sent) == 16
    peeked = queue.batch_peek_message(4)
    assert [m.message_body for m in peeked] == [b"m0", b"m1", b"m2", b"m3"], "priority 1 first"
    assert all(m.dequeue_count == 0 for m in peeked)
    one = queue.peek_message()
    assert one.message_body == b"m0" and one.dequeue_count == 0

    got = queue.batch_receive_message(16, 1)
    assert sorted(m.message_body for m in got) == sorted(f"m{i}".encode() for i in range(16))
    assert all(m.dequeue_count == 1 for m in got)
    handles = [m.receipt_handle for m in got]
    queue.batch_delete_message(handles[:8])
    # Partial failure: the SDK raises with the failed handles as sub-errors.
    e = server_error(queue.batch_delete_message, handles[:1] + handles[8:])
    assert e.type == "ReceiptHandleError"
    assert [s["ReceiptHandle"] for s in e.sub_errors] == handles[:1]
    attrs = queue.get_attributes()
    assert (attrs.active_messages, attrs.inactive_messages) == (0, 0)
    assert server_error(queue.batch_receive_message, 16, 0).type == "MessageNotExist"
    assert server_error(queue.peek_message).type == "MessageNotExist"
    assert server_error(queue.batch_peek_message, 16).type == "MessageNotExist"
    assert server_error(queue.batch_send_message, [Message("x")] * 17).type == "InvalidArgument"


def test_change_visibility_and_the_visibility_timeout(queue):
    queue.send_message(Message("again"))
    first = queue.receive_message(3)
    changed = queue.change_message_visibility(first.receipt_handle, 1)
    assert changed.receipt_handle != first.receipt_handle
    assert server_error(queue.delete_message, first.receipt_handle).type == "ReceiptHandleError"
    # Not deleted: back after 1 s with a higher dequeue count.
    again = queue.receive_message(5)
    assert again.message_body == b"again" and again.dequeue_count == 2
    assert again.first_dequeue_time == first.first_dequeue_time
    assert server_error(queue.delete_message, changed.receipt_handle).type == "ReceiptHandleError"
    assert server_error(queue.change_message_visibility, again.receipt_handle, 0).type == "InvalidArgument"
    queue.delete_message(again.receipt_handle)


def test_long_poll_returns_within_milliseconds_of_a_send(emu, queue):
    result = {}
    # One SDK client per thread: an Account's HTTP connection is not shared across threads.
    sender = Account(emu.mns, emu.ak, emu.secret).get_queue(queue.queue_name)

    def poll():
        result["msg"] = queue.receive_message(20)
        result["at"] = time.monotonic()

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), "the long poll waits"
    sent_at = time.monotonic()
    sender.send_message(Message("wake up"))
    t.join(10)
    assert result["msg"].message_body == b"wake up"
    latency = result["at"] - sent_at
    assert latency < 0.25, f"answered {latency * 1000:.0f} ms after the send"
    queue.delete_message(result["msg"].receipt_handle)


def test_delay_and_priority_limits(queue):
    queue.send_message(Message("later", delay_seconds=1))
    assert queue.get_attributes().delay_messages == 1
    assert server_error(queue.receive_message, 0).type == "MessageNotExist"
    got = queue.receive_message(5)
    assert got.message_body == b"later"
    queue.delete_message(got.receipt_handle)
    assert server_error(queue.send_message, Message("p", priority=17)).type == "InvalidArgument"
    assert server_error(queue.send_message, Message("d", delay_seconds=604801)).type == "InvalidArgument"
    assert server_error(queue.receive_message, 31).type == "InvalidArgument"


def test_message_size_limit(queue):
    ok = "x" * 49152  # 64 KiB once base64-encoded
    queue.send_message(Message(ok))
    e = server_error(queue.send_message, Message("x" * 49153))
    assert e.type == "InvalidArgument"
    got = queue.receive_message(1)
    assert len(got.message_body) == 49152
    queue.delete_message(got.receipt_handle)


def test_unknown_queue_wrong_secret_unknown_key(emu, queue):
    account = Account(emu.mns, emu.ak, emu.secret)
    assert server_error(account.get_queue("No-Such-Queue-" + unique("x")).receive_message, 0).type == "QueueNotExist"
    bad = Account(emu.mns, emu.ak, "wrongSecret").get_queue(queue.queue_name)
    assert server_error(bad.receive_message, 0).type == "SignatureDoesNotMatch"
    nobody = Account(emu.mns, "NoSuchAK", "x").get_queue(queue.queue_name)
    assert server_error(nobody.receive_message, 0).type == "InvalidAccessKeyId"


def test_tenants_do_not_see_each_other(emu, queue):
    other = Account(emu.mns, "otherAK", "otherSecret")
    assert server_error(other.get_queue(queue.queue_name).get_attributes).type == "QueueNotExist"
    urls, _ = other.list_queue(prefix=queue.queue_name)
    assert urls == []


def test_raw_bad_input_gets_the_vendor_error_xml(emu, queue):
    target = f"/queues/{queue.queue_name}/messages"
    queue.send_message(Message("keep me"))
    for body, code in [
        (b"<Message><MessageBody>x</Message>", "MalformedXML"),
        (b"definitely not xml", "MalformedXML"),
        (b"<Message><MessageBody>" + b"x" * 65537 + b"</MessageBody></Message>", "InvalidArgument"),
    ]:
        status, headers, text = raw_request(emu, "POST", target, body)
        assert status == 400, text
        assert headers["content-type"] == "text/xml;charset=utf-8"
        assert '<Error xmlns="http://mns.aliyuncs.com/doc/v1">' in text
        assert f"<Code>{code}</Code>" in text
        for t in ("Message", "RequestId", "HostId"):
            assert f"<{t}>" in text, text
    got = queue.receive_message(1)
    assert got.message_body == b"keep me", "nothing lost"
    queue.delete_message(got.receipt_handle)
