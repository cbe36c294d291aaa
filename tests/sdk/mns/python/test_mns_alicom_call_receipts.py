"""The vendor's alicom consumer flow end to end, on a call made through the emulator.

A device plays the Web SDK over MQTT (paho-mqtt, the ``mqtt_tcp`` listener; docs/protocol.md#handshake,
docs/protocol.md#voip-to-pstn), with an account and token from the classic Python POP SDK (aliyun-python-sdk-core:
AddRtcAccount, GetRtcToken). It registers and calls a phone (VoIP→PSTN, recorded by default),
the phone answers, the device hangs up. Then the receipt consumer does what the vendor's Python
receive demo does: ``aliyun-python-sdk-dybaseapi`` QueryTokenForMnsQueue for temporary
credentials, ``aliyun-mns-sdk`` receive (long poll) and delete, first on
``Alicom-Queue-<uid>-ArtcCdrReport`` (the call's CDR), then on ``…-VoiceRecordReport`` (the
recording report), and downloads the recording its ``record_url`` names.
"""

from __future__ import annotations

import base64
import io
import json
import queue
import threading
import time
import urllib.request
import uuid
import wave
import zlib
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

import pytest
from mns.account import Account
from mns.mns_exception import MNSServerException

from mns_helpers import admin_get

SHOW_NUMBER = "02160000001"  # a bought number of the default tenant (tests/fixtures/two-tenants.toml)
PHONE = "13800000001"  # a simulated phone that rings 1 s and answers (docs/pstn.md)
HOLD_S = 1.5  # how long the call stays up once answered
STEP_TIMEOUT_S = 10.0  # one signalling step (ACK, server request)
RECEIPT_DEADLINE_S = 30.0  # per receipt queue, across receives
API_VERSION = "2017-05-25"
CST = timezone(timedelta(hours=8))  # the vendor's times are Asia/Shanghai (no DST)


# --------------------------------------------------------------------------------------------
# the POP side (aliyun-python-sdk-core, the classic SDK)


def pop_client(emu, product: str):
    from aliyunsdkcore.client import AcsClient

    client = AcsClient(emu.ak, emu.secret, "cn-hangzhou", auto_retry=False, timeout=10, connect_timeout=5)
    client.add_endpoint("cn-hangzhou", product, emu.pop_hostport)
    return client


def dyvms(client, action: str, params: dict) -> dict:
    from aliyunsdkcore.request import CommonRequest

    req = CommonRequest(product="Dyvmsapi", version=API_VERSION, action_name=action)
    req.set_method("POST")
    for k, v in params.items():
        req.add_query_param(k, v)
    body = json.loads(client.do_action_with_exception(req))
    assert body.get("Code") == "OK", f"{action}: {body}"
    return body


# --------------------------------------------------------------------------------------------
# a virtual Web SDK device over MQTT (the Python twin of crates/emu-testkit/src/device.rs)


def encode_media_signal(ms: dict) -> str:
    """``base64(zlib(utf8 JSON))`` (docs/protocol.md#mediasignal)."""
    return base64.b64encode(zlib.compress(json.dumps(ms, separators=(",", ":")).encode())).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


