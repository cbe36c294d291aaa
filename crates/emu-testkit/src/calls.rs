//! Call flows as the Web SDK performs them (docs/protocol.md#call-flows), for virtual devices.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Envelope;
use crate::device::Device;

fn user_info(d: &Device) -> Value {
    json!({"platform": "web", "os": "linux", "osVersion": "x86_64", "model": "emu-testkit", "appkey": "__alicom_appkey",
           "deviceId": d.rtc_id, "userId": d.session_uuid})
}

impl Device {
    /// The caller's `joinChannel`: waits for its ACK and the joinChannel result.
    pub async fn join_as_caller(
        &mut self,
        channel_id: &str,
        rtc_type: &str,
        callee_info: Value,
    ) -> anyhow::Result<Envelope> {
        self.join_caller(channel_id, rtc_type, callee_info, false).await
    }

    async fn join_caller(
        &mut self,
        channel_id: &str,
        rtc_type: &str,
        callee_info: Value,
        video: bool,
    ) -> anyhow::Result<Envelope> {
        let ms = json!({"api": "joinChannel", "data": {
            "channelConfig": {"callType": "chat", "outerBizId": "alicom", "allowVideo": u8::from(video), "creator": 1, "sigVersion": 1},
            "userInfo": user_info(self), "channelId": channel_id}});
        let body = json!({"channelId": channel_id, "isCaller": true, "needRecord": false, "calleeInfo": callee_info, "alicomRtcType": rtc_type});
        let ack = self.request("joinChannel", body, Some(&ms)).await?;
        if ack.response_code != 200 {
            bail!("joinChannel ACK {}", ack.response_code);
        }
        self.expect("joinChannel").await
    }

    /// A VoIP→VoIP call to one or more accounts: joinChannel, then `call`. Returns the
    /// joinChannel result (for media).
    pub async fn call_voip(&mut self, channel_id: &str, callees: &[&str]) -> anyhow::Result<Envelope> {
        self.call_voip_with_flag(channel_id, callees, None).await
    }

    /// `call_voip` with the native SDKs' cancel flag in the `call` (docs/calls.md): `0` ends the
    /// call on the first reject (the default), `1` keeps ringing the other callees.
    pub async fn call_voip_with_flag(
        &mut self,
        channel_id: &str,
        callees: &[&str],
        cancel_flag: Option<Value>,
    ) -> anyhow::Result<Envelope> {
        self.voip_call(channel_id, callees, cancel_flag, false).await
    }

    /// A VoIP→VoIP **video** call (docs/calls.md#video-calls): `allowVideo` 1 in the joinChannel
    /// and the `call`. Connect its media with a client offering video (`ClientOptions::video`).
    pub async fn call_video(&mut self, channel_id: &str, callees: &[&str]) -> anyhow::Result<Envelope> {
        self.voip_call(channel_id, callees, None, true).await
    }

    async fn voip_call(
        &mut self,
        channel_id: &str,
        callees: &[&str],
        cancel_flag: Option<Value>,
        video: bool,
    ) -> anyhow::Result<Envelope> {
        let first = callees.first().copied().unwrap_or_default();
        let join = self
            .join_caller(
                channel_id,
                "voip2voip",
                json!({"isPstn": false, "rtcId": first, "uuid": uuid::Uuid::new_v4().to_string()}),
                video,
            )
            .await?;
        let devices: Vec<Value> = callees.iter().map(|c| json!({"deviceId": c, "appkey": "__alicom_appkey"})).collect();
        let mut caller = user_info(self);
        caller["role"] = 1.into();
        let mut ms = json!({"api": "call", "data": {"channelId": channel_id, "callerUserInfo": caller,
            "calleeDeviceInfo": {"deviceList": devices}, "channelConfig": {"allowVideo": u8::from(video), "callType": "chat", "outerBizId": "alicom"}}});
        if let Some(flag) = cancel_flag {
            ms["data"]["cancelFlag"] = flag;
        }
        self.request("call", json!({"channelId": channel_id, "alicomRtcType": "voip2voip"}), Some(&ms)).await?;
        Ok(join)
    }

