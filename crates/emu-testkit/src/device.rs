//! A virtual SDK device: the Web SDK's side of the protocol over MQTT-over-TCP.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use emu_gateway::envelope::{Envelope, new_id};
use emu_gateway::media_signal;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::DEFAULT_TIMEOUT;

/// What reaches a device.
#[derive(Debug, Clone)]
pub enum Inbound {
    Envelope(Box<Envelope>),
    /// A publish on `$SYS/...` (token notices).
    Notice(String),
    SubAck(Vec<bool>),
    /// The connection ended.
    Closed(String),
}

pub struct Device {
    pub rtc_id: String,
    pub token: Value,
    /// The per-call session uuid the SDK puts in `body.uuid`.
    pub session_uuid: String,
    mqtt_addr: (String, u16),
    client: AsyncClient,
    inbox: mpsc::UnboundedReceiver<Inbound>,
    backlog: VecDeque<Inbound>,
    auto_ack: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn split_addr(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.strip_prefix("mqtt://").unwrap_or(url);
    let (host, port) = rest.rsplit_once(':').context("mqtt address without a port")?;
    Ok((host.to_string(), port.parse()?))
}

impl Device {
    /// CONNECT with the token's clientId, upload the token, subscribe to the conferenceTopic
    /// (waiting for the SUBACK), as the SDK does before `cs_register`.
    pub async fn connect(mqtt_tcp: &str, rtc_id: &str, token: Value) -> anyhow::Result<Self> {
        let mqtt_addr = split_addr(mqtt_tcp)?;
        let auto_ack = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let client_id = token["clientId"].as_str().context("token without clientId")?.to_string();
        let (client, inbox, task) = open(&mqtt_addr, &client_id, rtc_id, &token, auto_ack.clone()).await?;
        let mut d = Device {
            rtc_id: rtc_id.into(),
            token,
            session_uuid: new_id(),
            mqtt_addr,
            client,
            inbox,
            backlog: VecDeque::new(),
            auto_ack,
            task,
        };
        d.upload_and_subscribe().await?;
        Ok(d)
    }

    async fn upload_and_subscribe(&mut self) -> anyhow::Result<()> {
        let token_data = self.token["tokenData"].as_str().unwrap_or_default().to_string();
        self.upload_token(&token_data).await?;
        let topic = self.token["conferenceTopic"].as_str().unwrap_or_default().to_string();
        self.client.subscribe(topic, QoS::AtMostOnce).await?;
        match self.next_matching(DEFAULT_TIMEOUT, |i| matches!(i, Inbound::SubAck(_))).await? {
            Inbound::SubAck(codes) if codes.iter().all(|ok| *ok) => Ok(()),
            other => bail!("subscription refused: {other:?}"),
        }
    }

    pub async fn upload_token(&self, token_data: &str) -> anyhow::Result<()> {
        let payload = json!({"token": token_data, "type": "RW"}).to_string();
        self.client.publish("$SYS/uploadToken", QoS::AtMostOnce, false, payload).await?;
        Ok(())
    }

    /// Switches to a new token on the same connection, as `setToken` does after a notice.
    pub async fn refresh_token(&mut self, token: Value) -> anyhow::Result<()> {
        self.token = token;
        self.upload_and_subscribe().await
    }

    /// Stop ACKing server requests (to test retransmission).
    pub fn set_auto_ack(&self, on: bool) {
        self.auto_ack.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn server_topic(&self) -> String {
        format!(
            "{}/p2p/{}",
            self.token["conferenceTopic"].as_str().unwrap_or_default(),
            self.token["serverId"].as_str().unwrap_or_default()
        )
    }

    /// Builds a request envelope the way the SDK does (docs/protocol.md#envelopes).
    pub fn build_request(&self, message_type: &str, body: Value, media_signal: Option<&Value>) -> Envelope {
        let mut b = json!({
            "deviceId": self.rtc_id, "userId": self.rtc_id, "ip": "unknow",
            "token": self.token["tokenData"], "alicomRtcType": "voip2voip", "uuid": self.session_uuid,
        });
        if let (Some(obj), Value::Object(extra)) = (b.as_object_mut(), body) {
            obj.extend(extra);
            if let Some(ms) = media_signal {
                obj.insert("mediaSignal".into(), media_signal::encode_compressed(ms).into());
            }
        }
        Envelope {
            topic: crate::load_device::request_topic(message_type).into(),
            born_time: chrono::Utc::now().timestamp_millis() as u64,
            to: json!({"sessionId": "alicombiz"}),
            from: json!({"sessionId": self.rtc_id, "clientType": "Web_artc", "transportId": self.token["clientId"], "transportType": "mqtt"}),
            message_id: new_id(),
            message_type: message_type.into(),
            body: b,
            response: false,
            encrypted_body: false,
            request_id: new_id(),
            arrive_time: 0,
            response_code: 0,
        }
    }

    /// Publishes an envelope to the server topic as it is (retransmissions reuse it).
    pub async fn publish(&self, env: &Envelope) -> anyhow::Result<()> {
        self.client.publish(self.server_topic(), QoS::AtMostOnce, false, env.to_bytes()).await?;
        Ok(())
    }

    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client.publish(topic, QoS::AtMostOnce, false, payload).await?;
        Ok(())
    }

