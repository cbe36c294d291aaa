"""The rest of the surface, through the classic SDK (aliyun-python-sdk-core 2.16.1 +
aliyun-python-sdk-dyvmsapi 3.2.0 typed requests): the nine other RTC/VoIP actions and their
state, tenant isolation and the account limit, the account-state codes, XML, the admin API.
"""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import pytest

from emu_helpers import ApiError, ClassicFlavour, check_token_module, new_device_id

OTHER_AK, OTHER_SECRET, OTHER_LIMIT = "otherAK", "otherSecret", 3


@pytest.fixture(scope="module")
def classic(emu):
    return ClassicFlavour(emu)


def ok(reply):
    assert reply.code == "OK", reply.body
    assert reply.body.get("RequestId"), reply.body
    return reply.body.get("Module")


def phone() -> str:
    return "138" + "".join(random.choice("0123456789") for _ in range(8))


# ------------------------------------------------------------------------------ other actions


def test_voip_account_and_token(classic):
    dev = new_device_id("voip")
    voip_id = ok(classic.call("VoipAddAccount", {"DeviceId": dev}))
    assert isinstance(voip_id, str) and voip_id.isdigit(), voip_id
    assert ok(classic.call("VoipAddAccount", {"DeviceId": dev})) == voip_id
    module = ok(classic.call("VoipGetToken", {"VoipId": voip_id, "DeviceId": dev, "IsCustomAccount": False}))
    check_token_module(module, classic.emu, voip_id)
    module = ok(classic.call("VoipGetToken", {"VoipId": "voip-custom-1", "DeviceId": dev, "IsCustomAccount": True}))
    assert json.loads(module)["tokenData"]


def query_auth(classic, number):
    module = ok(classic.call("QueryRtcNumberAuthStatus", {"PhoneNumber": number}))
    assert isinstance(module, str), module
    status = json.loads(module)
    assert status.get("phoneNumber") == number, status
    return status.get("status")


def test_number_auth_state(classic):
    number = phone()
    assert query_auth(classic, number) == "UNAUTHED"
    assert ok(classic.call("DoRtcNumberAuth", {"PhoneNumber": number})) == "true"
    assert query_auth(classic, number) == "AUTHED"
    assert ok(classic.call("UndoRtcNumberAuth", {"PhoneNumber": number})) == "true"
    assert query_auth(classic, number) == "UNAUTHED"


def bind_infos(classic, number, voip_id):
    module = ok(classic.call("QueryVoipNumberBindInfos", {"PhoneNumber": number, "VoipId": voip_id}))
    assert isinstance(module, str), module
    infos = json.loads(module)
    assert isinstance(infos, list), infos
    for info in infos:
        assert {"phoneNumber", "voipId", "bindTime"} <= info.keys(), info
    return infos


def test_bind_number_state(classic):
    voip_id = ok(classic.call("VoipAddAccount", {"DeviceId": new_device_id("bind")}))
    number = phone()
    assert not [i for i in bind_infos(classic, number, voip_id) if i["phoneNumber"] == number]
    assert ok(classic.call("BindNumberAndVoipId", {"PhoneNumber": number, "VoipId": voip_id})) == "true"
    infos = bind_infos(classic, number, voip_id)
    assert [i for i in infos if i["phoneNumber"] == number and i["voipId"] == voip_id], infos
    assert ok(classic.call("UnbindNumberAndVoipId", {"PhoneNumber": number, "VoipId": voip_id})) == "true"
    infos = bind_infos(classic, number, voip_id)
    assert not [i for i in infos if i["phoneNumber"] == number and i["voipId"] == voip_id], infos


def test_report_voip_problems(classic):
    voip_id = ok(classic.call("VoipAddAccount", {"DeviceId": new_device_id("report")}))
    # the encoding edge cases of docs/pop-api.md#signatures, through the real signer
    module = ok(
        classic.call(
            "ReportVoipProblems",
            {"VoipId": voip_id, "Title": "a b*c~d+e/f=g&h", "Desc": "中文 é", "ChannelId": "x!'()"},
        )
    )
    assert isinstance(module, str) and module, module