class Device:
    def __init__(self, mqtt_tcp: str, rtc_id: str, token: dict):
        import paho.mqtt.client as mqtt

        self.rtc_id = rtc_id
        self.token = token
        self.session_uuid = str(uuid.uuid4())
        self.server_topic = f"{token['conferenceTopic']}/p2p/{token['serverId']}"
        self.inbox: queue.Queue = queue.Queue()
        self.backlog: list = []
        self.seen: list[str] = []  # messageTypes of server requests, in arrival order
        self._connected = threading.Event()
        self._connack: list = []
        u = urlparse(mqtt_tcp)
        assert u.scheme == "mqtt" and u.hostname and u.port, mqtt_tcp
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=token["clientId"], clean_session=True, protocol=mqtt.MQTTv311)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c
        c.connect(u.hostname, u.port, keepalive=30)
        c.loop_start()
        assert self._connected.wait(STEP_TIMEOUT_S), "no CONNACK"
        assert not self._connack[0].is_failure, f"CONNACK refused: {self._connack[0]}"
        # The SDK's handshake (docs/protocol.md#handshake): upload the token, SUBSCRIBE conferenceTopic.
        c.publish("$SYS/uploadToken", json.dumps({"token": token["tokenData"], "type": "RW"}), qos=0)
        c.subscribe(token["conferenceTopic"], qos=0)
        kind, codes = self.next_matching(lambda i: i[0] == "suback")
        assert codes and not any(rc.is_failure for rc in codes), f"SUBSCRIBE refused: {codes}"

    # paho callbacks (its network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self._connack.append(reason_code)
        self._connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.inbox.put(("suback", list(reason_codes)))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.inbox.put(("closed", str(reason_code)))

    def _on_message(self, client, userdata, msg):
        if msg.topic.startswith("$SYS/"):
            self.inbox.put(("notice", msg.topic))
            return
        env = json.loads(msg.payload)
        if not env.get("response"):
            # The SDK ACKs every server request at once: same messageType and requestId (docs/protocol.md).
            client.publish(self.server_topic, json.dumps(self.ack(env)), qos=0)
        self.inbox.put(("envelope", env))

    def ack(self, env: dict) -> dict:
        return {
            "topic": env.get("topic", "artc_media"),
            "bornTime": now_ms(),
            "to": {"sessionId": "alicombiz"},
            "from": {"sessionId": self.rtc_id, "clientType": "Web_artc", "transportType": "mqtt"},
            "messageId": str(uuid.uuid4()),
            "messageType": env["messageType"],
            "body": {"alicomRtcType": env.get("body", {}).get("alicomRtcType", "voip2voip"), "uuid": env.get("body", {}).get("uuid"),
                     "deviceId": self.rtc_id, "userId": self.rtc_id, "ip": "unknow", "token": self.token["tokenData"]},
            "response": True,
            "encryptedBody": False,
            "requestId": env["requestId"],
            "arriveTime": 0,
            "responseCode": 200,
        }

    def next_matching(self, want, timeout: float = STEP_TIMEOUT_S):
        for i, item in enumerate(self.backlog):
            if want(item):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s; unconsumed: {self.backlog}")
            try:
                item = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if item[0] == "envelope" and not item[1].get("response"):
                self.seen.append(item[1]["messageType"])
            if want(item):
                return item
            if item[0] == "closed":
                raise AssertionError(f"the connection closed: {item[1]}; unconsumed: {self.backlog}")
            self.backlog.append(item)

    def request(self, message_type: str, body: dict, media_signal: dict | None = None) -> dict:
        """Publishes a request built as the SDK does (docs/protocol.md#envelopes) and returns its ACK."""
        b = {"deviceId": self.rtc_id, "userId": self.rtc_id, "ip": "unknow", "token": self.token["tokenData"],
             "alicomRtcType": "voip2voip", "uuid": self.session_uuid}
        b.update(body)
        if media_signal is not None:
            b["mediaSignal"] = encode_media_signal(media_signal)
        topic = {"cs_register": "artc_biz", "cs_get_sls_sts": "biz"}.get(message_type, "artc_media")
        env = {
            "topic": topic, "bornTime": now_ms(), "to": {"sessionId": "alicombiz"},
            "from": {"sessionId": self.rtc_id, "clientType": "Web_artc", "transportId": self.token["clientId"], "transportType": "mqtt"},
            "messageId": str(uuid.uuid4()), "messageType": message_type, "body": b, "response": False,
            "encryptedBody": False, "requestId": str(uuid.uuid4()), "arriveTime": 0, "responseCode": 0,
        }
        self.client.publish(self.server_topic, json.dumps(env), qos=0)
        rid = env["requestId"]
        _, ack = self.next_matching(lambda i: i[0] == "envelope" and i[1].get("response") and i[1].get("requestId") == rid)
        assert ack["messageType"] == message_type, ack
        return ack

    def expect(self, message_type: str, timeout: float = STEP_TIMEOUT_S) -> dict:
        """The next server request of this type (others stay queued)."""
        _, env = self.next_matching(
            lambda i: i[0] == "envelope" and not i[1].get("response") and i[1].get("messageType") == message_type, timeout
        )
        return env

    def user_info(self) -> dict:
        return {"platform": "web", "os": "linux", "osVersion": "x86_64", "model": "paho-mqtt", "appkey": "__alicom_appkey",
                "deviceId": self.rtc_id, "userId": self.session_uuid}

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def artc(api: str, data: dict) -> dict:
    return {"data": data, "serviceName": "alicom", "api": api, "sdkVersion": "1.2.0", "seqId": f"{now_ms()}00"}


