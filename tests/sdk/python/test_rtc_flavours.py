"""AddRtcAccount / GetRtcToken and the gateway errors, once per Python SDK flavour.

Flavours:
* ``classic``  aliyun-python-sdk-core 2.16.1 + typed requests of aliyun-python-sdk-dyvmsapi 3.2.0
               (RPC v1 HMAC-SHA1, POST, all params in the query)
* ``tea-acs3`` alibabacloud-dyvmsapi20170525 5.3.0 ``call_api`` with the default ACS3-HMAC-SHA256
* ``tea-v2``   the same with ``Config.signature_algorithm='v2'`` (RPC v1)
"""

from __future__ import annotations

import json

import pytest

from emu_helpers import ApiError, ClassicFlavour, TeaFlavour, check_token_module, new_device_id


@pytest.fixture(scope="module", params=["classic", "tea-acs3", "tea-v2"])
def flavour(request, emu):
    if request.param == "classic":
        return ClassicFlavour(emu)
    return TeaFlavour(emu, "v2" if request.param == "tea-v2" else None)


def add_account(flavour, device_id: str) -> str:
    r = flavour.call("AddRtcAccount", {"DeviceId": device_id})
    assert r.code == "OK", r.body
    assert r.status in (None, 200), r.status
    assert r.body.get("RequestId"), r.body
    if r.headers is not None:
        assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    module = r.body.get("Module")
    assert isinstance(module, str) and module.isdigit(), f"Module must be a digit string: {module!r}"
    return module


def test_add_rtc_account_is_idempotent_per_device(flavour):
    dev = new_device_id()
    first = add_account(flavour, dev)
    again = add_account(flavour, dev)
    assert again == first, "same DeviceId must give the same rtcId"
    other = add_account(flavour, new_device_id())
    assert other != first, "another DeviceId must give another rtcId"


def test_get_rtc_token(flavour):
    dev = new_device_id()
    rtc_id = add_account(flavour, dev)
    tokens = []
    for _ in range(2):
        r = flavour.call("GetRtcToken", {"UserId": rtc_id, "DeviceId": dev, "IsCustomAccount": False})
        assert r.code == "OK", r.body
        tokens.append(check_token_module(r.body.get("Module"), flavour.emu, rtc_id))
    assert tokens[0]["clientId"] != tokens[1]["clientId"], "each token needs its own clientId"
    assert tokens[0]["tokenData"] != tokens[1]["tokenData"], "each token needs its own tokenData"


def test_get_rtc_token_custom_account(flavour):
    r = flavour.call(
        "GetRtcToken", {"UserId": "my-app-user-1", "DeviceId": new_device_id(), "IsCustomAccount": True}
    )
    assert r.code == "OK", r.body
    token = json.loads(r.body["Module"])
    assert isinstance(token.get("tokenData"), str) and token["tokenData"]


def test_wrong_secret(flavour):
    with pytest.raises(ApiError) as ei:
        flavour.call("AddRtcAccount", {"DeviceId": new_device_id()}, secret="definitely-not-the-secret")
    err = ei.value
    assert err.status == 400, err
    assert err.code == flavour.wrong_secret_code, err
    if flavour.name == "classic":
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        assert isinstance(err.exc, ServerException)
    else:
        from alibabacloud_tea_openapi.exceptions import ClientException

        assert isinstance(err.exc, ClientException)
        assert err.exc.request_id and err.exc.request_id != "None", err.exc.data


def test_unknown_access_key(flavour):
    with pytest.raises(ApiError) as ei:
        flavour.call("AddRtcAccount", {"DeviceId": new_device_id()}, ak="NoSuchAK" + new_device_id()[-6:], secret="x")
    assert ei.value.status == 404, ei.value
    assert ei.value.code == "InvalidAccessKeyId.NotFound", ei.value


def test_missing_device_id(flavour):
    # classic: a CommonRequest without DeviceId; Tea: just omit it
    r = flavour.call_with_status("AddRtcAccount", {}, common=True)
    assert r.status == 200, (r.status, r.body)
    assert r.code == "isv.INVALID_PARAMETERS", r.body
    assert r.body.get("Message") and r.body.get("RequestId"), r.body
    assert "Module" not in r.body or not r.body["Module"], r.body
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers


def test_token_for_unknown_rtc_id(flavour):
    r = flavour.call(
        "GetRtcToken", {"UserId": "1999999999999999", "DeviceId": new_device_id(), "IsCustomAccount": False}
    )
    assert r.code == "isv.ACCOUNT_NOT_EXISTS", r.body


def test_unknown_action(flavour):
    with pytest.raises(ApiError) as ei:
        flavour.call("NoSuchAction", {"DeviceId": new_device_id()}, common=True)
    assert ei.value.status == 404, ei.value
    assert ei.value.code == "InvalidAction.NotFound", ei.value
