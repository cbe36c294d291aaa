'use strict';
// @alicloud/mns 1.2.0 (unmodified) against the emulator's MNS service: every queue operation
// and error as the SDK surfaces it (Error.name = 'MNS' + Code + 'Error'), temporary credentials
// from QueryTokenForMnsQueue (@alicloud/dybaseapi) or, with the stand-alone MNS harness, from
// its POST /admin/sts.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const MNS = require('@alicloud/mns');
const { startEmulator } = require('./emulator');

let emu;
let skip = false;

before(async () => {
  emu = await startEmulator();
  if (!emu.mnsEndpoint) {
    skip = 'the ready-file has no "mns" endpoint: the MNS service is not wired into this binary';
  }
});

after(async () => {
  if (emu) await emu.stop();
});

function client({ accessKeyId, accessKeySecret, securityToken } = {}) {
  return new MNS(emu.uid, {
    accessKeyId: accessKeyId || emu.accessKeyId,
    accessKeySecret: accessKeySecret || emu.accessKeySecret,
    securityToken,
    endpoint: emu.mnsEndpoint,
  });
}

function unique(prefix) {
  return `${prefix}-${crypto.randomUUID().slice(0, 12)}`;
}

async function mnsError(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, `MNS${code}Error`, e.message);
    assert.match(e.message, /requestid: [0-9A-F]+, hostid: http/);
    return true;
  });
}

