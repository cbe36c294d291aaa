#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) from the captures in this
repository: the SDK signature vectors, the recorded Web SDK CONNECT and signals, the Chrome offer,
the documented behaviours, configurations and MNS bodies. Run from the repository root; the
files it writes are committed, so this only needs running again when a capture changes."""

import base64
import json
import os
import re
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def code_blocks(doc, lang):
    text = (ROOT / "docs" / doc).read_text()
    return re.findall(r"```" + lang + r"\n(.*?)```", text, re.S)


# --- MQTT -------------------------------------------------------------------------------------
# The Web SDK's CONNECT, one WebSocket frame per field (crates/emu-gateway/src/mqtt.rs tests).
CONNECT = bytes.fromhex("10220004" "4d515454" "04" "02" "001e" "0016" "4749445f656d75404040353834383137373166396162")


def remaining(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(s)) + s


def publish(topic, payload, qos=0, pkid=1):
    body = mqtt_str(topic) + (struct.pack(">H", pkid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + remaining(len(body)) + body


def subscribe(pkid, topic):
    body = struct.pack(">H", pkid) + mqtt_str(topic) + b"\x00"
    return b"\x82" + remaining(len(body)) + body


SERVER_TOPIC = "cs_alicom_voip_conference/p2p/GID_VOIP@@@" + base64.b64encode(b"127.0.0.1").decode()

REGISTER = {
    "topic": "artc_biz", "bornTime": 1795666769629, "to": {"sessionId": "alicombiz"},
    "from": {"sessionId": "alice", "clientType": "Web_artc", "transportId": "GID_emu@@@58481771f9ab",
             "transportType": "mqtt"},
    "messageId": "aa4bb01b", "messageType": "cs_register",
    "body": {"deviceId": "alice", "userId": "alice", "ip": "unknow", "token": "emu-token"},
    "response": False, "encryptedBody": False, "requestId": "8a9", "arriveTime": 0, "responseCode": 0,
}
# canceledCall as the real SDK sent it (pako output, crates/emu-gateway/src/media_signal.rs tests).
CANCELED = "eJwNyjsOgCAMANC7dHYBSvmsTh6jlhJNGuLgRri7vvlN4OeGCsJD1LTtbAYbNH4Z6gS5eAy1o/0lK3qi7IIWwq54RhVKPgWkWKQ7WOsDx4gXcA=="
CHROME = json.loads((ROOT / "crates/emu-media/tests/data/chrome-sdpCandidate.json").read_text())
CHROME_SIGNAL = base64.b64encode(zlib.compress(json.dumps(CHROME, separators=(",", ":")).encode())).decode()


def envelope(message_type, body, request_id, response=False):
    e = dict(REGISTER, messageType=message_type, body=body, requestId=request_id, response=response)
    return json.dumps(e, separators=(",", ":")).encode()


ENVELOPES = {
    "register.json": envelope("cs_register", REGISTER["body"], "8a9"),
    "sts.json": envelope("cs_get_sls_sts", {}, "s1"),
    "sdp-candidate.json": envelope("sdpCandidate", {"channelId": "c1", "uuid": "u1", "mediaSignal": CHROME_SIGNAL}, "r2"),
    "join.json": envelope("joinChannel", {"channelId": "c1", "isCaller": True, "alicomRtcType": "voip2voip",
                                          "needRecord": False, "uuid": "u1", "mediaSignal": CHROME_SIGNAL}, "r3"),
    "call.json": envelope("call", {"channelId": "c1", "uuid": "u1", "mediaSignal": base64.b64encode(zlib.compress(
        b'{"api":"call","data":{"channelId":"c1","calleeDeviceInfo":{"deviceList":[{"deviceId":"bob"}]},'
        b'"cancelFlag":"CALL_CANCLE_FLAG_WHEN_ALL_CALLEE_REJECT"}}')).decode()}, "r4"),
    "call-pstn.json": envelope("call", {"channelId": "c1", "uuid": "u1", "mediaSignal": base64.b64encode(zlib.compress(
        b'{"api":"call","data":{"channelId":"c1","calleePstnInfo":{"phone":"13800000000","mcuPhone":"057100000000"}}}'
    )).decode()}, "r5"),
    "canceled.json": envelope("cancelCall", {"channelId": "c1", "uuid": "u1", "mediaSignal": CANCELED}, "r6"),
    "answer.json": envelope("answer", {"channelId": "c1", "uuid": "u2", "mediaSignal": base64.b64encode(zlib.compress(
        b'{"api":"answer","data":{"channelId":"c1","callResult":1}}')).decode()}, "r7"),
    "ack.json": envelope("called", {}, "srv-1", response=True),
    "custom.json": envelope("cs_custom_message_send", {"to": "bob", "content": "hi"}, "r8"),
    "leave.json": envelope("leaveChannel", {"channelId": "c1", "uuid": "u1"}, "r9"),
}

put("mqtt_framer", "web-sdk-connect", CONNECT)
put("mqtt_framer", "session", CONNECT + subscribe(1, "cs_alicom_voip_conference") +
    publish(SERVER_TOPIC, ENVELOPES["register.json"], qos=1, pkid=2) + b"\xc0\x00" + b"\xe0\x00")
put("mqtt_framer", "upload-token", CONNECT + publish("$SYS/uploadToken", b'{"token":"emu-token"}'))
put("gateway", "logged-in", b"\x01" + subscribe(1, "cs_alicom_voip_conference") +
    publish(SERVER_TOPIC, ENVELOPES["register.json"], qos=1, pkid=2) + b"\xc0\x00")
put("gateway", "logged-in-call", b"\x01" + publish(SERVER_TOPIC, ENVELOPES["join.json"]) +
    publish(SERVER_TOPIC, ENVELOPES["call.json"], qos=1, pkid=3) + b"\xe0\x00")
put("gateway", "connect", b"\x00" + CONNECT + publish("$SYS/uploadToken", b'{"token":"bogus"}') + b"\xc0\x00")
for name, e in ENVELOPES.items():
    put("envelope", name, e)

# --- mediaSignal: mode, cap (big-endian), signal -------------------------------------------------
put("media_signal", "captured-canceled", b"\x01\x10\x00" + CANCELED.encode())
put("media_signal", "chrome-sdp-base64", b"\x01\xff\xff" + CHROME_SIGNAL.encode())
put("media_signal", "chrome-sdp-zlib", b"\x00\xff\xff" + zlib.compress(json.dumps(CHROME).encode()))
put("media_signal", "gzip", b"\x00\x08\x00" + __import__("gzip").compress(b'{"api":"stat","data":{}}'))
put("media_signal", "bomb", b"\x00\x04\x00" + zlib.compress(b'{"pad":"' + b"a" * 100000 + b'"}', 9))

# --- POP: the SDK signature vectors as HTTP requests ---------------------------------------------
vectors = json.loads((ROOT / "crates/emu-pop/tests/vectors/test_vectors.json").read_text())
vectors += json.loads((ROOT / "crates/emu-pop/tests/vectors/test_vectors_node.json").read_text())
for v in vectors:
    name = v["name"]
    if name.startswith("rpc-v1"):
        target = v.get("request_target")
        if not target:
            from urllib.parse import quote
            target = "/?" + "&".join(f"{quote(k, safe='-_.~')}={quote(str(x), safe='-_.~')}"
                                    for k, x in v["params"].items())
        req = f"{v['method']} {target} HTTP/1.1\r\nhost: 127.0.0.1:18080\r\n\r\n"
        put("pop_request", name, req)
        if v["method"] == "POST":
            path, query = target.split("?", 1)
            put("pop_request", name + "-form", f"POST / HTTP/1.1\r\nhost: 127.0.0.1:18080\r\n"
                f"content-type: application/x-www-form-urlencoded\r\n\r\n{query}")
    elif name.startswith("acs3"):
        from urllib.parse import quote
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(x, safe='-_.~')}" for k, x in v["query"].items())
        headers = "".join(f"{k}: {x}\r\n" for k, x in v["headers"].items())
        req = f"{v['method']} /?{query} HTTP/1.1\r\n{headers}authorization: {v['authorization']}\r\n\r\n{v['body']}"
        put("pop_request", name, req)
        put("acs3_header", name, v["authorization"] + "\n" + headers.replace("\r\n", "\n") + "\n" + query)
put("acs3_header", "spaces", "ACS3-HMAC-SHA256  Credential=testAK , SignedHeaders=host; x-acs-date ,Signature=00\n"
    "host: 127.0.0.1\nx-acs-date: 2024-01-01T00:00:00Z\n\nA=1&b=%20")

# --- MNS bodies ---------------------------------------------------------------------------------
for v in vectors:
    if v.get("body", "").startswith("<?xml"):
        put("mns_xml", v["name"], v["body"])
for i, block in enumerate(code_blocks("mns.md", "xml")):
    put("mns_xml", f"docs-{i}", block)
put("mns_xml", "batch-send", '<?xml version="1.0" encoding="UTF-8"?><Messages xmlns="http://mns.aliyuncs.com/doc/v1/">'
    '<Message><MessageBody>YQ==</MessageBody><DelaySeconds>0</DelaySeconds><Priority>8</Priority>'
    '<UserProperties><PropertyValue><Name>k</Name><Value>v &amp; w</Value><Type>STRING</Type></PropertyValue>'
    '</UserProperties></Message><Message><MessageBody><![CDATA[b<c>]]></MessageBody></Message></Messages>')
put("mns_xml", "batch-delete", "<ReceiptHandles xmlns=\"http://mns.aliyuncs.com/doc/v1/\"><ReceiptHandle>"
    "1-ODU4OTkzNDU5My0xNDMyNzI3ODI3LTItOA==</ReceiptHandle><ReceiptHandle>b</ReceiptHandle></ReceiptHandles>")
put("mns_xml", "queue-attributes", "<Queue xmlns=\"http://mns.aliyuncs.com/doc/v1/\"><VisibilityTimeout>60"
    "</VisibilityTimeout><PollingWaitSeconds>30</PollingWaitSeconds><LoggingEnabled>True</LoggingEnabled></Queue>")
put("mns_xml", "node-unescaped", "<Message><MessageBody>{\"a\":\"<b>&\"}</MessageBody></Message>")
put("mns_xml", "query", "numOfMessages=16&waitseconds=30&peekonly=true&receiptHandle=1-a+b%3D")

# --- SDP offers ---------------------------------------------------------------------------------
offer = CHROME["data"]["sdpInfo"]["sdp"]
put("sdp_answer", "chrome-audio.sdp", offer)
candidates = "".join(f"a={c['candidate']}\r\n" for c in CHROME["data"].get("candidateList", [])
                     if isinstance(c, dict) and "candidate" in c)
put("sdp_answer", "chrome-audio-candidates.sdp", offer + candidates)
video = offer.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1") + (
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:rbgU\r\na=ice-pwd:zHc8NM3LM0GCXi4YHjN2D4S5\r\na=setup:actpass\r\na=mid:1\r\na=sendrecv\r\n"
    "a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n")
put("sdp_answer", "chrome-audio-video.sdp", video)
put("sdp_answer", "pcmu-only.sdp", re.sub(r"m=audio 9 UDP/TLS/RTP/SAVPF [0-9 ]+", "m=audio 9 UDP/TLS/RTP/SAVPF 0", offer))

# --- STUN and TURN datagrams ---------------------------------------------------------------------
MAGIC = 0x2112A442


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack(">HH", t, len(v)) + v + b"\0" * pad


def stun(msg_type, attrs, tid=b"\x07" * 12, integrity=True, fingerprint=True):
    body = b"".join(attrs)
    if integrity:  # a placeholder MESSAGE-INTEGRITY (the fuzzer cannot know the key)
        body += attr(0x0008, b"\0" * 20)
    msg = struct.pack(">HHI", msg_type, len(body) + (8 if fingerprint else 0), MAGIC) + tid + body
    if fingerprint:
        crc = (zlib.crc32(msg) ^ 0x5354554E) & 0xFFFFFFFF
        msg += attr(0x8028, struct.pack(">I", crc))
    return msg


binding = stun(0x0001, [attr(0x0006, b"UFRAGUFR:rbgU"), attr(0x0024, struct.pack(">I", 2122260223)),
                        attr(0x802A, b"\x01\x02\x03\x04\x05\x06\x07\x08"), attr(0x0025, b"")])
put("stun_datagram", "binding-use-candidate", binding)
put("stun_datagram", "binding-then-media", binding + b"DGM|" +
    bytes.fromhex("16fefd000000000000000000a2010000960000000000000096fefd") + b"\0" * 32 + b"DGM|" +
    bytes.fromhex("806f0001000000a0deadbeef") + b"\x00" * 40 + b"DGM|" +
    bytes.fromhex("81c80006deadbeef") + b"\0" * 20)
put("stun_datagram", "rtp", bytes.fromhex("80e00001000003c0cafebabe") + b"\xff" * 160)


def xor_addr(ip, port):
    x_port = port ^ (MAGIC >> 16)
    x_ip = struct.unpack(">I", bytes(ip))[0] ^ MAGIC
    return struct.pack(">BBHI", 0, 1, x_port, x_ip)


allocate = stun(0x0003, [attr(0x0019, b"\x11\0\0\0"), attr(0x000D, struct.pack(">I", 600))],
                integrity=False, fingerprint=False)
permission = stun(0x0008, [attr(0x0012, xor_addr([127, 0, 0, 1], 40000))], tid=b"\x08" * 12,
                  integrity=False, fingerprint=False)
bind = stun(0x0009, [attr(0x000C, b"\x40\x00\0\0"), attr(0x0012, xor_addr([127, 0, 0, 1], 40000))],
            tid=b"\x09" * 12, integrity=False, fingerprint=False)
send = stun(0x0016, [attr(0x0012, xor_addr([127, 0, 0, 1], 40000)), attr(0x0013, b"hello")],
            tid=b"\x0a" * 12, integrity=False, fingerprint=False)
refresh = stun(0x0004, [attr(0x000D, struct.pack(">I", 0))], tid=b"\x0b" * 12, integrity=False, fingerprint=False)
channel_data = b"\x40\x00\x00\x05hello\0\0\0"
put("turn_message", "allocate", allocate)
put("turn_message", "session", b"DGM|".join([allocate, permission, bind, send, channel_data, refresh]))
put("turn_message", "binding", stun(0x0001, [], integrity=False))

# --- Behaviours ---------------------------------------------------------------------------------
for doc in ["pstn.md", "voip-devices.md"]:
    for i, block in enumerate(code_blocks(doc, "json")):
        try:
            value = json.loads(block)
        except ValueError:
            continue
        b = value.get("behavior", value) if isinstance(value, dict) else None
        if isinstance(b, dict) and ("then" in b or "ring_ms" in b):
            put("behavior", f"{doc[:-3]}-{i}.json", json.dumps(b))
put("behavior", "every-field.json", json.dumps({"ring_ms": 3000, "then": "reject", "hangup_after_ms": 10000,
    "dtmf": [{"digits": "1#"}, {"after_ms": 5000, "digits": "*9", "gap_ms": 50}], "audio": "echo"}))
put("behavior", "device.json", json.dumps({"ring_ms": 0, "then": "answer_then_leave", "hangup_after_ms": 5,
                                           "audio": {"wav": "fixtures/audio/hello.wav"}, "ack": False}))
put("behavior", "manual.json", '{"then":"manual"}')

# --- Configuration ------------------------------------------------------------------------------
put("config_toml", "default.toml", (ROOT / "fixtures/default.toml").read_text())
put("config_toml", "two-tenants.toml", (ROOT / "tests/fixtures/two-tenants.toml").read_text())
for doc in ["configuration.md", "pstn.md", "voip-devices.md", "benchmarks.md"]:
    for i, block in enumerate(code_blocks(doc, "toml")):
        put("config_toml", f"{doc[:-3]}-{i}.toml", block)

total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
print(f"{sum(1 for f in OUT.rglob('*') if f.is_file())} seeds, {total} bytes")
