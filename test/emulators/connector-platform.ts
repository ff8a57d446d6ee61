/**
 * Emulator of the Connector (West Connectivity) MQTT endpoint, on a real aedes broker, per
 * specs/connector-west-connectivity-mqtt.txt:
 * - anonymous CONNECT may only publish `$provision/{deviceId}` (and subscribe to that reply);
 *   token provisioning answers with a new token on `$provision/{deviceId}`, password
 *   provisioning takes the payload (>= 20 chars) and answers nothing; provisioning a device
 *   that exists, or a bad request, is refused by closing the connection;
 * - CONNECT by token (client id / username empty or the device id) or password (username =
 *   device id); anything else: CONNACK 4;
 * - fixed topics only: `$resource`, `$resource/`, `$resource/{alias}`, `$resource.batch`,
 *   `$content`, `$provision/...`; any other topic, DUP with QoS 0, or a PUBACK/PUBREC/PUBREL/
 *   PUBCOMP from the device closes the connection; QoS 2 is handled as QoS 0; retain cleared;
 *   will dropped; SUBACK grants QoS 0 for the allowed filters and 0x80 for the rest;
 * - per-device isolation: topics are never routed between clients; every delivery goes to
 *   one client (device A's `$resource/temp` is not device B's);
 * - downlinks: `set(deviceId, alias, value)` publishes QoS 0 `$resource/{alias}` to the
 *   device if online (no SUBSCRIBE needed), otherwise on its next CONNECT (offline sync).
 *   A device counts as online from its successful authentication; a value set before its
 *   CONNACK is written is sent right after it.
 * Known difference: CONNACK Session Present is whatever aedes sends (0), not always 1.
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Client, PublishPacket } from 'aedes';
import { type EmulatorTls, peerCommonName, refuse, sendTo, startAedes, until } from './aedes-server.js';

export const MAX_VALUE_BYTES = 1_048_576;

export interface ContentInfo {
  name: string;
  length: number;
  mime: string;
  url: string;
}

export interface ConnectorDevice {
  readonly id: string;
  token?: string;
  password?: string;
  /** Current value of each resource (last uplink or last set), timestamps in microseconds. */
  readonly resources: Map<string, { value: string; ts: number }>;
  /** Every accepted uplink, in order. */
  readonly uplinks: Array<{ topic: string; payload: string; ts: number }>;
  /** Values reported through `$resource.batch`, with the device's timestamps (µs). */
  readonly history: Array<{ alias: string; value: unknown; ts: number }>;
  /** Aliases set while the device was offline, sent at its next CONNECT. */
  readonly pending: Set<string>;
  readonly clients: Set<Client>;
}

export interface ConnectorPlatformOptions {
  /** How self-provisioning works (default token). */
  authType?: 'token' | 'password';
  /** When given, only these device ids may provision themselves. */
  allowedIds?: string[];
  /** Devices that exist before the test starts. */
  devices?: Array<{ id: string; token?: string; password?: string }>;
  /** The `$content` list (default: one sample entry). */
  contents?: ContentInfo[];
  /**
   * Serve MQTT over TLS. With `tls.ca`, a client certificate signed by it authenticates the
   * device whose id is the certificate's common name (empty client id, username, password);
   * its first such connection activates the device.
   */
  tls?: EmulatorTls;
}

export interface ConnectorPlatform {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** Registers a device (as an operator would); returns it. */
  provision(id: string, cred?: { token?: string; password?: string }): ConnectorDevice;
  device(id: string): ConnectorDevice | undefined;
  /** The platform changes a resource; true when it was delivered at once (device online). */
  set(id: string, alias: string, value: string): Promise<boolean>;
  online(id: string): boolean;
  /** Why the emulator closed connections or refused requests (bounded codes, no secrets). */
  readonly violations: Array<{ deviceId?: string; reason: string }>;
  /** Provisioning requests, accepted or not. */
  readonly provisionRequests: Array<{ deviceId: string; accepted: boolean }>;
  waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
}

interface Session {
  deviceId?: string;
  anonymous: boolean;
}

const VOID_PREFIX = '$connector-emulator/void/';
const nowUs = (): number => Date.now() * 1000;