async function temporaryCredentials(messageType) {
  const queue = `Alicom-Queue-${emu.uid}-${messageType}`;
  if (emu.popEndpoint) {
    const Dybaseapi = require('@alicloud/dybaseapi');
    const pop = new Dybaseapi({ accessKeyId: emu.accessKeyId, accessKeySecret: emu.accessKeySecret, endpoint: emu.popEndpoint });
    const r = await pop.queryTokenForMnsQueue({ MessageType: messageType });
    assert.equal(r.Code, 'OK', JSON.stringify(r));
    const d = r.MessageTokenDTO;
    return { accessKeyId: d.AccessKeyId, accessKeySecret: d.AccessKeySecret, securityToken: d.SecurityToken };
  }
  const res = await fetch(`${emu.adminUrl}/admin/sts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ scope: [queue] }),
  });
  assert.equal(res.status, 200);
  const c = await res.json();
  return { accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, securityToken: c.securityToken };
}

describe('@alicloud/mns 1.2.0', () => {
  it('creates, lists, reads, changes and deletes queues', async (t) => {
    if (skip) return t.skip(skip);
    const mns = client();
    const prefix = unique('node-life');
    const created = await mns.createQueue(`${prefix}-a`, { VisibilityTimeout: 40, PollingWaitSeconds: 1 });
    assert.equal(created.code, 201);
    assert.equal(created.headers.location, `${emu.mnsEndpoint}/queues/${prefix}-a`);
    assert.equal((await mns.createQueue(`${prefix}-a`, { VisibilityTimeout: 40, PollingWaitSeconds: 1 })).code, 204);
    await mnsError(mns.createQueue(`${prefix}-a`, { VisibilityTimeout: 41 }), 'QueueAlreadyExist');
    await mns.createQueue(`${prefix}-b`);
    const attrs = await mns.getQueueAttributes(`${prefix}-a`);
    assert.equal(attrs.body.VisibilityTimeout, '40');
    assert.equal(attrs.body.PollingWaitSeconds, '1');
    assert.equal(attrs.body.QueueName, `${prefix}-a`);
    for (const k of ['ActiveMessages', 'InactiveMessages', 'DelayMessages', 'CreateTime', 'LastModifyTime', 'LoggingEnabled', 'MaximumMessageSize', 'MessageRetentionPeriod', 'DelaySeconds']) {
      assert.ok(k in attrs.body, k);
    }
    assert.equal((await mns.setQueueAttributes(`${prefix}-a`, { VisibilityTimeout: 50 })).code, 204);
    assert.equal((await mns.getQueueAttributes(`${prefix}-a`)).body.VisibilityTimeout, '50');
    const page = await mns.listQueue('', 1, prefix);
    assert.equal(page.body.length, 1);
    assert.equal(page.body[0].QueueURL, `${emu.mnsEndpoint}/queues/${prefix}-a`);
    const all = await mns.listQueue('', 10, prefix);
    assert.deepEqual(all.body.map((q) => q.QueueURL.split('/').pop()), [`${prefix}-a`, `${prefix}-b`]);
    assert.equal((await mns.deleteQueue(`${prefix}-a`)).code, 204);
    await mns.deleteQueue(`${prefix}-b`);
    await mnsError(mns.getQueueAttributes(`${prefix}-a`), 'QueueNotExist');
  });

  it('sends, receives, changes visibility and deletes messages', async (t) => {
    if (skip) return t.skip(skip);
    const mns = client();
    const q = unique('node-msg');
    await mns.createQueue(q);
    const body = Buffer.from(JSON.stringify({ channelId: 'n-1', duration: '1' })).toString('base64');
    const sent = await mns.sendMessage(q, { MessageBody: body, Priority: 3 });
    assert.equal(sent.code, 201);
    assert.equal(sent.body.MessageBodyMD5, crypto.createHash('md5').update(body).digest('hex').toUpperCase());
    const got = await mns.receiveMessage(q, 3);
    assert.equal(got.code, 200);
    assert.equal(got.body.MessageBody, body);
    assert.equal(got.body.MessageId, sent.body.MessageId);
    assert.equal(got.body.DequeueCount, '1');
    assert.equal(got.body.Priority, '3');
    const changed = await mns.changeMessageVisibility(q, got.body.ReceiptHandle, 1);
    assert.equal(changed.code, 200);
    assert.notEqual(changed.body.ReceiptHandle, got.body.ReceiptHandle);
    await mnsError(mns.deleteMessage(q, got.body.ReceiptHandle), 'ReceiptHandleError');
    const again = await mns.receiveMessage(q, 5);
    assert.equal(again.body.DequeueCount, '2', 'an undeleted message comes back');
    await mnsError(mns.changeMessageVisibility(q, again.body.ReceiptHandle, 0), 'InvalidArgument');
    assert.equal((await mns.deleteMessage(q, again.body.ReceiptHandle)).code, 204);
    await mnsError(mns.receiveMessage(q, 1), 'MessageNotExist');
    await mnsError(mns.peekMessage(q), 'MessageNotExist');
    await mns.deleteQueue(q);
  });

  it('batch send, peek, receive and delete (with a partial failure)', async (t) => {
    if (skip) return t.skip(skip);
    const mns = client();
    const q = unique('node-batch');
    await mns.createQueue(q);
    const msgs = Array.from({ length: 16 }, (_, i) => ({ MessageBody: `m${i}`, Priority: 16 - i }));
    const sent = await mns.batchSendMessage(q, msgs);
    assert.equal(sent.code, 201);
    assert.equal(sent.body.length, 16);
    await mnsError(mns.batchSendMessage(q, Array.from({ length: 17 }, () => ({ MessageBody: 'x' }))), 'InvalidArgument');
    const peeked = await mns.batchPeekMessage(q, 2);
    assert.deepEqual(peeked.body.map((m) => m.MessageBody), ['m15', 'm14']);
    const one = await mns.peekMessage(q);
    assert.equal(one.body.MessageBody, 'm15');
    assert.equal(one.body.DequeueCount, '0');
    const got = await mns.batchReceiveMessage(q, 16, 1);
    assert.equal(got.body.length, 16);
    const handles = got.body.map((m) => m.ReceiptHandle);
    assert.equal((await mns.batchDeleteMessage(q, handles.slice(0, 8))).code, 204);
    const partial = await mns.batchDeleteMessage(q, [handles[0], ...handles.slice(8)]);
    assert.equal(partial.code, 404);
    assert.equal(partial.body.length, 1);
    assert.equal(partial.body[0].ErrorCode, 'ReceiptHandleError');
    assert.equal(partial.body[0].ReceiptHandle, handles[0]);
    await mnsError(mns.batchReceiveMessage(q, 16), 'MessageNotExist');
    await mnsError(mns.batchReceiveMessage(q, 17), 'InvalidArgument');
    await mns.deleteQueue(q);
  });

  it('answers a long poll within milliseconds of a send', async (t) => {
    if (skip) return t.skip(skip);
    const mns = client();
    const q = unique('node-poll');
    await mns.createQueue(q);
    let answeredAt = 0;
    const poll = mns.receiveMessage(q, 20).then((r) => {
      answeredAt = Date.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(answeredAt, 0, 'the poll waits');
    const sentAt = Date.now();
    await client().sendMessage(q, { MessageBody: 'wake' });
    const got = await poll;
    assert.equal(got.body.MessageBody, 'wake');
    assert.ok(answeredAt - sentAt < 250, `answered ${answeredAt - sentAt} ms after the send`);
    await mns.deleteMessage(q, got.body.ReceiptHandle);
    await mns.deleteQueue(q);
  });

  it('refuses bad credentials, unknown queues and out-of-range values', async (t) => {
    if (skip) return t.skip(skip);
    const q = unique('node-err');
    await client().createQueue(q);
    await mnsError(client({ accessKeySecret: 'wrongSecret' }).receiveMessage(q, 1), 'SignatureDoesNotMatch');
    await mnsError(client({ accessKeyId: 'NoSuchAK', accessKeySecret: 'x' }).receiveMessage(q, 1), 'InvalidAccessKeyId');
    await mnsError(client().receiveMessage(unique('No-Such-Queue'), 1), 'QueueNotExist');
    await mnsError(client().sendMessage(q, { MessageBody: 'x', Priority: 17 }), 'InvalidArgument');
    await mnsError(client().sendMessage(q, { MessageBody: 'x'.repeat(65537) }), 'InvalidArgument');
    await mnsError(client().receiveMessage(q, 31), 'InvalidArgument');
    // Node does not XML-escape: a raw '<' makes the body malformed.
    await mnsError(client().sendMessage(q, { MessageBody: 'a<b' }), 'MalformedXML');
    await mnsError(client({ accessKeyId: 'otherAK', accessKeySecret: 'otherSecret' }).getQueueAttributes(q), 'QueueNotExist');
    await client().deleteQueue(q);
  });

  it('consumes an alicom queue with temporary credentials', async (t) => {
    if (skip) return t.skip(skip);
    const queue = `Alicom-Queue-${emu.uid}-ArtcCdrReport`;
    try {
      await client().createQueue(queue);
    } catch (e) {
      assert.equal(e.name, 'MNSQueueAlreadyExistError');
    }
    const creds = await temporaryCredentials('ArtcCdrReport');
    const channelId = unique('ch');
    const body = Buffer.from(JSON.stringify({ channelId, duration: '60' })).toString('base64');
    await client().sendMessage(queue, { MessageBody: body });
    const consumer = client(creds);
    let found = null;
    for (let i = 0; i < 20 && !found; i++) {
      const r = await consumer.receiveMessage(queue, 3);
      const report = JSON.parse(Buffer.from(r.body.MessageBody, 'base64').toString('utf8'));
      if (report.channelId === channelId) found = r;
      await consumer.deleteMessage(queue, r.body.ReceiptHandle);
    }
    assert.ok(found, 'the report arrives');
    await mnsError(client({ ...creds, securityToken: 'CAISnope' }).receiveMessage(queue, 1), 'AccessDenied');
    await mnsError(client({ ...creds, securityToken: undefined }).receiveMessage(queue, 1), 'AccessDenied');
    const other = unique('not-alicom');
    await client().createQueue(other);
    await mnsError(consumer.receiveMessage(other, 1), 'AccessDenied');
    await client().deleteQueue(other);
  });
});
