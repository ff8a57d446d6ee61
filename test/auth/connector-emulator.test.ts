/**
 * The Connector platform emulator proves its own rules with real clients, so dialect tests
 * can trust it as a stand-in for the platform.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { type ConnectorPlatform, startConnectorPlatform } from '../emulators/connector-platform.js';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  runPaho,
  subscribe,
  tryConnect,
  waitClosed,
} from '../helpers/clients.js';

describe('Connector platform emulator', () => {
  let platform: ConnectorPlatform;
  const clients: MqttClient[] = [];
  const track = (c: MqttClient): MqttClient => {
    clients.push(c);
    return c;
  };
  before(async () => {
    platform = await startConnectorPlatform({
      devices: [
        { id: 'dev-a', token: 'token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' },
        { id: 'dev-b', token: 'token-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' },
        { id: 'dev-pw', password: 'a-password-of-20-chars-or-more' },
      ],
    });
  });
  after(async () => {
    await closeAll(clients);
    await platform?.stop();
  });

  it('activates a device anonymously with paho (the spec example) and answers with a token', async () => {
    const script = `
port = int(sys.argv[1])
did = sys.argv[2]
def on_connect(client, userdata, flags, rc):
    client.publish("$provision/" + did, None, qos=0)
def on_message(client, userdata, msg):
    print("TOKEN " + msg.topic + " " + msg.payload.decode())
    client.disconnect()
c = make_client(client_id="")
c.on_connect = on_connect
c.on_message = on_message
c.connect("127.0.0.1", port)
c.loop_forever()
`;
    const res = await runPaho(script, [String(platform.port), 'paho-dev-1'], 15_000);
    assert.equal(res.timedOut, false, res.stderr);
    const m = /^TOKEN \$provision\/paho-dev-1 ([0-9a-f]{40})$/m.exec(res.stdout);
    assert.ok(m, `a 40-hex token arrived: ${res.stdout}`);
    assert.equal(platform.device('paho-dev-1')?.token, m[1]);
    // The token now authenticates the device (client id empty, username empty).
    const dev = track(
      await connectClient(platform.url, { clientId: '', username: '', password: m[1], clean: true }),
    );
    await publish(dev, '$resource/temp', '23', { qos: 1 });
    assert.equal(platform.device('paho-dev-1')?.resources.get('temp')?.value, '23');
  });

  it('refuses to provision an existing device by closing the connection', async () => {
    const anon = track(await connectClient(platform.url, { clientId: '' }));
    anon.publish('$provision/dev-a', '');
    await waitClosed(anon);
    assert.deepEqual(platform.provisionRequests.at(-1), { deviceId: 'dev-a', accepted: false });
  });

  it('anonymous clients may not publish anything but $provision', async () => {
    const anon = track(await connectClient(platform.url, { clientId: '' }));
    anon.publish('$resource/temp', '1');
    await waitClosed(anon);
    assert.equal(platform.violations.at(-1)?.reason, 'anonymous_publish');
  });

  it('password provisioning takes the payload (>= 20 chars) and answers nothing', async () => {
    const pwPlatform = await startConnectorPlatform({ authType: 'password' });
    try {
      const anon = track(await connectClient(pwPlatform.url, { clientId: '' }));
      const replies = gather(anon, '#', 300);
      await publish(anon, '$provision/device001', '12345678901234567890', { qos: 1 });
      assert.deepEqual(await replies, []);
      assert.equal(pwPlatform.device('device001')?.password, '12345678901234567890');
      const dev = track(
        await connectClient(pwPlatform.url, {
          clientId: '',
          username: 'device001',
          password: '12345678901234567890',
        }),
      );
      await publish(dev, '$resource/state', 'on', { qos: 1 });
      assert.equal(pwPlatform.device('device001')?.resources.get('state')?.value, 'on');
      const short = track(await connectClient(pwPlatform.url, { clientId: '' }));
      short.publish('$provision/device002', 'too-short');
      await waitClosed(short);
      assert.equal(pwPlatform.device('device002'), undefined);
    } finally {
      await pwPlatform.stop();
    }
  });

  it('authenticates by token, by password, and refuses bad credentials with CONNACK 4', async () => {
    const ok1 = track(
      await connectClient(platform.url, {
        clientId: 'dev-a',
        username: '',
        password: platform.device('dev-a')?.token,
      }),
    );
    assert.ok(ok1.connected);
    const ok2 = track(
      await connectClient(platform.url, {
        clientId: '',
        username: 'dev-pw',
        password: 'a-password-of-20-chars-or-more',
      }),
    );
    assert.ok(ok2.connected);
    const bad = await tryConnect(platform.url, { clientId: '', username: '', password: 'not-a-token' });
    assert.equal(bad.connack?.returnCode, 4);
    const wrongId = await tryConnect(platform.url, {
      clientId: 'dev-b',
      username: '',
      password: platform.device('dev-a')?.token,
    });
    assert.equal(wrongId.connack?.returnCode, 4, 'client id must be empty or the device id');
    await closeAll([ok1, ok2]);
  });

  it('stores $resource, $resource/{alias} and $resource.batch per device; devices are isolated', async () => {
    const a = track(
      await connectClient(platform.url, {
        clientId: '',
        username: '',
        password: platform.device('dev-a')?.token,
      }),
    );
    const b = track(
      await connectClient(platform.url, {
        clientId: '',
        username: '',
        password: platform.device('dev-b')?.token,
      }),
    );
    await subscribe(b, ['$resource/#', '#']);
    const seenByB = gather(b, '#', 400);
    const seenByB2 = gather(b, '$resource/#', 400);
    await publish(a, '$resource/temperature', '25.5', { qos: 1 });
    await publish(a, '$resource', '{"state":"on","temperature":26}', { qos: 1 });
    await publish(a, '$resource.batch', '[{"timestamp":1531111131679000,"values":{"temperature":30}}]', {
      qos: 1,
    });
    const devA = platform.device('dev-a');
    assert.equal(devA?.resources.get('temperature')?.value, '26');
    assert.equal(devA?.resources.get('state')?.value, 'on');
    assert.deepEqual(devA?.history.at(-1), { alias: 'temperature', value: 30, ts: 1531111131679000 });
    assert.equal(platform.device('dev-b')?.resources.get('temperature'), undefined);
    assert.deepEqual([...(await seenByB), ...(await seenByB2)], [], 'B never sees A traffic');
    await closeAll([a, b]);
  });

  it('delivers set() at once to an online device without SUBSCRIBE, and to an offline one at its next CONNECT', async () => {
    const tokenB = platform.device('dev-b')?.token;
    const b = track(await connectClient(platform.url, { clientId: '', username: '', password: tokenB }));
    const live = nextMessage(b, '$resource/+');
    assert.equal(await platform.set('dev-b', 'setpoint', '21'), true);
    const m = await live;
    assert.equal(m.topic, '$resource/setpoint');
    assert.equal(m.payload.toString(), '21');
    assert.equal(m.packet.qos, 0);
    await closeAll([b]);
    await platform.waitFor(() => !platform.online('dev-b'), 3000, 'dev-b offline');
    assert.equal(await platform.set('dev-b', 'mode', 'eco'), false);
    assert.equal(await platform.set('dev-b', 'setpoint', '19'), false);
    // Listen from the first byte: the sync arrives right after the CONNACK.
    const again = track(
      mqtt.connect(platform.url, { clientId: '', username: '', password: tokenB, reconnectPeriod: 0 }),
    );
    const synced = collect(again, '$resource/+', 2, 3000);
    const got = (await synced).map((x) => `${x.topic}=${x.payload}`).sort();
    assert.deepEqual(got, ['$resource/mode=eco', '$resource/setpoint=19']);
  });

  it('answers $content with the list, grants QoS 0 to allowed filters and 0x80 to others', async () => {
    const a = track(
      await connectClient(platform.url, {
        clientId: '',
        username: '',
        password: platform.device('dev-a')?.token,
      }),
    );
    const reply = nextMessage(a, '$content');
    await publish(a, '$content', '', { qos: 1 });
    const list = JSON.parse((await reply).payload.toString()) as Array<{ name: string }>;
    assert.equal(list[0]?.name, 'logo.gif');
    const granted = await new Promise<number[]>((resolve) => {
      a.on('packetreceive', (p) => {
        if (p.cmd === 'suback') resolve(p.granted as number[]);
      });
      a.subscribe(
        ['$resource/temp', 'other/topic', '$provision/dev-b', '$content'],
        { qos: 1 },
        () => undefined,
      );
    });
    assert.deepEqual(granted, [0, 128, 128, 0]);
  });

  it('closes the connection on a topic outside the fixed set and on DUP with QoS 0', async () => {
    const a = track(
      await connectClient(platform.url, {
        clientId: '',
        username: '',
        password: platform.device('dev-a')?.token,
      }),
    );
    a.publish('some/other/topic', 'x');
    await waitClosed(a);
    assert.equal(platform.violations.at(-1)?.reason, 'topic_not_allowed');
    const b = track(
      await connectClient(platform.url, {
        clientId: '',
        username: '',
        password: platform.device('dev-a')?.token,
      }),
    );
    b.publish('$resource/temp', '1', { qos: 0, dup: true });
    await waitClosed(b);
    assert.equal(platform.violations.at(-1)?.reason, 'dup_with_qos0');
  });
});