def call_pstn(dev: Device, channel_id: str, show_number: str, phone: str) -> dict:
    """``createVoIP2PstnCall(showNumber, phoneNumber).start()`` as the Web SDK performs it
    (docs/protocol.md#voip-to-pstn): joinChannel (ACK 200, then the server's joinChannel result), then call."""
    callee_uuid = str(uuid.uuid4())
    ms = artc("joinChannel", {
        "channelConfig": {"callType": "chat", "outerBizId": "alicom", "allowVideo": 0, "creator": 1, "fps": 0, "height": 0, "width": 0, "sigVersion": 1},
        "userInfo": dev.user_info(), "channelId": channel_id})
    body = {"channelId": channel_id, "isCaller": True, "needRecord": False, "alicomRtcType": "voip2pstn",
            "calleeInfo": {"isPstn": True, "phoneNumber": phone, "showNumber": show_number, "uuid": callee_uuid}}
    ack = dev.request("joinChannel", body, ms)
    assert ack["responseCode"] == 200, f"joinChannel ACK: {ack}"
    joined = dev.expect("joinChannel")
    caller = dict(dev.user_info(), role=1)
    ms = artc("call", {"channelId": channel_id, "callerUserInfo": caller,
                       "calleePstnInfo": {"mcuPhone": show_number, "phone": phone, "userId": callee_uuid}})
    dev.request("call", {"channelId": channel_id, "alicomRtcType": "voip2pstn"}, ms)
    return joined


def leave(dev: Device, channel_id: str):
    ms = artc("leaveChannel", {"channelId": channel_id, "userInfo": dev.user_info()})
    dev.request("leaveChannel", {"channelId": channel_id, "alicomRtcType": "voip2pstn"}, ms)


# --------------------------------------------------------------------------------------------
# the consumer (the vendor's Python receive demo)


