//! The POP API end to end, in-process: signatures, actions, tenants and bad input.

use crate::common::{AK, SK, encode, signed_v1, start};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn account_and_token_over_get_post_and_acs3() {
    let emu = start("").await;
    let device = "dev-token-test";
    let (s, add) = emu.v1_as("GET", "AddRtcAccount", &[("DeviceId", device)], AK, SK).await;
    assert_eq!(s, 200, "{add}");
    let rtc_id = add["Module"].as_str().unwrap().to_string();
    assert!(rtc_id.bytes().all(|b| b.is_ascii_digit()));
    // The same device again: the same account, also over ACS3.
    let (s, again) = emu.acs3("AddRtcAccount", &[("DeviceId", device)], SK).await;
    assert_eq!((s, again["Module"].as_str()), (200, Some(rtc_id.as_str())), "{again}");

    let (s, tok) =
        emu.v1("GetRtcToken", &[("UserId", &rtc_id), ("DeviceId", device), ("IsCustomAccount", "False")]).await;
    assert_eq!((s, tok["Code"].as_str()), (200, Some("OK")), "{tok}");
    let token: Value = serde_json::from_str(tok["Module"].as_str().unwrap()).unwrap();
    let mqtt = emu.running.endpoints.mqtt_ws.trim_start_matches("ws://").to_string();
    assert_eq!(token["host"], mqtt);
    assert_eq!(token.as_object().unwrap().len(), 15);
    assert!(token["registerTime"].is_u64() && token["useTLS"].is_boolean());
    assert!(token["clientId"].as_str().unwrap().starts_with(&format!("GID_VOIP@@@ClientId_{rtc_id}_")));

    // The token authenticates: the gateway's view of it names the account.
    let record = emu
        .running
        .shared
        .directory
        .validate_token(token["tokenData"].as_str().unwrap(), emu.running.shared.clock.now_ms());
    assert_eq!(record.unwrap().rtc_id, rtc_id);
}

#[tokio::test]
async fn wrong_secret_echoes_the_string_to_sign() {
    let emu = start("").await;
    let params = signed_v1("POST", "AddRtcAccount", &[("DeviceId", "d")], AK, "not-the-secret");
    let (s, body) = emu.send_params("POST", &params).await;
    assert_eq!(s, 400);
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
    let expected =
        emu_pop::signature::rpc_v1::string_to_sign("POST", params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let msg = body["Message"].as_str().unwrap();
    assert_eq!(msg.split_once("server string to sign is:").unwrap().1, expected);
    // The classic Python SDK compares message.split(':')[1] with its own string to sign.
    assert_eq!(msg.split(':').nth(1).unwrap(), expected);

    let (s, body) = emu.acs3("AddRtcAccount", &[("DeviceId", "d")], "not-the-secret").await;
    assert_eq!((s, body["Code"].as_str()), (400, Some("SignatureDoesNotMatch")));

    let log = emu.admin_get("/admin/requests?limit=2").await;
    let last = &log["requests"][1];
    assert_eq!(last["scheme"], "acs3");
    assert_eq!(last["tenant"], "default");
    assert!(last["serverCanonicalRequest"].as_str().unwrap().starts_with("POST\n/\nDeviceId=d\n"));
    assert_eq!(last["hint"], "the AccessKey secret is probably wrong");
}

#[tokio::test]
async fn signed_for_get_but_sent_as_post_is_diagnosed() {
    let emu = start("").await;
    let params = signed_v1("GET", "AddRtcAccount", &[("DeviceId", "d")], AK, SK);
    let (s, _) = emu.send_params("POST", &params).await;
    assert_eq!(s, 400);
    let log = emu.admin_get("/admin/requests?limit=1").await;
    let entry = &log["requests"][0];
    assert_eq!(entry["hint"], "the client signed for HTTP GET but sent POST");
    assert!(entry["clientStringToSign"].as_str().unwrap().starts_with("GET&%2F&"));
}

#[tokio::test]
async fn gateway_errors() {
    let emu = start("").await;
    let (s, b) = emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "d")], "nobody", SK).await;
    assert_eq!((s, b["Code"].as_str()), (404, Some("InvalidAccessKeyId.NotFound")));
    assert_eq!(b["HostId"], "dyvmsapi.aliyuncs.com");

    let (s, b) = emu.v1("NoSuchAction", &[]).await;
    assert_eq!((s, b["Code"].as_str()), (404, Some("InvalidAction.NotFound")));

    let mut params = signed_v1("POST", "AddRtcAccount", &[("DeviceId", "d")], AK, SK);
    params.retain(|(k, _)| k != "Signature");
    let (s, b) = emu.send_params("POST", &params).await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("IncompleteSignature")));

    let (s, b) = emu.send_params("GET", &[("Action".into(), "AddRtcAccount".into())]).await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("MissingAccessKeyId")));

    let (s, b) = emu.v1("AddRtcAccount", &[("DeviceId", "d"), ("Version", "2099-01-01")]).await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("InvalidVersion")));
}

