/**
 * Emulator of the akenza MQTT broker, on a real aedes broker (MQTT 3.1.1), per
 * specs/akenza-mqtt.txt. Both authentication schemes:
 * - device credentials: client id = deviceId, password = a JWT signed with that device's key
 *   (RS256/ES256), `exp` required, expired or bad: CONNACK 5; the username is not used.
 *   Uplink `/up/device/id/{deviceId}[/sub…]`, downlink subscription `/down/device/id/{deviceId}/#`.
 * - uplink secret: username = device connector id, password = its secret (else CONNACK 5).
 *   Uplink `/up/{secret}/id/{deviceId}[/sub…]`, downlink `/down/{secret}/id/{deviceId}[/…]`.
 * Sub-topics become the akenza topic joined with "_" (`/alerts/critical` → `alerts_critical`;
 * none → `default`). A PUBLISH outside the client's own topics is acknowledged and dropped,
 * a SUBSCRIBE outside them gets 0x80. Downlinks go only to the device's own subscriptions.
 */
import type { Client } from 'aedes';
import { type KeyInput, verifyJwt } from '../../src/auth/jwt.js';
import { refuse, startAedes, until } from './aedes-server.js';

export interface AkenzaOptions {
  /** Devices with credentials (JWT scheme). */
  devices?: Array<{ id: string; publicKey: KeyInput }>;
  /** Device connectors with an uplink secret; `deviceIds` restricts the devices (default any). */
  connectors?: Array<{ id: string; secret: string; deviceIds?: string[] }>;
  /** Required JWT audience, when set. */
  audience?: string;
}

export interface AkenzaUplink {
  deviceId: string;
  scheme: 'jwt' | 'secret';
  /** The akenza topic: sub-topic levels joined with "_", or "default". */
  topic: string;
  payload: string;
}

export interface AkenzaPlatform {
  port: number;
  url: string;
  stop(): Promise<void>;
  readonly uplinks: AkenzaUplink[];
  /** Refused CONNECTs and dropped messages, with bounded reasons (never a secret). */
  readonly refusals: Array<{ id?: string; reason: string }>;
  /** Publishes a downlink with the given akenza topic to the device's subscription. */
  downlink(
    deviceId: string,
    topic: string,
    payload: string,
    opts?: { connectorId?: string; qos?: 0 | 1 },
  ): void;
  waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
}

type Session =
  | { scheme: 'jwt'; deviceId: string }
  | { scheme: 'secret'; connectorId: string; secret: string };

export async function startAkenzaPlatform(opts: AkenzaOptions): Promise<AkenzaPlatform> {
  const devices = new Map((opts.devices ?? []).map((d) => [d.id, d]));
  const connectors = new Map((opts.connectors ?? []).map((c) => [c.id, c]));
  const sessions = new WeakMap<Client, Session>();
  const uplinks: AkenzaUplink[] = [];
  const refusals: AkenzaPlatform['refusals'] = [];

  /** The device a topic belongs to, when this session may use it; undefined otherwise. */
  const own = (
    s: Session,
    topic: string,
    dir: 'up' | 'down',
  ): { deviceId: string; rest: string } | undefined => {
    const parts = topic.split('/');
    if (parts[0] !== '' || parts[1] !== dir) return undefined;
    const [, , a, b, deviceId = '', ...rest] = parts;
    if (b !== 'id' || deviceId === '' || deviceId.includes('+') || deviceId.includes('#')) return undefined;
    if (s.scheme === 'jwt') {
      return a === 'device' && deviceId === s.deviceId ? { deviceId, rest: rest.join('/') } : undefined;
    }
    if (a !== s.secret) return undefined;
    const allowed = connectors.get(s.connectorId)?.deviceIds;
    if (allowed && !allowed.includes(deviceId)) return undefined;
    return { deviceId, rest: rest.join('/') };
  };

  const server = await startAedes({
    authenticate(client, username, password, done) {
      const pw = password?.toString() ?? '';
      const dev = devices.get(client.id);
      if (dev && pw.split('.').length === 3) {
        const res = verifyJwt(pw, dev.publicKey, opts.audience ? { audience: opts.audience } : {});
        if (!res.ok) {
          refusals.push({ id: client.id, reason: `jwt_${res.reason}` });
          return done(refuse(5, 'not authorized'), false);
        }
        sessions.set(client, { scheme: 'jwt', deviceId: dev.id });
        return done(null, true);
      }
      const conn = username !== undefined ? connectors.get(username) : undefined;
      if (conn && pw === conn.secret) {
        sessions.set(client, { scheme: 'secret', connectorId: conn.id, secret: conn.secret });
        return done(null, true);
      }
      refusals.push({ id: client.id, reason: 'bad_credentials' });
      done(refuse(5, 'not authorized'), false);
    },
    authorizePublish(client, packet, cb) {
      if (!client) return cb(null);
      const s = sessions.get(client);
      const mine = s ? own(s, packet.topic, 'up') : undefined;
      if (!s || !mine) {
        refusals.push({ reason: 'publish_not_allowed' });
        // Acknowledged and dropped, as an ACL-checking broker does with MQTT 3.1.1.
        packet.topic = '$akenza-emulator/dropped';
        return cb(null);
      }
      const sub = mine.rest.split('/').filter((x) => x !== '');
      uplinks.push({
        deviceId: mine.deviceId,
        scheme: s.scheme,
        topic: sub.length > 0 ? sub.join('_') : 'default',
        payload: Buffer.from(packet.payload).toString('utf8'),
      });
      // Uplinks are not routed to other clients.
      packet.topic = '$akenza-emulator/accepted';
      cb(null);
    },
    authorizeSubscribe(client, sub, cb) {
      const s = sessions.get(client);
      if (!s || !own(s, sub.topic, 'down')) return cb(null, null);
      cb(null, sub);
    },
    authorizeForward(client, packet) {
      const s = sessions.get(client);
      return s && own(s, packet.topic, 'down') ? packet : null;
    },
  });

  return {
    port: server.port,
    url: server.url,
    stop: server.stop,
    uplinks,
    refusals,
    downlink(deviceId, topic, payload, o = {}) {
      let prefix = `/down/device/id/${deviceId}`;
      if (o.connectorId !== undefined) {
        const conn = connectors.get(o.connectorId);
        if (!conn) throw new Error(`no device connector ${o.connectorId} on the akenza emulator`);
        prefix = `/down/${conn.secret}/id/${deviceId}`;
      }
      server.broker.publish(
        {
          cmd: 'publish',
          topic: `${prefix}/${topic}`,
          payload: Buffer.from(payload),
          qos: o.qos ?? 0,
          retain: false,
          dup: false,
        },
        () => undefined,
      );
    },
    waitFor: (predicate, timeoutMs, what) => until(predicate, timeoutMs, what),
  };
}