def test_typed_request_classes_exist():
    """The actions above really went through aliyun-python-sdk-dyvmsapi 3.2.0 request classes."""
    from emu_helpers import _classic_request_class

    for action in (
        "AddRtcAccount GetRtcToken VoipAddAccount VoipGetToken DoRtcNumberAuth QueryRtcNumberAuthStatus "
        "UndoRtcNumberAuth BindNumberAndVoipId QueryVoipNumberBindInfos UnbindNumberAndVoipId ReportVoipProblems"
    ).split():
        assert _classic_request_class(action) is not None, action


# ------------------------------------------------------------------------------ tenants


@pytest.fixture(scope="module")
def other_account(classic):
    """An account created by the second tenant's key (created before the limit test fills it)."""
    dev = new_device_id("other")
    rtc_id = ok(classic.call("AddRtcAccount", {"DeviceId": dev}, ak=OTHER_AK, secret=OTHER_SECRET))
    return rtc_id, dev


def test_tenant_isolation(classic, other_account, admin):
    rtc_id, dev = other_account
    # the owner can get a token ...
    module = ok(
        classic.call(
            "GetRtcToken", {"UserId": rtc_id, "DeviceId": dev, "IsCustomAccount": False}, ak=OTHER_AK, secret=OTHER_SECRET
        )
    )
    check_token_module(module, classic.emu, rtc_id)
    # ... the default tenant cannot see it
    r = classic.call("GetRtcToken", {"UserId": rtc_id, "DeviceId": dev, "IsCustomAccount": False})
    assert r.code == "isv.ACCOUNT_NOT_EXISTS", r.body

    mine_dev = new_device_id("mine")
    mine = ok(classic.call("AddRtcAccount", {"DeviceId": mine_dev}))
    default_accounts = admin.accounts("default")
    assert [a for a in default_accounts if a.get("rtcId") == mine and a.get("deviceId") == mine_dev], default_accounts
    for a in default_accounts:
        assert a.get("tenant") == "default", a
    other_accounts = admin.accounts("other")
    assert not [a for a in other_accounts if a.get("rtcId") == mine or a.get("deviceId") == mine_dev], other_accounts
    assert [a for a in other_accounts if a.get("rtcId") == rtc_id], other_accounts


def test_account_limit(classic, other_account, admin):
    existing = len(admin.accounts("other"))
    assert 1 <= existing <= OTHER_LIMIT, existing
    for _ in range(OTHER_LIMIT - existing):
        ok(classic.call("AddRtcAccount", {"DeviceId": new_device_id("fill")}, ak=OTHER_AK, secret=OTHER_SECRET))
    r = classic.call_with_status("AddRtcAccount", {"DeviceId": new_device_id("over")}, ak=OTHER_AK, secret=OTHER_SECRET)
    assert r.status == 200, (r.status, r.body)
    assert r.code == "isv.ACCOUNT_ABNORMAL", r.body
    assert len(admin.accounts("other")) == OTHER_LIMIT


# ------------------------------------------------------------------------------ account state


@pytest.mark.parametrize(
    "state", ["isv.OUT_OF_SERVICE", "isv.PRODUCT_UNSUBSCRIBE", "isv.ACCOUNT_ABNORMAL", "isp.RAM_PERMISSION_DENY"]
)
def test_tenant_state_codes(classic, admin, state):
    try:
        admin.set_tenant_state("default", state)
        r = classic.call_with_status("AddRtcAccount", {"DeviceId": new_device_id("state")})
        assert r.status == 200, (r.status, r.body)
        assert r.code == state, r.body
        assert r.body.get("RequestId"), r.body
    finally:
        admin.set_tenant_state("default", "normal")
    ok(classic.call("AddRtcAccount", {"DeviceId": new_device_id("restored")}))