#[tokio::test]
async fn business_errors() {
    let emu = start("").await;
    let (s, b) = emu.v1("AddRtcAccount", &[]).await;
    assert_eq!((s, b["Code"].as_str()), (200, Some("isv.INVALID_PARAMETERS")));
    assert!(b.get("Module").is_none());
    let (_, b) =
        emu.v1("GetRtcToken", &[("UserId", "2999999999999999"), ("DeviceId", "d"), ("IsCustomAccount", "false")]).await;
    assert_eq!(b["Code"], "isv.ACCOUNT_NOT_EXISTS");
    let (_, b) = emu.v1("GetRtcToken", &[("UserId", "whoever"), ("DeviceId", "d"), ("IsCustomAccount", "maybe")]).await;
    assert_eq!(b["Code"], "isv.INVALID_PARAMETERS");
    let (_, b) =
        emu.v1("GetRtcToken", &[("UserId", "my-own-user"), ("DeviceId", "d"), ("IsCustomAccount", "TRUE")]).await;
    assert_eq!(b["Code"], "OK", "custom accounts take any id");
    let long = "x".repeat(300);
    let (_, b) = emu.v1("AddRtcAccount", &[("DeviceId", &long)]).await;
    assert_eq!(b["Code"], "isv.INVALID_PARAMETERS");
}

#[tokio::test]
async fn tenant_state_and_key_faults() {
    let emu = start("").await;
    for state in ["isv.OUT_OF_SERVICE", "isv.PRODUCT_UNSUBSCRIBE", "isv.ACCOUNT_ABNORMAL", "isp.RAM_PERMISSION_DENY"] {
        let (s, _) = emu.admin_send(Method::PUT, "/admin/tenants/default/state", json!({"state": state})).await;
        assert_eq!(s, 200);
        let (s, b) = emu.v1("AddRtcAccount", &[("DeviceId", "d")]).await;
        assert_eq!((s, b["Code"].as_str()), (200, Some(state)));
    }
    emu.admin_send(Method::PUT, "/admin/tenants/default/state", json!({"state": "normal"})).await;
    let (s, _) =
        emu.admin_send(Method::PUT, "/admin/access-keys/testAK/fault", json!({"fault": "isp.SYSTEM_ERROR"})).await;
    assert_eq!(s, 200);
    let (_, b) = emu.v1("AddRtcAccount", &[("DeviceId", "d")]).await;
    assert_eq!(b["Code"], "isp.SYSTEM_ERROR");
    let (s, _) = emu.admin_send(Method::PUT, "/admin/tenants/default/state", json!({"state": "bogus"})).await;
    assert_eq!(s, 400, "an unknown state is refused");
    // Reset puts states and faults back to the configuration.
    emu.admin_send(Method::POST, "/admin/reset", json!({})).await;
    let (_, b) = emu.v1("AddRtcAccount", &[("DeviceId", "d")]).await;
    assert_eq!(b["Code"], "OK");
}

const TWO_TENANTS: &str = r#"
[[tenants]]
name = "default"
uid = "1234567890123456"
[[tenants.access_keys]]
id = "testAK"
secret = "testSecret"

[[tenants]]
name = "other"
uid = "6543210987654321"
account_limit = 2
[[tenants.access_keys]]
id = "otherAK"
secret = "otherSecret"
"#;

