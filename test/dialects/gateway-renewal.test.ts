/**
 * The gateway's JWT really expires: a copy of the shipped mappings with the ClearBlade JWT
 * lifetime at 60 s (the shortest a dialect accepts), against the emulator that closes a
 * connection when its JWT's `exp` passes. The proxy must reconnect with a fresh JWT before
 * then (at 48 s), re-attach its device, and keep the device connected throughout.
 * Takes about a minute: it waits for a real expiry.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ClearBladePlatform, startClearBladePlatform } from '../emulators/clearblade-platform.js';
import { closeAll, connectClient, type MqttClient, nextMessage, publish } from '../helpers/clients.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS, rsaKey, tempDir, writeCredentials } from './kit.js';

const TTL = 60;
const gw = rsaKey();
const TOKEN = 'token-renew-0123456789abcdef';

describe(`a ${TTL} s gateway JWT is renewed before it expires`, () => {
  let cb: ClearBladePlatform;
  let proxy: TestProxy;
  let dev: MqttClient | undefined;
  const tmp = tempDir();

  before(async () => {
    const dir = join(tmp.dir, 'mappings');
    cpSync(MAPPINGS, dir, { recursive: true });
    const file = join(dir, 'dialects', 'clearblade.yaml');
    const text = readFileSync(file, 'utf8');
    const short = text.replace(/ttl: 3600/, `ttl: ${TTL}`);
    assert.notEqual(short, text, 'the ClearBlade dialect declares its JWT lifetime');
    writeFileSync(file, short);
    cb = await startClearBladePlatform({
      project: 'my-project',
      registry: 'my-registry',
      gateways: [{ id: 'gw-1', publicKey: gw.publicKey }],
      devices: [{ id: 'dev-r', boundTo: ['gw-1'] }],
    });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'dev-r', token: TOKEN }, north: { privateKey: gw.pem } },
    ]);
    proxy = await startTestProxy({
      north: { url: cb.url },
      mapping: { dir, route: 'connector-to-clearblade', credentials: creds },
    });
  });

  after(async () => {
    await closeAll([dev]);
    await proxy?.close(500);
    await cb?.stop();
    tmp.cleanup();
  });

  it('reconnects with a fresh JWT, re-attaches the device, loses nothing, never expires', async () => {
    dev = await connectClient(proxy.url, { clientId: 'dev-r', username: 'dev-r', password: TOKEN });
    const start = Date.now();
    let n = 0;
    // Traffic every 3 s for longer than the JWT lives.
    while (Date.now() - start < (TTL + 6) * 1000) {
      await publish(dev, '$resource/n', String(n), { qos: 1 }, 10_000);
      n++;
      await new Promise((r) => setTimeout(r, 3000));
    }
    await cb.waitFor(() => cb.telemetry('dev-r').length >= n, 5000);
    const seen = new Set(cb.telemetry('dev-r').map((t) => (JSON.parse(t.payload) as { n: number }).n));
    assert.equal(seen.size, n, 'every uplink reached the platform');
    assert.deepEqual(cb.expired, [], 'the platform never had to close an expired gateway connection');
    const attaches = cb.controls.filter((c) => c.op === 'attach' && c.deviceId === 'dev-r' && c.ok);
    assert.ok(attaches.length >= 2, 'attached again on the renewed connection');
    assert.equal(dev.connected, true, 'the device stayed connected');
    assert.deepEqual(cb.attached('gw-1'), ['dev-r']);
    const cmd = nextMessage(dev, '$resource/mode', 5000);
    assert.equal(cb.sendCommand('dev-r', '{"mode":"after-renewal"}'), true);
    assert.equal((await cmd).payload.toString(), 'after-renewal');
  });
});