    /// A VoIP→PSTN call showing `show_number` to `phone`. Returns the joinChannel result.
    pub async fn call_pstn(&mut self, channel_id: &str, show_number: &str, phone: &str) -> anyhow::Result<Envelope> {
        let callee_uuid = uuid::Uuid::new_v4().to_string();
        let join = self
            .join_as_caller(
                channel_id,
                "voip2pstn",
                json!({"isPstn": true, "phoneNumber": phone, "showNumber": show_number, "uuid": callee_uuid}),
            )
            .await?;
        let mut caller = user_info(self);
        caller["role"] = 1.into();
        let ms = json!({"api": "call", "data": {"channelId": channel_id, "callerUserInfo": caller,
            "calleePstnInfo": {"mcuPhone": show_number, "phone": phone, "userId": callee_uuid}}});
        self.request("call", json!({"channelId": channel_id, "alicomRtcType": "voip2pstn"}), Some(&ms)).await?;
        Ok(join)
    }

    /// Answers (callResult 1) or rejects (2) an incoming `called`; an answer also joins the
    /// channel as the SDK does and returns the joinChannel result.
    pub async fn answer(&mut self, called: &Envelope, accept: bool) -> anyhow::Result<Option<Envelope>> {
        self.answer_with(called, accept, false).await
    }

    /// Answers a video call (`called` with `allowVideo` 1) with video (joinChannel `allowVideo` 1).
    pub async fn answer_video(&mut self, called: &Envelope) -> anyhow::Result<Envelope> {
        self.answer_with(called, true, true).await?.context("an answer joins")
    }

    async fn answer_with(&mut self, called: &Envelope, accept: bool, video: bool) -> anyhow::Result<Option<Envelope>> {
        let channel_id = called.body["channelId"].as_str().context("called without channelId")?.to_string();
        let call_id = crate::device::media(called)?.pointer("/data/callId").cloned().unwrap_or(Value::Null);
        let ms = json!({"api": "answer", "data": {"callId": call_id, "channelId": channel_id, "callResult": if accept { 1 } else { 2 },
            "calleeUserInfo": user_info(self), "ext": json!({"rtcId": self.rtc_id}).to_string()}});
        let rtc_type = called.body["alicomRtcType"].clone();
        self.request("answer", json!({"channelId": channel_id, "alicomRtcType": rtc_type}), Some(&ms)).await?;
        if !accept {
            return Ok(None);
        }
        let ms = json!({"api": "joinChannel", "data": {
            "channelConfig": {"callType": "chat", "outerBizId": channel_id, "allowVideo": u8::from(video), "creator": 0, "queryUser": 1, "sigVersion": 1},
            "userInfo": user_info(self), "channelId": channel_id}});
        let body = json!({"channelId": channel_id, "isCaller": false, "callerInfo": called.body["callerInfo"], "alicomRtcType": rtc_type});
        self.request("joinChannel", body, Some(&ms)).await?;
        Ok(Some(self.expect("joinChannel").await?))
    }

    pub async fn leave(&mut self, channel_id: &str) -> anyhow::Result<()> {
        let ms = json!({"api": "leaveChannel", "data": {"channelId": channel_id, "userInfo": user_info(self)}});
        self.request("leaveChannel", json!({"channelId": channel_id}), Some(&ms)).await?;
        Ok(())
    }

    /// What the SDK sends on `stop()` while ringing: leaveChannel, then cancelCall.
    pub async fn cancel(&mut self, channel_id: &str) -> anyhow::Result<()> {
        self.leave(channel_id).await?;
        let ms = json!({"api": "cancelCall", "data": {"channelId": channel_id}});
        self.request("cancelCall", json!({"channelId": channel_id}), Some(&ms)).await?;
        Ok(())
    }
}
