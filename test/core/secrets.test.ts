/**
 * Credentials that pass through the core never show up where people look: in the proxy's
 * log (at trace level) or in /metrics, whether the login succeeds or is refused by north,
 * nor does an API key given on a topic (EVRYTHNG `?access_token=KEY`).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { subackCodes } from '../dialects/connector-env.js';
import { startRouteProxy, tempDir, writeCredentials } from '../dialects/kit.js';
import { closeAll, connectClient, publish, tryConnect } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { rawConnect } from '../helpers/raw.js';

const GOOD = 'S3cret-Pa55-Q7xv';
const BAD = 'Wr0ng-Secret-K2pm';

describe('core: credentials stay out of logs and metrics', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let logText = '';

  before(async () => {
    broker = await startMosquitto({ passwords: { device: GOOD } });
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (logText.length < 5_000_000) logText += chunk.toString('utf8');
        cb();
      },
    });
    proxy = await startTestProxy(
      { north: { url: broker.url } },
      { logger: createLogger({ level: 'trace', format: 'json', destination: sink }) },
    );
  });
  after(async () => {
    await proxy?.close(200);
    await broker?.stop();
  });

  it('a good and a refused login, over TCP and WebSocket, leave no password behind', async () => {
    const ok = await connectClient(proxy.url, { username: 'device', password: GOOD, protocolVersion: 5 });
    const okWs = await connectClient(proxy.wsUrl, { username: 'device', password: GOOD });
    await publish(ok, 'sec/t', 'payload', { qos: 1 });
    await closeAll([ok, okWs]);
    const refused = await tryConnect(proxy.url, { username: 'device', password: BAD });
    assert.equal(refused.connack?.returnCode, 5, 'north refused the wrong password');
    const refused5 = await tryConnect(proxy.wsUrl, { username: 'device', password: BAD, protocolVersion: 5 });
    assert.ok((refused5.connack?.reasonCode ?? 0) >= 0x80, 'v5 refusal');
    // A malformed CONNECT that carries the password bytes, then garbage.
    const raw = await rawConnect(Number(new URL(proxy.url).port));
    raw.write(Buffer.concat([Buffer.from([0x10, 0x7f]), Buffer.from(`\x00\x04MQTT\x04\xc2\x00\x00${BAD}`)]));
    raw.write(Buffer.from([0xff, 0xff]));
    await raw.closed(5000).catch(() => raw.destroy());

    const metricsText = await (await fetch(`${proxy.metricsUrl}/metrics`)).text();
    assert.ok(logText.length > 0, 'the proxy logged something at trace level');
    assert.match(metricsText, /mqtt_proxy_/);
    for (const secret of [GOOD, BAD]) {
      // As text, and as a logged Buffer would look: a JSON byte list, base64 or hex.
      const bytes = Buffer.from(secret);
      const forms = [secret, bytes.toJSON().data.join(','), bytes.toString('base64'), bytes.toString('hex')];
      for (const form of forms) {
        assert.equal(logText.includes(form), false, 'a password appears in the log');
        assert.equal(metricsText.includes(form), false, 'a password appears in /metrics');
      }
    }
  });
});

/** No form of `secrets` (text, a logged Buffer's byte list, base64, hex) in `text`. */
function assertAbsent(text: string, secrets: string[], where: string): void {
  for (const secret of secrets) {
    const bytes = Buffer.from(secret);
    const forms = [secret, bytes.toJSON().data.join(','), bytes.toString('base64'), bytes.toString('hex')];
    for (const form of forms) assert.equal(text.includes(form), false, `a secret appears in ${where}`);
  }
}

describe('core: an API key given on a topic (?access_token=) stays out of logs and metrics', () => {
  const KEY = 'Tk4pTopicKeySecret0123456789abcd';
  const OTHER = 'Tk5qOtherKeySecret0123456789abcd';
  const WRONG = 'Tk6rWrongKeySecret0123456789abcd';
  const TOKEN = 'deadbeef0123456789abcdef0123456789abcdef';
  let broker: MosquittoBroker;
  let proxy: Awaited<ReturnType<typeof startRouteProxy>>;
  let logText = '';
  const dir = tempDir();

  before(async () => {
    broker = await startMosquitto({ passwords: { 'dev-s1': TOKEN, 'dev-s2': TOKEN } });
    const credentials = writeCredentials(dir.dir, [
      { south: { apiKey: KEY, thngId: 'THNGS1' }, north: { deviceId: 'dev-s1', token: TOKEN } },
      { south: { apiKey: OTHER, thngId: 'THNGS2' }, north: { deviceId: 'dev-s2', token: TOKEN } },
    ]);
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (logText.length < 5_000_000) logText += chunk.toString('utf8');
        cb();
      },
    });
    proxy = await startRouteProxy('evrythng-to-connector', broker.url, credentials, {
      logger: createLogger({ level: 'trace', format: 'json', destination: sink }),
    });
  });
  after(async () => {
    await proxy?.close(200);
    await broker?.stop();
    dir.cleanup();
  });

  it('an accepted, an unknown and another valid key, on SUBSCRIBE and PUBLISH, leave no key behind', async () => {
    const ws = () => connectClient(proxy.wsUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    const good = await ws();
    assert.deepEqual(await subackCodes(good, [`/thngs/THNGS1/properties?access_token=${KEY}`]), [1]);
    await publish(good, `/thngs/THNGS1/properties/t?access_token=${KEY}`, '[{"value":1}]', { qos: 1 });
    assert.deepEqual(await subackCodes(good, [`/thngs/THNGS2/properties?access_token=${OTHER}`]), [0x80]);
    await publish(good, `/thngs/THNGS1/properties/t?access_token=${OTHER}`, '[{"value":2}]', { qos: 1 });
    const bad = await ws();
    assert.deepEqual(await subackCodes(bad, [`/thngs/THNGS1/properties?access_token=${WRONG}`]), [0x80]);
    await publish(bad, `/thngs/THNGS1/unknown/topic?access_token=${WRONG}`, 'x', { qos: 1 });
    await closeAll([good, bad]);
    const metricsText = await (await fetch(`${proxy.metricsUrl}/metrics`)).text();
    assert.match(logText, /key on a topic refused/);
    assertAbsent(logText, [KEY, OTHER, WRONG, TOKEN], 'the log');
    assertAbsent(metricsText, [KEY, OTHER, WRONG, TOKEN], '/metrics');
  });
});

describe('core: credentials file errors never quote a value', () => {
  it('a CSV file without its header line: the columns are named by position', async () => {
    const { parseCredentials } = await import('../../src/routes/credentials.js');
    for (const text of [
      'a,SECRETVALUE\n',
      'dev1,SECRETVALUE\ndev2,SECRETOTHER\n',
      'south.token,SECRETVALUE\nt,x\n',
    ]) {
      let errors: string[] = [];
      assert.doesNotThrow(() => {
        errors = parseCredentials('creds.csv', text, {}).errors;
      });
      assert.ok(errors.length > 0, text);
      for (const e of errors) {
        assert.doesNotMatch(e, /SECRET/, e);
        assert.match(e, /^creds\.csv:1:\d+: header column \d+ /);
      }
    }
  });
});