    /// Sends a request and waits for its ACK.
    pub async fn request(
        &mut self,
        message_type: &str,
        body: Value,
        media_signal: Option<&Value>,
    ) -> anyhow::Result<Envelope> {
        let env = self.build_request(message_type, body, media_signal);
        self.publish(&env).await?;
        self.expect_ack(&env.request_id).await
    }

    /// `cs_custom_message_send` (docs/protocol.md#custom-messages) to the account `target`;
    /// returns its ACK. The outcome follows as a `cs_custom_message_receipt` request.
    pub async fn send_custom_message(
        &mut self,
        target: &str,
        content: &str,
        sequence: Value,
    ) -> anyhow::Result<Envelope> {
        let body = json!({"targetRtcId": target, "content": content, "sequence": sequence});
        self.request("cs_custom_message_send", body, None).await
    }

    /// `cs_register` (the first one registers, later ones are heartbeats); fails unless ACKed 200.
    pub async fn register(&mut self) -> anyhow::Result<()> {
        let ack = self.request("cs_register", json!({}), None).await?;
        if ack.response_code != 200 {
            bail!("cs_register answered {}", ack.response_code);
        }
        Ok(())
    }

    pub async fn expect_ack(&mut self, request_id: &str) -> anyhow::Result<Envelope> {
        let id = request_id.to_string();
        match self
            .next_matching(DEFAULT_TIMEOUT, |i| matches!(i, Inbound::Envelope(e) if e.response && e.request_id == id))
            .await?
        {
            Inbound::Envelope(e) => Ok(*e),
            other => Err(anyhow!("unexpected {other:?}")),
        }
    }

    /// The next server request of this type (other messages stay queued).
    pub async fn expect(&mut self, message_type: &str) -> anyhow::Result<Envelope> {
        self.expect_within(message_type, DEFAULT_TIMEOUT).await
    }

    pub async fn expect_within(&mut self, message_type: &str, within: Duration) -> anyhow::Result<Envelope> {
        let t = message_type.to_string();
        match self
            .next_matching(within, |i| matches!(i, Inbound::Envelope(e) if !e.response && e.message_type == t))
            .await?
        {
            Inbound::Envelope(e) => Ok(*e),
            other => Err(anyhow!("unexpected {other:?}")),
        }
    }

    /// The next `$SYS/...` notice.
    pub async fn expect_notice(&mut self, topic: &str) -> anyhow::Result<()> {
        let t = topic.to_string();
        self.next_matching(DEFAULT_TIMEOUT, |i| matches!(i, Inbound::Notice(n) if *n == t)).await.map(|_| ())
    }

    /// Waits until the server closes the connection.
    pub async fn expect_closed(&mut self, within: Duration) -> anyhow::Result<String> {
        match self.next_matching(within, |i| matches!(i, Inbound::Closed(_))).await? {
            Inbound::Closed(why) => Ok(why),
            other => Err(anyhow!("unexpected {other:?}")),
        }
    }

    /// Everything received and not yet consumed, without waiting.
    pub fn drain(&mut self) -> Vec<Inbound> {
        while let Ok(i) = self.inbox.try_recv() {
            self.backlog.push_back(i);
        }
        self.backlog.drain(..).collect()
    }

    async fn next_matching(&mut self, within: Duration, want: impl Fn(&Inbound) -> bool) -> anyhow::Result<Inbound> {
        if let Some(pos) = self.backlog.iter().position(&want) {
            return Ok(self.backlog.remove(pos).expect("position is valid"));
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .map_err(|_| anyhow!("timed out after {within:?}; unconsumed: {:?}", self.backlog))?;
            let Some(item) = next else { bail!("the device's connection task ended") };
            if want(&item) {
                return Ok(item);
            }
            self.backlog.push_back(item);
        }
    }