def test_access_key_fault(classic, admin):
    dev = new_device_id("fault")
    rtc_id = ok(classic.call("AddRtcAccount", {"DeviceId": dev}))
    try:
        admin.set_key_fault("testAK", "isp.SYSTEM_ERROR")
        r = classic.call_with_status("AddRtcAccount", {"DeviceId": new_device_id("fault")})
        assert r.status == 200, (r.status, r.body)
        assert r.code == "isp.SYSTEM_ERROR", r.body
        r = classic.call("GetRtcToken", {"UserId": rtc_id, "DeviceId": dev, "IsCustomAccount": False})
        assert r.code == "isp.SYSTEM_ERROR", r.body
        # only that key: the other tenant's key is unaffected
        ok(classic.call("GetRtcToken", {"UserId": "x-1", "DeviceId": dev, "IsCustomAccount": True}, ak=OTHER_AK, secret=OTHER_SECRET))
    finally:
        admin.set_key_fault("testAK", "normal")
    ok(classic.call("GetRtcToken", {"UserId": rtc_id, "DeviceId": dev, "IsCustomAccount": False}))


# ------------------------------------------------------------------------------ XML


def test_xml_response(classic):
    import warnings

    from aliyunsdkdyvmsapi.request.v20170525.AddRtcAccountRequest import AddRtcAccountRequest

    dev = new_device_id("xml")
    req = AddRtcAccountRequest()
    req.set_DeviceId(dev)
    req.set_accept_format("XML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        status, headers, body = classic.client().get_response(req)
    assert status == 200, (status, body)
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("text/xml"), ctype
    root = ET.fromstring(body)
    assert root.tag == "AddRtcAccountResponse", body
    assert (root.findtext("RequestId") or "").strip(), body
    assert root.findtext("Code") == "OK", body
    module = root.findtext("Module")
    assert module and module.isdigit(), body
    # same device, JSON: same account
    assert ok(classic.call("AddRtcAccount", {"DeviceId": dev})) == module


def test_xml_error_response(classic):
    """docs/pop-api.md#errors: with Format=XML gateway errors are <Error> documents too (text/xml)."""
    import warnings

    from aliyunsdkdyvmsapi.request.v20170525.AddRtcAccountRequest import AddRtcAccountRequest

    req = AddRtcAccountRequest()
    req.set_DeviceId(new_device_id("xml"))
    req.set_accept_format("XML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        status, headers, body = classic.client(secret="wrong-secret").get_response(req)
    assert status == 400, (status, body)
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("text/xml"), ctype
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    assert root.findtext("Code") == "SignatureDoesNotMatch", body
    assert (root.findtext("RequestId") or "").strip(), body
    assert "server string to sign is:POST&%2F&" in (root.findtext("Message") or ""), body


# ------------------------------------------------------------------------------ booleans


@pytest.mark.parametrize("value,code", [("TRUE", "OK"), ("true", "OK"), ("maybe", "isv.INVALID_PARAMETERS"), ("1", "isv.INVALID_PARAMETERS")])
def test_is_custom_account_values(classic, value, code):
    """docs/pop-api.md#actions: booleans parse case-insensitively; anything but true/false is invalid."""
    r = classic.call("GetRtcToken", {"UserId": "bool-user", "DeviceId": new_device_id(), "IsCustomAccount": value}, common=True)
    assert r.code == code, r.body


# ------------------------------------------------------------------------------ admin API


def test_admin_request_log(classic, admin):
    ok(classic.call("AddRtcAccount", {"DeviceId": new_device_id("log")}))
    entries = admin.requests(limit=5)
    assert 1 <= len(entries) <= 5, entries
    for e in entries:
        assert {"action", "code", "status", "accessKeyId"} <= e.keys(), e
    last = entries[-1]
    assert last["action"] == "AddRtcAccount" and last["code"] == "OK", last
    assert last["accessKeyId"] == "testAK" and last["status"] == 200, last

    with pytest.raises(ApiError):
        classic.call("AddRtcAccount", {"DeviceId": new_device_id("log")}, secret="wrong-secret")
    last = admin.requests(limit=5)[-1]
    assert last["code"] == "SignatureDoesNotMatch", last
    assert last["status"] == 400, last
    assert last["accessKeyId"] == "testAK", last
    assert isinstance(last.get("serverStringToSign"), str) and last["serverStringToSign"], last
    assert last["serverStringToSign"].startswith("POST&%2F&"), last