#[tokio::test]
async fn tenants_are_isolated() {
    let emu = start(TWO_TENANTS).await;
    let (_, b) = emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "shared-dev")], "otherAK", "otherSecret").await;
    let theirs = b["Module"].as_str().unwrap().to_string();
    let mine = emu.new_account().await;
    assert_ne!(theirs, mine);
    let (_, b) = emu.v1("GetRtcToken", &[("UserId", &theirs), ("DeviceId", "x"), ("IsCustomAccount", "false")]).await;
    assert_eq!(b["Code"], "isv.ACCOUNT_NOT_EXISTS");
    let (_, b) = emu.v1("BindNumberAndVoipId", &[("PhoneNumber", "13800000000"), ("VoipId", &theirs)]).await;
    assert_eq!(b["Code"], "isv.ACCOUNT_NOT_EXISTS");
    let list = emu.admin_get("/admin/accounts?tenant=other").await;
    let ids: Vec<&str> = list["accounts"].as_array().unwrap().iter().map(|a| a["rtcId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![theirs.as_str()]);
    // The account limit of the other tenant is 2.
    emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "second")], "otherAK", "otherSecret").await;
    let (_, b) = emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "third")], "otherAK", "otherSecret").await;
    assert_eq!(b["Code"], "isv.ACCOUNT_ABNORMAL");
}

#[tokio::test]
async fn number_actions_keep_state() {
    let emu = start("").await;
    let voip = emu.new_account().await;
    let n = "13812345678";
    let status = |b: &Value| serde_json::from_str::<Value>(b["Module"].as_str().unwrap()).unwrap()["status"].clone();
    let (_, b) = emu.v1("QueryRtcNumberAuthStatus", &[("PhoneNumber", n)]).await;
    assert_eq!(status(&b), "UNAUTHED");
    emu.v1("DoRtcNumberAuth", &[("PhoneNumber", n)]).await;
    let (_, b) = emu.v1("QueryRtcNumberAuthStatus", &[("PhoneNumber", n)]).await;
    assert_eq!(status(&b), "AUTHED");
    emu.v1("UndoRtcNumberAuth", &[("PhoneNumber", n)]).await;
    let (_, b) = emu.v1("QueryRtcNumberAuthStatus", &[("PhoneNumber", n)]).await;
    assert_eq!(status(&b), "UNAUTHED");

    let (_, b) = emu.v1("BindNumberAndVoipId", &[("PhoneNumber", n), ("VoipId", &voip)]).await;
    assert_eq!(b["Module"], "true");
    let (_, b) = emu.v1("QueryVoipNumberBindInfos", &[("VoipId", &voip)]).await;
    let list: Value = serde_json::from_str(b["Module"].as_str().unwrap()).unwrap();
    assert_eq!(list[0]["phoneNumber"], n);
    emu.v1("UnbindNumberAndVoipId", &[("PhoneNumber", n), ("VoipId", &voip)]).await;
    let (_, b) = emu.v1("QueryVoipNumberBindInfos", &[("PhoneNumber", n)]).await;
    assert_eq!(b["Module"], "[]");
    let (_, b) = emu.v1("DoRtcNumberAuth", &[("PhoneNumber", "12ab")]).await;
    assert_eq!(b["Code"], "isv.INVALID_PARAMETERS");

    let (_, b) = emu
        .v1("ReportVoipProblems", &[("VoipId", &voip), ("Title", "no audio"), ("Desc", "中文 é"), ("ChannelId", "c1")])
        .await;
    let id = b["Module"].as_str().unwrap().to_string();
    let problems = emu.admin_get("/admin/problems").await;
    assert_eq!(problems["problems"][0]["id"], id);
    assert_eq!(problems["problems"][0]["desc"], "中文 é");
}

#[tokio::test]
async fn sts_tokens_authenticate_and_mns_queue_tokens_are_issued() {
    let emu = start("").await;
    let (_, cred) = emu.admin_send(Method::POST, "/admin/sts", json!({})).await;
    let (ak, sk, token) = (
        cred["accessKeyId"].as_str().unwrap(),
        cred["accessKeySecret"].as_str().unwrap(),
        cred["securityToken"].as_str().unwrap(),
    );
    let (s, b) = emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "d"), ("SecurityToken", token)], ak, sk).await;
    assert_eq!((s, b["Code"].as_str()), (200, Some("OK")), "{b}");
    let (s, b) = emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "d"), ("SecurityToken", "forged")], ak, sk).await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("InvalidSecurityToken.Mismatch")));

    let (_, b) = emu.v1("QueryTokenForMnsQueue", &[("MessageType", "ArtcCdrReport")]).await;
    let dto = &b["MessageTokenDTO"];
    assert!(dto["AccessKeyId"].as_str().unwrap().starts_with("STS."));
    let re = |s: &str| s.len() == 19 && s.as_bytes()[10] == b' ' && s.as_bytes()[4] == b'-';
    assert!(re(dto["ExpireTime"].as_str().unwrap()) && re(dto["CreateTime"].as_str().unwrap()), "{dto}");
    let (_, b) = emu.v1("QueryTokenForMnsQueue", &[]).await;
    assert_eq!(b["Code"], "isv.INVALID_PARAMETERS");
}

