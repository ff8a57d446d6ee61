/**
 * The EVRYTHNG emulator proves its own rules with real clients: several API keys under the one
 * username "authorization", scopes, silent subscriptions, topic options and pubStates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EvrythngPlatform, startEvrythngPlatform } from '../emulators/evrythng-platform.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  mosquittoSub,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
} from '../helpers/clients.js';

const KEY_A = 'deviceKeyA-0123456789abcdefghij';
const KEY_B = 'deviceKeyB-0123456789abcdefghij';
const OPERATOR = 'operatorKey-0123456789abcdefghij';

describe('EVRYTHNG emulator', () => {
  let evt: EvrythngPlatform;
  const clients: MqttClient[] = [];
  const connect = async (key: string, clientId: string): Promise<MqttClient> => {
    const c = await connectClient(evt.url, { username: 'authorization', password: key, clientId });
    clients.push(c);
    return c;
  };
  before(async () => {
    evt = await startEvrythngPlatform({
      keys: [
        { key: KEY_A, label: 'a', thngs: ['ThngA'] },
        { key: KEY_B, label: 'b', thngs: ['ThngB'], products: ['Prod1'] },
        { key: OPERATOR, label: 'operator', operator: true },
      ],
    });
  });
  after(async () => {
    await closeAll(clients);
    await evt?.stop();
  });

  it('accepts several keys under username "authorization" and refuses others with CONNACK 4', async () => {
    await connect(KEY_A, 'a1');
    await connect(KEY_B, 'b1');
    const bad = await tryConnect(evt.url, { username: 'authorization', password: 'nope', clientId: 'x' });
    assert.equal(bad.connack?.returnCode, 4);
    const wrongUser = await tryConnect(evt.url, { username: 'someone', password: KEY_A, clientId: 'y' });
    assert.equal(wrongUser.connack?.returnCode, 4);
    await closeAll(clients.splice(0));
  });

  it('scopes each key: out-of-scope publishes are dropped, out-of-scope subscriptions are silent', async () => {
    const a = await connect(KEY_A, 'a2');
    const b = await connect(KEY_B, 'b2');
    await subscribe(b, ['/thngs/ThngA/properties/+', '/thngs/ThngB/properties/+']);
    const bSeesA = gather(b, '/thngs/ThngA/#', 500);
    const bOwn = nextMessage(b, '/thngs/ThngB/properties/+');
    await publish(a, '/thngs/ThngA/properties/temp', '[{"value":37.2}]', { qos: 1 });
    await publish(a, '/thngs/ThngB/properties/temp', '[{"value":1}]', { qos: 1 });
    await publish(b, '/thngs/ThngB/properties/temp', '[{"value":2}]', { qos: 1 });
    assert.equal((await bOwn).payload.toString(), '[{"value":2}]');
    assert.deepEqual(await bSeesA, [], 'silent: granted but nothing delivered');
    assert.deepEqual(
      evt.published.map((p) => `${p.label} ${p.topic}`),
      ['a /thngs/ThngA/properties/temp', 'b /thngs/ThngB/properties/temp'],
    );
    assert.ok(evt.refusals.some((r) => r.label === 'a' && r.reason === 'publish_out_of_scope'));
    await closeAll(clients.splice(0));
  });

  it('strips topic options and answers ?pubStates=1 with the last value (mosquitto_sub)', async () => {
    evt.publish('/thngs/ThngA/properties/temp', '[{"value":40}]');
    const sub = mosquittoSub({
      url: evt.url,
      topics: ['/thngs/ThngA/properties/temp?pubStates=1'],
      count: 2,
      extra: ['-u', 'authorization', '-P', KEY_A, '-i', 'sub-pubstates'],
      timeoutMs: 8000,
    });
    await sub.ready;
    const op = await connect(OPERATOR, 'op');
    await publish(op, '/thngs/ThngA/properties/temp?project=P1', '[{"value":41}]', { qos: 1 });
    const res = await sub.result;
    assert.deepEqual(
      res.messages.map((m) => `${m.topic} ${m.payload}`),
      ['/thngs/ThngA/properties/temp [{"value":40}]', '/thngs/ThngA/properties/temp [{"value":41}]'],
    );
    assert.equal(evt.lastValue('/thngs/ThngA/properties/temp'), '[{"value":41}]');
    await closeAll(clients.splice(0));
  });
});
