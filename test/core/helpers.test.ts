/**
 * The shared test helpers against real mosquitto, openssl, MQTT.js, mosquitto_pub/sub
 * and paho: if these fail, every other integration test's results are meaningless.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { generateCerts } from '../helpers/certs.js';
import {
  closeClient,
  collect,
  connectClient,
  mosquittoPub,
  mosquittoSub,
  publish,
  runPaho,
  subscribe,
  topicMatches,
  tryConnect,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';

describe('test helpers', () => {
  let broker: MosquittoBroker;
  before(async () => {
    broker = await startMosquitto({
      passwords: { alice: 's3cret', bob: 'other' },
      acl: 'user alice\ntopic readwrite a/#\nuser bob\ntopic read a/#\n',
    });
  });
  after(async () => {
    await broker.stop();
  });

  it('starts mosquitto with a password file and enforces it', async () => {
    const st = statSync(broker.dir);
    assert.equal(st.mode & 0o777, 0o755);
    const bad = await tryConnect(broker.url, { username: 'alice', password: 'wrong' });
    assert.equal(bad.connack?.returnCode, 5);
    const c = await connectClient(broker.url, { username: 'alice', password: 's3cret' });
    await closeClient(c);
  });

  it('delivers through MQTT.js, mosquitto_pub and mosquitto_sub with the ACL applied', async () => {
    const bob = await connectClient(broker.url, { username: 'bob', password: 'other' });
    try {
      await subscribe(bob, 'a/#', { qos: 1 });
      const got = collect(bob, 'a/#', 2, 5000);
      const pub = await mosquittoPub({
        url: broker.url,
        topic: 'a/1',
        message: 'hello',
        qos: 1,
        extra: ['-u', 'alice', '-P', 's3cret'],
      });
      assert.equal(pub.code, 0, pub.stderr);
      const sub = mosquittoSub({
        url: broker.url,
        topics: ['a/#'],
        count: 1,
        extra: ['-u', 'bob', '-P', 'other'],
      });
      await sub.ready;
      const alice = await connectClient(broker.url, { username: 'alice', password: 's3cret' });
      await publish(alice, 'a/2', 'world', { qos: 1 });
      await closeClient(alice);
      const msgs = await got;
      assert.deepEqual(
        msgs.map((m) => [m.topic, m.payload.toString()]),
        [
          ['a/1', 'hello'],
          ['a/2', 'world'],
        ],
      );
      const res = await sub.result;
      assert.deepEqual(res.messages, [{ topic: 'a/2', payload: 'world' }]);
    } finally {
      await closeClient(bob);
    }
  });

  it('runs paho-mqtt scripts', async () => {
    const r = await runPaho(
      `
c = make_client("paho-helper")
c.username_pw_set(sys.argv[3], sys.argv[4])
c.connect(sys.argv[1], int(sys.argv[2]), 30)
rc = c.publish("a/paho", b"x", qos=1)
c.loop_start()
rc.wait_for_publish(5)
print("published", rc.is_published())
c.disconnect()
c.loop_stop()
`,
      ['127.0.0.1', String(broker.port), 'alice', 's3cret'],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /published True/);
  });

  it('restarts a killed broker on the same port', async () => {
    const b = await startMosquitto();
    try {
      b.kill();
      const refused = await tryConnect(b.url, { connectTimeout: 1000 }, 3000);
      assert.equal(refused.connack, undefined);
      await b.restart();
      const c = await connectClient(b.url);
      await closeClient(c);
    } finally {
      await b.stop();
    }
    assert.equal(existsSync(b.dir), false);
  });

  it('generates a CA, a server certificate and client certificates', () => {
    const pki = generateCerts({ clients: ['device-1'] });
    try {
      assert.match(pki.ca.cert, /BEGIN CERTIFICATE/);
      assert.match(pki.server.key, /PRIVATE KEY/);
      assert.ok(pki.clients['device-1']);
    } finally {
      pki.cleanup();
    }
    assert.equal(existsSync(pki.dir), false);
  });

  it('matches topic filters like a broker', () => {
    assert.ok(topicMatches('a/+/c', 'a/b/c'));
    assert.ok(topicMatches('a/#', 'a'));
    assert.ok(!topicMatches('a/+', 'a/b/c'));
    assert.ok(!topicMatches('#', '$SYS/x'));
  });
});