export async function startConnectorPlatform(
  opts: ConnectorPlatformOptions = {},
): Promise<ConnectorPlatform> {
  const authType = opts.authType ?? 'token';
  const contents: ContentInfo[] = opts.contents ?? [
    { name: 'logo.gif', length: 16214, mime: 'image/gif', url: 'https://content.example/logo.gif' },
  ];
  const devices = new Map<string, ConnectorDevice>();
  const sessions = new WeakMap<Client, Session>();
  const generatedIds = new WeakSet<Client>();
  const violations: ConnectorPlatform['violations'] = [];
  const provisionRequests: ConnectorPlatform['provisionRequests'] = [];

  const provision = (id: string, cred: { token?: string; password?: string } = {}): ConnectorDevice => {
    const dev: ConnectorDevice = devices.get(id) ?? {
      id,
      resources: new Map(),
      uplinks: [],
      history: [],
      pending: new Set(),
      clients: new Set(),
    };
    if (cred.token !== undefined) dev.token = cred.token;
    if (cred.password !== undefined) dev.password = cred.password;
    if (dev.token === undefined && dev.password === undefined) dev.token = randomBytes(20).toString('hex');
    devices.set(id, dev);
    return dev;
  };
  for (const d of opts.devices ?? []) provision(d.id, d);

  const byToken = (token: string): ConnectorDevice | undefined => {
    for (const d of devices.values()) if (d.token !== undefined && same(d.token, token)) return d;
    return undefined;
  };

  /** Aliases to send a client once its CONNACK is out (offline sync, sets during CONNECT). */
  const queues = new WeakMap<Client, Set<string>>();
  const ready = new WeakSet<Client>();
  const queueFor = (client: Client): Set<string> => {
    let q = queues.get(client);
    if (!q) {
      q = new Set();
      queues.set(client, q);
    }
    return q;
  };

  /** Online from authentication on; what is set before the CONNACK is written waits for it. */
  const admit = (client: Client, dev: ConnectorDevice): void => {
    sessions.set(client, { anonymous: false, deviceId: dev.id });
    dev.clients.add(client);
    for (const alias of dev.pending) queueFor(client).add(alias);
    dev.pending.clear();
  };

  const violate = (client: Client, reason: string, cb?: (err?: Error | null) => void): void => {
    violations.push({ deviceId: sessions.get(client)?.deviceId, reason });
    if (cb) cb(new Error(reason));
    else client.close();
  };

  const server = await startAedes(
    {
      preConnect(client, packet, cb) {
        if (!packet.clientId) {
          packet.clientId = `connector-emulator-${randomUUID()}`;
          generatedIds.add(client);
        }
        packet.clean = true;
        packet.will = undefined;
        // See every packet before aedes does: acks from the device are violations, and
        // SUBSCRIBE is always granted QoS 0.
        const parser = (client as unknown as { _parser: EventEmitter })._parser;
        parser.prependListener('packet', (p: { cmd: string; subscriptions?: Array<{ qos: number }> }) => {
          if (p.cmd === 'puback' || p.cmd === 'pubrec' || p.cmd === 'pubrel' || p.cmd === 'pubcomp') {
            violate(client, 'client_ack');
          } else if (p.cmd === 'subscribe') {
            for (const s of p.subscriptions ?? []) s.qos = 0;
          }
        });
        cb(null, true);
      },
      authenticate(client, username, password, done) {
        const user = username ?? '';
        if (user === '' && password === undefined) {
          const cn = peerCommonName(client);
          if (cn === undefined) {
            sessions.set(client, { anonymous: true });
            return done(null, true);
          }
          admit(client, devices.get(cn) ?? provision(cn, { password: randomBytes(24).toString('hex') }));
          return done(null, true);
        }
        const pw = password?.toString() ?? '';
        const clientIdOk = (d: ConnectorDevice): boolean => generatedIds.has(client) || client.id === d.id;
        let dev: ConnectorDevice | undefined;
        if (user !== '') {
          const d = devices.get(user);
          if (
            d &&
            ((d.password !== undefined && same(d.password, pw)) ||
              (d.token !== undefined && same(d.token, pw)))
          ) {
            dev = d;
          }
        } else {
          dev = byToken(pw);
        }
        if (!dev || !clientIdOk(dev)) return done(refuse(4, 'bad credentials'), false);
        admit(client, dev);
        done(null, true);
      },
      authorizePublish(client, packet, cb) {
        if (!client) return cb(null);
        const s = sessions.get(client);
        if (!s) return violate(client, 'no_session', cb);
        if (packet.dup && packet.qos === 0) return violate(client, 'dup_with_qos0', cb);
        if (packet.qos === 2) (packet as { qos: number }).qos = 0;
        packet.retain = false;
        const topic = packet.topic;
        if (topic.startsWith('$provision')) return handleProvision(client, s, packet, cb);
        if (s.anonymous || s.deviceId === undefined) return violate(client, 'anonymous_publish', cb);
        const dev = devices.get(s.deviceId);
        if (!dev) return violate(client, 'unknown_device', cb);
        if (topic === '$content') {
          void sendTo(client, '$content', JSON.stringify(contents));
          return cb(null);
        }
        const single = /^\$resource\/([^/]+)$/.exec(topic);
        const isObject = topic === '$resource' || topic === '$resource/';
        if (!single && !isObject && topic !== '$resource.batch')
          return violate(client, 'topic_not_allowed', cb);
        const payload = Buffer.from(packet.payload).toString('utf8');
        const ts = nowUs();
        if (single?.[1]) {
          if (packet.payload.length > MAX_VALUE_BYTES) return drop(client, 'value_too_large', cb);
          dev.resources.set(single[1], { value: payload, ts });
        } else if (isObject) {
          const obj = parseJson(payload);
          if (!isRecord(obj)) return drop(client, 'invalid_resource_object', cb);
          for (const [alias, v] of Object.entries(obj)) dev.resources.set(alias, { value: valueText(v), ts });
        } else {
          const list = parseJson(payload);
          if (!Array.isArray(list) || !list.every((e) => isRecord(e) && typeof e.timestamp === 'number')) {
            return drop(client, 'invalid_batch', cb);
          }
          for (const e of list as Array<{ timestamp: number; values?: unknown }>) {
            if (!isRecord(e.values)) continue;
            for (const [alias, v] of Object.entries(e.values))
              dev.history.push({ alias, value: v, ts: e.timestamp });
          }
        }
        dev.uplinks.push({ topic, payload, ts });
        cb(null);
      },
      authorizeSubscribe(client, sub, cb) {
        const s = sessions.get(client);
        const t = sub.topic;
        const ownProvision = s?.deviceId !== undefined && t === `$provision/${s.deviceId}`;
        let allowed: boolean;
        if (!s || s.anonymous) allowed = /^\$provision\/[^/+#]+$/.test(t);
        else
          allowed =
            ['#', '$content', '$resource/#', '$resource/+'].includes(t) ||
            ownProvision ||
            /^\$resource\/[^/+#]+$/.test(t);
        if (!allowed) return cb(null, null);
        // Nothing is routed by topic: deliveries go to one client. The subscription is kept
        // under a topic no one publishes to.
        cb(null, { ...sub, topic: `${VOID_PREFIX}${client.id}/${t}`, qos: 0 });
      },
    },
    opts.tls,
  );

  const drop = (client: Client, reason: string, cb: (err?: Error | null) => void): void => {
    violations.push({ deviceId: sessions.get(client)?.deviceId, reason });
    cb(null);
  };

  const handleProvision = (
    client: Client,
    s: Session,
    packet: PublishPacket,
    cb: (err?: Error | null) => void,
  ) => {
    const m = /^\$provision\/([^/]+)$/.exec(packet.topic);
    const id = m?.[1];
    if (!id) return violate(client, 'provision_without_id', cb);
    const refused = (reason: string): void => {
      provisionRequests.push({ deviceId: id, accepted: false });
      violate(client, reason, cb);
    };
    if (!s.anonymous && s.deviceId !== id) return refused('provision_other_device');
    if (devices.has(id)) return refused('provision_existing_device');
    if (opts.allowedIds && !opts.allowedIds.includes(id)) return refused('provision_not_allowed');
    if (authType === 'password') {
      const pw = Buffer.from(packet.payload).toString('utf8');
      if (pw.length < 20) return refused('provision_password_too_short');
      provision(id, { password: pw });
      provisionRequests.push({ deviceId: id, accepted: true });
      return cb(null);
    }
    const dev = provision(id);
    provisionRequests.push({ deviceId: id, accepted: true });
    void sendTo(client, `$provision/${id}`, dev.token ?? '');
    cb(null);
  };

  server.broker.on('connackSent', (connack, client) => {
    if (connack.returnCode !== 0) return;
    ready.add(client);
    const s = sessions.get(client);
    const dev = s?.deviceId !== undefined ? devices.get(s.deviceId) : undefined;
    const q = queues.get(client);
    if (!dev || !q) return;
    for (const alias of q) {
      const r = dev.resources.get(alias);
      if (r) void sendTo(client, `$resource/${alias}`, r.value);
    }
    q.clear();
  });
  server.broker.on('clientDisconnect', (client) => forget(client));
  server.broker.on('clientError', (client) => forget(client));
  const forget = (client: Client): void => {
    const s = sessions.get(client);
    const dev = s?.deviceId !== undefined ? devices.get(s.deviceId) : undefined;
    if (!dev?.clients.delete(client)) return;
    for (const alias of queues.get(client) ?? []) dev.pending.add(alias);
    queues.delete(client);
  };

  /** Connections of a device that are not closed (a close before registration emits no event). */
  const liveClients = (id: string): Client[] => {
    const dev = devices.get(id);
    if (!dev) return [];
    for (const c of dev.clients) if (c.closed) forget(c);
    return [...dev.clients];
  };

  return {
    port: server.port,
    url: server.url,
    stop: server.stop,
    provision,
    device: (id) => devices.get(id),
    online: (id) => liveClients(id).length > 0,
    violations,
    provisionRequests,
    async set(id, alias, value) {
      const dev = devices.get(id);
      if (!dev) throw new Error(`no device ${id} on the Connector emulator`);
      dev.resources.set(alias, { value, ts: nowUs() });
      if (liveClients(id).length === 0) {
        dev.pending.add(alias);
        return false;
      }
      const now: Client[] = [];
      for (const c of liveClients(id)) {
        if (ready.has(c)) now.push(c);
        else queueFor(c).add(alias);
      }
      await Promise.all(now.map((c) => sendTo(c, `$resource/${alias}`, value)));
      return true;
    },
    waitFor: (predicate, timeoutMs, what) => until(predicate, timeoutMs, what),
  };
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function valueText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}
