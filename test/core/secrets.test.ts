/**
 * Credentials that pass through the core never show up where people look: in the proxy's
 * log (at trace level) or in /metrics, whether the login succeeds or is refused by north.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
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