def query_token_for_mns_queue(emu, message_type: str) -> dict:
    from aliyunsdkdybaseapi.request.v20170525.QueryTokenForMnsQueueRequest import QueryTokenForMnsQueueRequest

    req = QueryTokenForMnsQueueRequest()
    req.set_MessageType(message_type)
    body = json.loads(pop_client(emu, "Dybaseapi").do_action_with_exception(req))
    assert body.get("Code") == "OK", body
    dto = body["MessageTokenDTO"]
    for k in ("AccessKeyId", "AccessKeySecret", "SecurityToken", "CreateTime", "ExpireTime"):
        assert isinstance(dto.get(k), str) and dto[k], f"{k} missing: {dto}"
    created = datetime.strptime(dto["CreateTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)
    expires = datetime.strptime(dto["ExpireTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)
    assert abs((created - datetime.now(CST)).total_seconds()) < 120, f"CreateTime not now in UTC+8: {dto['CreateTime']}"
    assert expires > datetime.now(CST) + timedelta(minutes=1), f"ExpireTime: {dto['ExpireTime']}"
    return dto


def receive_report(emu, message_type: str, channel_id: str) -> tuple[dict, object]:
    """QueryTokenForMnsQueue, then receive (long poll 3 s) and delete until the report of this
    channel arrives; whatever else is there (other tests' receipts) is consumed like the demo
    does. Returns (report, the received message)."""
    dto = query_token_for_mns_queue(emu, message_type)
    queue_name = f"Alicom-Queue-{emu.uid}-{message_type}"
    q = Account(emu.mns, dto["AccessKeyId"], dto["AccessKeySecret"], dto["SecurityToken"]).get_queue(queue_name)
    others = []
    deadline = time.monotonic() + RECEIPT_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            msg = q.receive_message(3)
        except MNSServerException as e:
            assert e.type == "MessageNotExist", f"{e.type}: {e.message}"
            continue
        report = json.loads(msg.message_body)  # base64 JSON, decoded by the SDK
        q.delete_message(msg.receipt_handle)
        if report.get("channelId") == channel_id:
            return report, msg
        others.append(report.get("channelId"))
    raise AssertionError(f"no {message_type} for {channel_id} in {queue_name} within {RECEIPT_DEADLINE_S}s (received: {others})")


def assert_deleted(emu, message_type: str, channel_id: str):
    """The delete took: the queue no longer holds the report (admin peek, nothing consumed)."""
    if not emu.admin:
        return
    listed = admin_get(emu, f"/admin/mns/queues/Alicom-Queue-{emu.uid}-{message_type}/messages")
    assert channel_id not in json.dumps(listed), f"{message_type} of {channel_id} still queued: {listed}"


def shanghai(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)


# --------------------------------------------------------------------------------------------


def test_cdr_and_recording_of_a_call_reach_the_vendor_consumer(emu):
    for need in ("pop", "mqtt_tcp"):
        if need not in emu.info:
            pytest.skip(f"needs the full emulator (no '{need}' in the ready-file)")
    pytest.importorskip("paho.mqtt.client")
    started = datetime.now(CST).replace(microsecond=0)

    # 1. The app server: an account and a token (classic POP SDK); the device connects and registers.
    vms = pop_client(emu, "Dyvmsapi")
    device_id = f"py-{uuid.uuid4().hex[:12]}"
    rtc_id = dyvms(vms, "AddRtcAccount", {"DeviceId": device_id})["Module"]
    token = json.loads(dyvms(vms, "GetRtcToken", {"UserId": rtc_id, "DeviceId": device_id, "IsCustomAccount": False})["Module"])
    dev = Device(emu.info["mqtt_tcp"], rtc_id, token)
    try:
        ack = dev.request("cs_register", {})
        assert ack["responseCode"] == 200, f"cs_register ACK: {ack}"

        # 2. VoIP→PSTN, showing a bought number; the phone rings 1 s and answers; hang up.
        channel_id = uuid.uuid4().hex
        joined = call_pstn(dev, channel_id, SHOW_NUMBER, PHONE)
        ms = json.loads(zlib.decompress(base64.b64decode(joined["body"]["mediaSignal"])))
        assert ms.get("errorCode") == 0 and ms["data"]["channelId"] == channel_id, ms
        answered = dev.expect("answered")
        assert "ringing" in dev.seen[: dev.seen.index("answered")], f"no ringing before answered: {dev.seen}"
        answered_ms = json.loads(zlib.decompress(base64.b64decode(answered["body"]["mediaSignal"])))
        assert answered_ms["data"]["callResult"] == 1, answered_ms
        time.sleep(HOLD_S)
        leave(dev, channel_id)
    finally:
        dev.close()

    # 3a. The call detail record.
    cdr, msg = receive_report(emu, "ArtcCdrReport", channel_id)
    assert msg.dequeue_count == 1, f"first delivery: {msg.dequeue_count}"
    assert cdr["alicomRtcType"] == "voip2pstn", cdr
    assert cdr["caller"] == rtc_id, cdr
    assert cdr["callee"] == PHONE, cdr
    assert cdr["detail"]["displayNumber"] == SHOW_NUMBER, cdr
    start, end = shanghai(cdr["startTime"]), shanghai(cdr["endTime"])
    assert started - timedelta(seconds=1) <= start <= end <= datetime.now(CST), cdr
    assert 1 <= int(cdr["duration"]) <= 5, f"held {HOLD_S}s: {cdr}"
    (leg,) = cdr["callOutInfo"]
    assert leg["callee"] == PHONE and leg["caller"] == SHOW_NUMBER, leg
    assert leg["startTime"] == cdr["startTime"], (leg, cdr)
    assert cdr["callInInfo"]["caller"] == rtc_id, cdr
    assert_deleted(emu, "ArtcCdrReport", channel_id)

    # 3b. The recording report, and the recording it points to.
    rec, msg = receive_report(emu, "VoiceRecordReport", channel_id)
    assert rec["call_id"] == channel_id, rec
    assert rec["status_code"] == "200000", rec
    for k in ("start_time", "end_time"):
        shanghai(rec[k])
    url = rec["record_url"]
    assert url.startswith("http://") and url.endswith(".wav"), rec
    assert_deleted(emu, "VoiceRecordReport", channel_id)

    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers.get("Content-Type", "").startswith("audio/"), r.headers
        data = r.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:16]
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 2, "stereo: caller left, callee right"
        assert w.getframerate() == 8000
        assert w.getsampwidth() == 2
        frames = w.getnframes()
        pcm = w.readframes(frames)
    seconds = frames / 8000
    assert 0.5 <= seconds <= 6, f"{seconds:.2f}s recorded of a {HOLD_S}s call"
    right = [int.from_bytes(pcm[i + 2:i + 4], "little", signed=True) for i in range(0, len(pcm), 4)]
    assert max(abs(s) for s in right) > 1000, "the phone's side (right channel) is in the recording"
