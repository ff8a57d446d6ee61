/**
 * akenza devices (MQTT 5 and 3.1.1) behind the proxy as a ClearBlade gateway (route
 * akenza-to-clearblade): subtopics joined with "_" become event subfolders, every MQTT 5
 * content type is carried as the payload's bytes to ClearBlade (MQTT 3.1.1, no content type,
 * the loss counted), QoS 2 is never sent north, and config/commands come back to the device
 * on its /down/{secret}/id/{deviceId}[/{topic}] subscription with a JSON content type.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ClearBladePlatform, startClearBladePlatform } from '../emulators/clearblade-platform.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  captureLogs,
  metricValue,
  rsaKey,
  scrape,
  startRouteProxy,
  tempDir,
  writeCredentials,
} from './kit.js';

const SECRET = 'akzGatewaySecret987654321';
const gw = rsaKey();
const TYPES = ['application/json', 'text/plain', 'application/octet-stream', 'application/xml', 'text/csv'];

describe('akenza devices behind the proxy as a ClearBlade gateway', () => {
  let cb: ClearBladePlatform;
  let proxy: TestProxy;
  let v5: MqttClient;
  let v4: MqttClient;
  const tmp = tempDir();
  const logs = captureLogs();

  before(async () => {
    cb = await startClearBladePlatform({
      project: 'my-project',
      registry: 'my-registry',
      gateways: [{ id: 'gw-1', publicKey: gw.publicKey }],
      devices: [
        { id: 'dev-5', boundTo: ['gw-1'] },
        { id: 'dev-4', boundTo: ['gw-1'] },
      ],
    });
    const creds = writeCredentials(
      tmp.dir,
      ['dev-5', 'dev-4'].map((id) => ({
        south: { deviceId: id, connectorId: 'conn-1', secret: SECRET },
        north: { privateKey: gw.pem },
      })),
    );
    proxy = await startRouteProxy('akenza-to-clearblade', cb.url, creds, { logger: logs.logger });
    v5 = await connectClient(proxy.url, {
      clientId: 'dev-5',
      username: 'conn-1',
      password: SECRET,
      protocolVersion: 5,
    });
    v4 = await connectClient(proxy.url, { clientId: 'dev-4', username: 'conn-1', password: SECRET });
  });

  after(async () => {
    await closeAll([v5, v4]);
    await proxy?.close(500);
    await cb?.stop();
    tmp.cleanup();
  });

  it('uplinks without a content type are read as JSON; subtopic levels are joined with "_"', async () => {
    await publish(v4, `/up/${SECRET}/id/dev-4`, '{"temp":20}', { qos: 1 });
    await publish(v4, `/up/${SECRET}/id/dev-4/alerts/critical`, '{"code":7}', { qos: 1 });
    await cb.waitFor(() => cb.telemetry('dev-4').length === 2);
    const [plain, alert] = cb.telemetry('dev-4');
    assert.equal(plain?.subfolder, undefined);
    assert.deepEqual(JSON.parse(plain?.payload ?? ''), { temp: 20 });
    assert.equal(alert?.subfolder, 'alerts_critical');
    assert.deepEqual(JSON.parse(alert?.payload ?? ''), { code: 7 });
  });

  it('carries every MQTT 5 content type to 3.1.1 ClearBlade as the same bytes, counting the dropped property', async () => {
    const bodies: Record<string, string> = {
      'application/json': '{"a":1}',
      'text/plain': 'hello world',
      'application/octet-stream': 'AAEC/w==',
      'application/xml': '<reading><t>20</t></reading>',
      'text/csv': 'time,temp\n1,20\n',
    };
    for (const ct of TYPES) {
      await publish(v5, `/up/${SECRET}/id/dev-5/typed`, bodies[ct] as string, {
        qos: 1,
        properties: { contentType: ct },
      });
    }
    await cb.waitFor(() => cb.telemetry('dev-5').length === TYPES.length);
    assert.deepEqual(
      cb.telemetry('dev-5').map((t) => [t.subfolder, t.payload]),
      TYPES.map((ct) => ['typed', bodies[ct]]),
    );
    const text = await scrape(proxy);
    assert.ok(text.includes('reason="properties_dropped"'), 'the dropped content type is counted');
  });

  it('a non-JSON content type on the plain uplink topic is carried as an opaque event, not parsed as JSON', async () => {
    const before = cb.telemetry('dev-5').length;
    await publish(v5, `/up/${SECRET}/id/dev-5`, 'time,temp\n2,21\n', {
      qos: 1,
      properties: { contentType: 'text/csv' },
    });
    await publish(v5, `/up/${SECRET}/id/dev-5`, '{"temp":22}', {
      qos: 1,
      properties: { contentType: 'application/json' },
    });
    await cb.waitFor(() => cb.telemetry('dev-5').length === before + 2);
    const [csv, json] = cb.telemetry('dev-5').slice(before);
    assert.deepEqual([csv?.subfolder, csv?.payload], [undefined, 'time,temp\n2,21\n']);
    assert.deepEqual([json?.subfolder, JSON.parse(json?.payload ?? '')], [undefined, { temp: 22 }]);
  });

  it('never sends QoS 2 north: a QoS 2 uplink completes and the platform sees no unsupported packet', async () => {
    await publish(v5, `/up/${SECRET}/id/dev-5/q2`, '{"q":2}', { qos: 2 });
    await cb.waitFor(() => cb.telemetry('dev-5').some((t) => t.subfolder === 'q2'));
    assert.deepEqual(
      cb.errors.filter((e) => e.error_type === 'GATEWAY_UNEXPECTED_MESSAGE_TYPE'),
      [],
    );
    assert.equal(
      metricValue(
        await scrape(proxy),
        'mqtt_proxy_gateway_errors_total',
        'type="GATEWAY_UNEXPECTED_MESSAGE_TYPE"',
      ),
      0,
    );
  });

  it('keeps the secret that devices put in their topics out of every log line and metric', async () => {
    // Topics the proxy cannot map or must refuse are logged and counted by shape only.
    await publish(v4, `/up/${SECRET}/id/dev-4/a/b/c/d/e/f/g/h`, '{"x":1}', { qos: 1 });
    await publish(v4, `/up/${SECRET}/id/someone-else`, '{"x":1}', { qos: 1 });
    await publish(v4, `/up/${SECRET}/nowhere`, '{"x":1}', { qos: 1 });
    await publish(v4, `/up/${SECRET}/id/dev-4`, 'not json', { qos: 1 });
    const text = await scrape(proxy);
    assert.ok(text.includes('mqtt_proxy_messages_total'));
    assert.ok(logs.lines().length > 0);
    assert.equal(text.includes(SECRET), false, 'the secret is in /metrics');
    assert.equal(logs.text().includes(SECRET), false, 'the secret is in a log line');
  });

  it('config and named commands reach the subscribed device on its downlink topics, JSON typed for MQTT 5', async () => {
    await subscribe(v5, `/down/${SECRET}/id/dev-5/#`, { qos: 1 });
    const cfg = nextMessage(v5, `/down/${SECRET}/id/dev-5`, 5000);
    cb.sendConfig('dev-5', '{"interval":15}');
    const c = await cfg;
    assert.deepEqual(JSON.parse(c.payload.toString()), { interval: 15 });
    assert.equal(c.packet.properties?.contentType, 'application/json');
    const cmd = nextMessage(v5, `/down/${SECRET}/id/dev-5/reboot`, 5000);
    assert.equal(cb.sendCommand('dev-5', '{"delay":5}', 'reboot'), true);
    assert.deepEqual(JSON.parse((await cmd).payload.toString()), { delay: 5 });
  });

  it("makes a device's own subscription again after the gateway reconnects: once per filter, and not after an unsubscribe", async () => {
    const filter = `/down/${SECRET}/id/dev-5/#`;
    const made = (): number => cb.subscribes.filter((x) => x.topic === '/devices/dev-5/config').length;
    const reconnect = async (): Promise<void> => {
      const sent = cb.telemetry('dev-5').length;
      assert.equal(cb.expire('gw-1'), 1);
      await cb.waitFor(() => cb.online('gw-1') && cb.attached('gw-1').includes('dev-5'), 10_000);
      // Uplinks flow once the link has made every subscription again.
      await publish(v5, `/up/${SECRET}/id/dev-5`, '{"t":1}', { qos: 1 }, 15_000);
      await cb.waitFor(() => cb.telemetry('dev-5').length > sent, 10_000);
    };
    const refusedAgain = (): number =>
      logs
        .lines()
        .filter(
          (l) =>
            l.msg ===
            'north broker refused a re-subscription after the gateway reconnect: no downlinks on it',
        ).length;
    await subscribe(v5, filter, { qos: 1 }); // the second time: it replaces the first
    let before = made();
    await reconnect();
    assert.equal(made(), before + 1, 'made again once');
    assert.equal(refusedAgain(), 0, 'no filter twice in the SUBSCRIBE (the platform refuses the copy)');
    await v5.unsubscribeAsync(filter);
    before = made();
    await reconnect();
    assert.equal(made(), before, 'not made again after the unsubscribe');
  });

  it("logs a device's own subscription the platform refuses after the gateway reconnects, by shape", async () => {
    const msg = 'north broker refused a re-subscription after the gateway reconnect: no downlinks on it';
    const refusals = (): Array<Record<string, unknown>> => logs.lines().filter((l) => l.msg === msg);
    await subscribe(v4, `/down/${SECRET}/id/dev-4/#`, { qos: 1 });
    assert.equal(refusals().length, 0, 'granted on the first connection');
    cb.refuseSubscriptions('dev-4');
    assert.equal(cb.expire('gw-1'), 1);
    await cb.waitFor(() => cb.online('gw-1') && cb.attached('gw-1').includes('dev-4'), 10_000);
    await cb.waitFor(() => refusals().length > 0, 10_000, 'the refusal logged');
    assert.deepEqual(refusals()[0]?.refused, ['4 levels, first: devices', '5 levels, first: devices']);
    assert.equal(logs.text().includes(SECRET), false, 'the secret is in a log line');
    assert.equal(logs.text().includes('/devices/dev-4/'), false, 'filters are logged by shape only');
    assert.equal(v4.connected, true, 'the device stays connected');
  });
});