#[tokio::test]
async fn xml_format() {
    let emu = start("").await;
    let params = signed_v1("POST", "AddRtcAccount", &[("DeviceId", "x"), ("Format", "XML")], AK, SK);
    let resp = emu
        .http
        .post(format!("{}/", emu.pop))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/xml;charset=utf-8");
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("<?xml version='1.0' encoding='UTF-8'?><AddRtcAccountResponse><RequestId>"), "{text}");
    assert!(text.contains("<Code>OK</Code>") && text.contains("<Module>2"), "{text}");
}

#[tokio::test]
async fn timestamp_window_and_nonce_replay() {
    let emu = start("[pop]\ntimestamp_window_secs = 900\nnonce_check = true\n").await;
    let params = signed_v1("POST", "AddRtcAccount", &[("DeviceId", "d")], AK, SK);
    assert_eq!(emu.send_params("POST", &params).await.1["Code"], "OK");
    let (s, b) = emu.send_params("POST", &params).await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("SignatureNonceUsed")));
    let old = signed_v1("POST", "AddRtcAccount", &[("DeviceId", "d"), ("Timestamp", "2020-01-01T00:00:00Z")], AK, SK);
    let (s, b) = emu.send_params("POST", &old).await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("InvalidTimeStamp.Expired")));
}

#[tokio::test]
async fn signature_modes_log_and_off() {
    let emu = start("[pop]\nsignature = \"log\"\n").await;
    let (s, b) = emu.v1_as("POST", "AddRtcAccount", &[("DeviceId", "d")], AK, "wrong").await;
    assert_eq!((s, b["Code"].as_str()), (200, Some("OK")));
    let log = emu.admin_get("/admin/requests?limit=1").await;
    assert!(log["requests"][0]["serverStringToSign"].is_string(), "the mismatch is recorded: {log}");

    let emu = start("[pop]\nsignature = \"off\"\n").await;
    let (s, b) = emu
        .send_params(
            "GET",
            &[
                ("Action".into(), "AddRtcAccount".into()),
                ("Version".into(), "2017-05-25".into()),
                ("DeviceId".into(), "d".into()),
            ],
        )
        .await;
    assert_eq!((s, b["Code"].as_str()), (200, Some("OK")), "unsigned requests act as the default key");
}

#[tokio::test]
async fn bad_input_gets_vendor_errors_and_the_emulator_keeps_serving() {
    let emu = start("").await;
    let form = |body: Vec<u8>| {
        emu.http.post(format!("{}/", emu.pop)).header("content-type", "application/x-www-form-urlencoded").body(body)
    };
    let cases = vec![
        ("garbage", form(b"\x00\x01\xff&&==%%%zz".to_vec())),
        ("huge", form(vec![b'a'; 2 * 1024 * 1024])),
        ("invalid utf-8", emu.http.get(format!("{}/?DeviceId=%FF%FE&Action=AddRtcAccount", emu.pop))),
        ("duplicates", emu.http.get(format!("{}/?DeviceId=a&DeviceId=b", emu.pop))),
        ("empty", emu.http.post(format!("{}/", emu.pop))),
        ("other path", emu.http.get(format!("{}/foo", emu.pop))),
        ("other method", emu.http.delete(format!("{}/", emu.pop))),
        (
            "json body",
            emu.http.post(format!("{}/", emu.pop)).header("content-type", "application/json").body("{\"a\":"),
        ),
    ];
    for (name, req) in cases {
        let resp = req.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{name}: status {status}");
        let body: Value = resp.json().await.unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        for field in ["Code", "Message", "RequestId"] {
            assert!(body[field].is_string(), "{name}: no {field} in {body}");
        }
    }
    assert_eq!(emu.v1("AddRtcAccount", &[("DeviceId", "after")]).await.1["Code"], "OK");
}

#[tokio::test]
async fn reset_clears_accounts() {
    let emu = start("").await;
    let first = emu.new_account().await;
    emu.admin_send(Method::POST, "/admin/reset", json!({})).await;
    assert_eq!(emu.admin_get("/admin/accounts").await["accounts"], json!([]));
    assert_eq!(emu.new_account().await, first, "ids start again after a reset");
    assert_eq!(emu.admin_get("/admin/requests").await["requests"].as_array().unwrap().len(), 1);
}