    /// Drops the connection without DISCONNECT, as a browser tab losing its network does.
    pub fn drop_connection(&mut self) {
        self.task.abort();
    }

    /// Connects again with the same clientId and token (mqtt.js's reconnect): uploadToken and
    /// SUBSCRIBE, no `cs_register`.
    pub async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.task.abort();
        let client_id = self.token["clientId"].as_str().unwrap_or_default().to_string();
        let (client, inbox, task) =
            open(&self.mqtt_addr, &client_id, &self.rtc_id, &self.token, self.auto_ack.clone()).await?;
        (self.client, self.inbox, self.task) = (client, inbox, task);
        self.backlog.clear();
        self.upload_and_subscribe().await
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Opened = (AsyncClient, mpsc::UnboundedReceiver<Inbound>, tokio::task::JoinHandle<()>);

/// Connects and spawns the task that polls the MQTT event loop, ACKing server requests like the SDK.
async fn open(
    addr: &(String, u16),
    client_id: &str,
    rtc_id: &str,
    token: &Value,
    auto_ack: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Opened> {
    let mut opts = MqttOptions::new(client_id, addr.0.clone(), addr.1);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let acker = client.clone();
    let rtc_id = rtc_id.to_string();
    let token_data = token["tokenData"].clone();
    let server_topic = format!(
        "{}/p2p/{}",
        token["conferenceTopic"].as_str().unwrap_or_default(),
        token["serverId"].as_str().unwrap_or_default()
    );
    // Wait for the CONNACK before handing the device out.
    loop {
        match tokio::time::timeout(DEFAULT_TIMEOUT, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => bail!("MQTT connect failed: {e}"),
            Err(_) => bail!("no CONNACK in {DEFAULT_TIMEOUT:?}"),
        }
    }
    let task = tokio::spawn(async move {
        loop {
            let item = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic.starts_with("$SYS/") => Inbound::Notice(p.topic),
                Ok(Event::Incoming(Packet::Publish(p))) => match Envelope::parse(&p.payload) {
                    Ok(env) => {
                        if !env.response && auto_ack.load(std::sync::atomic::Ordering::Relaxed) {
                            let ack = sdk_ack(&env, &rtc_id, &token_data);
                            let _ = acker.try_publish(server_topic.clone(), QoS::AtMostOnce, false, ack.to_bytes());
                        }
                        Inbound::Envelope(Box::new(env))
                    }
                    Err(e) => Inbound::Closed(format!("unparseable server message: {e}")),
                },
                Ok(Event::Incoming(Packet::SubAck(s))) => Inbound::SubAck(
                    s.return_codes.iter().map(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))).collect(),
                ),
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Inbound::Closed(e.to_string()));
                    return;
                }
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Ok((client, rx, task))
}

/// The ACK the SDK sends for every server request (docs/protocol.md#acks-and-retransmissions).
fn sdk_ack(env: &Envelope, rtc_id: &str, token_data: &Value) -> Envelope {
    let body = if env.message_type == "called" {
        json!({"alicomRtcType": env.body["alicomRtcType"], "relativeUuid": env.body.pointer("/callerInfo/uuid"), "deviceId": rtc_id, "userId": rtc_id, "ip": "unknow"})
    } else {
        json!({"alicomRtcType": "voip2voip", "uuid": env.body["uuid"], "deviceId": rtc_id, "userId": rtc_id, "ip": "unknow", "token": token_data})
    };
    Envelope {
        topic: env.topic.clone(),
        born_time: chrono::Utc::now().timestamp_millis() as u64,
        to: json!({"sessionId": "alicombiz"}),
        from: json!({"sessionId": rtc_id, "clientType": "Web_artc", "transportType": "mqtt"}),
        message_id: new_id(),
        message_type: env.message_type.clone(),
        body,
        response: true,
        encrypted_body: false,
        request_id: env.request_id.clone(),
        arrive_time: 0,
        response_code: 200,
    }
}

/// The decoded `mediaSignal` of an envelope.
pub fn media(env: &Envelope) -> anyhow::Result<Value> {
    let text = env.body.get("mediaSignal").and_then(Value::as_str).context("no mediaSignal")?;
    media_signal::decode(text, 1 << 20).map_err(|e| anyhow!("{e}"))
}
