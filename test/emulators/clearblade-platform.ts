/**
 * Emulator of the ClearBlade IoT Core MQTT bridge for gateways, on a real aedes broker, per
 * specs/clearblade-iot-core-gateway.txt:
 * - client id `projects/{p}/locations/{r}/registries/{reg}/devices/{id}` (else CONNACK 2),
 *   password = a JWT {iat, exp, aud: project} RS256/ES256 verified with the registered public
 *   key; unknown, bad or expired: CONNACK 5. The connection is closed when the JWT's `exp`
 *   passes (or at once with `expire(id)`).
 * - attach `/devices/{id}/attach` (QoS 1): a device with a key must send a valid device JWT in
 *   `{"authorization": …}`, or be bound to the gateway; success and re-attach get a PUBACK.
 *   detach always gets a PUBACK. Attach/detach from a non-gateway closes the connection.
 * - telemetry `/devices/{id}/events[/sub]` and state `/devices/{id}/state` are recorded for the
 *   gateway itself and its attached devices.
 * - failures send the spec's JSON error (GATEWAY_ATTACHMENT_ERROR, GATEWAY_DEVICE_NOT_FOUND,
 *   GATEWAY_INVALID_MQTT_TOPIC) QoS 0 on `/devices/{gatewayId}/errors` (to a subscriber only)
 *   and the failed PUBLISH gets no PUBACK ("logs failure events but doesn't send a PUBACK").
 * - the test pushes config (QoS 1, also sent on SUBSCRIBE when one exists) and commands to
 *   attached devices; only the gateway that has the device attached receives them.
 */
import type { EventEmitter } from 'node:events';
import type { Client, PublishPacket } from 'aedes';
import { type KeyInput, verifyJwt } from '../../src/auth/jwt.js';
import { type EmulatorTls, refuse, startAedes, until } from './aedes-server.js';

export interface ClearBladeOptions {
  project: string;
  region?: string;
  registry: string;
  gateways: Array<{ id: string; publicKey: KeyInput }>;
  /** Devices behind the gateways: a key (they attach with their own JWT) and/or bindings. */
  devices?: Array<{ id: string; publicKey?: KeyInput; boundTo?: string[] }>;
  /** Seconds of clock leeway when checking JWTs (default 0). */
  clockToleranceSec?: number;
  /** Serve MQTT over TLS (as the real bridge does, on 8883). */
  tls?: EmulatorTls;
}

export interface GatewayError {
  error_type: string;
  device_id: string;
  description: string;
  message_type?: string;
  topic?: string;
  packet_id?: number;
}

export interface ClearBladePlatform {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** The MQTT client id a device or gateway must use. */
  clientIdFor(id: string): string;
  /** Devices attached to a gateway now (over all its live connections). */
  attached(gatewayId: string): string[];
  online(id: string): boolean;
  telemetry(deviceId: string): Array<{ subfolder?: string; payload: string; via: string }>;
  states(deviceId: string): string[];
  /** Every error published on an errors topic. */
  readonly errors: Array<GatewayError & { gatewayId: string }>;
  /** Refused CONNECTs and closed connections, with bounded reasons. */
  readonly refusals: Array<{ id?: string; reason: string }>;
  /** Connections closed because their JWT expired. */
  readonly expired: string[];
  /** Attach/detach requests in order. */
  readonly controls: Array<{ gatewayId: string; deviceId: string; op: 'attach' | 'detach'; ok: boolean }>;
  /** Subscriptions granted, in order: the connection's identity and the filter. */
  readonly subscribes: Array<{ id: string; topic: string }>;
  /** Stores a config for the device and sends it (QoS 1) to a gateway subscribed for it. */
  sendConfig(deviceId: string, payload: string): void;
  /** Sends a command; false when no connection has the device (the platform's "not subscribed"). */
  sendCommand(deviceId: string, payload: string, subfolder?: string): boolean;
  /** Closes every connection of this identity now, as if its JWT had expired. */
  expire(id: string): number;
  bind(deviceId: string, gatewayId: string): void;
  /** Refuses (SUBACK 0x80) every later subscription to this device's config and commands. */
  refuseSubscriptions(deviceId: string): void;
  waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
}

interface Session {
  id: string;
  gateway: boolean;
  attached: Set<string>;
  timer?: NodeJS.Timeout;
}

const MAX_TIMER_MS = 2_147_483_647;

export async function startClearBladePlatform(opts: ClearBladeOptions): Promise<ClearBladePlatform> {
  const region = opts.region ?? 'us-central1';
  const prefix = `projects/${opts.project}/locations/${region}/registries/${opts.registry}/devices/`;
  const gateways = new Map(opts.gateways.map((g) => [g.id, g]));
  const devices = new Map(
    (opts.devices ?? []).map((d) => [d.id, { ...d, boundTo: new Set(d.boundTo ?? []) }]),
  );
  const sessions = new WeakMap<Client, Session>();
  const byId = new Map<string, Set<Client>>();
  const telemetry = new Map<string, Array<{ subfolder?: string; payload: string; via: string }>>();
  const states = new Map<string, string[]>();
  const configs = new Map<string, string>();
  const errors: ClearBladePlatform['errors'] = [];
  const refusals: ClearBladePlatform['refusals'] = [];
  const expired: string[] = [];
  const controls: ClearBladePlatform['controls'] = [];
  const subscribes: ClearBladePlatform['subscribes'] = [];
  const refusedSubs = new Set<string>();
  const verifyOpts = { audience: opts.project, clockToleranceSec: opts.clockToleranceSec ?? 0 };

  const live = (id: string): Array<[Client, Session]> => {
    const out: Array<[Client, Session]> = [];
    for (const c of byId.get(id) ?? []) {
      const s = sessions.get(c);
      if (c.closed || !s) forget(c);
      else out.push([c, s]);
    }
    return out;
  };
  const forget = (client: Client): void => {
    const s = sessions.get(client);
    if (!s) return;
    clearTimeout(s.timer);
    s.attached.clear();
    byId.get(s.id)?.delete(client);
  };
  const holder = (deviceId: string): Array<[Client, Session]> => {
    const out = live(deviceId);
    for (const gw of gateways.keys())
      for (const [c, s] of live(gw)) if (s.attached.has(deviceId)) out.push([c, s]);
    return out;
  };
  const mayAct = (s: Session, deviceId: string): boolean => deviceId === s.id || s.attached.has(deviceId);

  const server = await startAedes(
    {
      authenticate(client, _username, password, done) {
        const id = client.id.startsWith(prefix) ? client.id.slice(prefix.length) : '';
        if (id === '' || id.includes('/')) {
          refusals.push({ reason: 'bad_client_id' });
          return done(refuse(2, 'client id must be projects/…/devices/{id}'), false);
        }
        const key = gateways.get(id)?.publicKey ?? devices.get(id)?.publicKey;
        if (!key) {
          refusals.push({ id, reason: 'unknown_device' });
          return done(refuse(5, 'unknown device'), false);
        }
        const res = verifyJwt(password?.toString() ?? '', key, verifyOpts);
        if (!res.ok) {
          refusals.push({ id, reason: `jwt_${res.reason}` });
          return done(refuse(5, 'not authorized'), false);
        }
        const s: Session = { id, gateway: gateways.has(id), attached: new Set() };
        const exp = res.claims.exp;
        if (typeof exp === 'number') {
          const ms = Math.min(Math.max(0, exp * 1000 - Date.now()), MAX_TIMER_MS);
          s.timer = setTimeout(() => {
            expired.push(id);
            client.close();
          }, ms);
          s.timer.unref();
        }
        sessions.set(client, s);
        let set = byId.get(id);
        if (!set) {
          set = new Set();
          byId.set(id, set);
        }
        set.add(client);
        done(null, true);
      },
      authorizePublish(client, packet, cb) {
        if (!client) return cb(null);
        const s = sessions.get(client);
        if (!s) return cb(new Error('no session'));
        const m = /^\/devices\/([^/]+)\/(attach|detach|events|state)(?:\/(.+))?$/.exec(packet.topic);
        if (!m || (m[3] !== undefined && m[2] !== 'events')) {
          if (!s.gateway) return close(s, 'invalid_topic', cb);
          return fail(client, s, packet, cb, 'GATEWAY_INVALID_MQTT_TOPIC', m?.[1] ?? '', 'invalid topic');
        }
        const [, deviceId = '', kind, subfolder] = m;
        if (kind === 'attach' || kind === 'detach') {
          if (!s.gateway) return close(s, 'control_from_non_gateway', cb);
          if (kind === 'detach') {
            s.attached.delete(deviceId);
            controls.push({ gatewayId: s.id, deviceId, op: 'detach', ok: true });
            return cb(null);
          }
          const why = attachRefusal(s.id, deviceId, Buffer.from(packet.payload).toString('utf8'));
          controls.push({ gatewayId: s.id, deviceId, op: 'attach', ok: why === undefined });
          if (why !== undefined)
            return fail(client, s, packet, cb, 'GATEWAY_ATTACHMENT_ERROR', deviceId, why);
          s.attached.add(deviceId);
          return cb(null);
        }
        if (!mayAct(s, deviceId)) {
          return fail(client, s, packet, cb, 'GATEWAY_DEVICE_NOT_FOUND', deviceId, 'device is not attached');
        }
        const payload = Buffer.from(packet.payload).toString('utf8');
        if (kind === 'events') push(telemetry, deviceId, { subfolder, payload, via: s.id });
        else push(states, deviceId, payload);
        cb(null);
      },
      authorizeSubscribe(client, sub, cb) {
        const s = sessions.get(client);
        const m = /^\/devices\/([^/]+)\/(config|errors|commands\/#|commands(?:\/[^#+]+)?)$/.exec(sub.topic);
        if (!s || !m) return cb(null, null);
        const [, deviceId = '', kind = ''] = m;
        if (kind === 'errors' ? deviceId !== s.id || !s.gateway : !mayAct(s, deviceId)) return cb(null, null);
        if (kind !== 'errors' && refusedSubs.has(deviceId)) return cb(null, null);
        cb(null, sub);
      },
      authorizeForward(client, packet) {
        const s = sessions.get(client);
        const m = /^\/devices\/([^/]+)\/(config|errors|commands)/.exec(packet.topic);
        if (!s || !m) return null;
        if (m[2] === 'errors') return m[1] === s.id ? packet : null;
        return mayAct(s, m[1] ?? '') ? packet : null;
      },
    },
    opts.tls,
  );

  // Drop packets the bridge does not support: the error is reported, the PUBREL is ignored.
  server.broker.on('client', (client) => {
    const parser = (client as unknown as { _parser?: EventEmitter })._parser;
    parser?.prependListener('packet', (p: { cmd: string; messageId?: number }) => {
      const s = sessions.get(client);
      if (s?.gateway && (p.cmd === 'pubrec' || p.cmd === 'pubrel' || p.cmd === 'pubcomp')) {
        sendError(s.id, {
          error_type: 'GATEWAY_UNEXPECTED_MESSAGE_TYPE',
          device_id: s.id,
          description: 'unsupported message type',
          message_type: p.cmd.toUpperCase(),
          packet_id: p.messageId ?? 0,
        });
      }
    });
  });
  server.broker.on('clientDisconnect', (client) => forget(client));
  server.broker.on('subscribe', (subs, client) => {
    const s = sessions.get(client);
    if (!s) return;
    for (const sub of subs) {
      if ((sub.qos as number) !== 128) subscribes.push({ id: s.id, topic: sub.topic });
      const m = /^\/devices\/([^/]+)\/config$/.exec(sub.topic);
      const config = m?.[1] !== undefined ? configs.get(m[1]) : undefined;
      if (m && config !== undefined && (sub.qos as number) !== 128) {
        client.publish(
          {
            cmd: 'publish',
            topic: sub.topic,
            payload: Buffer.from(config),
            qos: 1,
            retain: false,
            dup: false,
          },
          () => undefined,
        );
      }
    }
  });

  const attachRefusal = (gatewayId: string, deviceId: string, payload: string): string | undefined => {
    const dev = devices.get(deviceId);
    if (!dev) return 'device not found';
    let auth: unknown;
    if (payload.trim() !== '') {
      try {
        auth = (JSON.parse(payload) as { authorization?: unknown }).authorization;
      } catch {
        return 'attach payload is not JSON';
      }
    }
    if (typeof auth === 'string' && auth !== '') {
      if (!dev.publicKey) return 'device has no key';
      const res = verifyJwt(auth, dev.publicKey, verifyOpts);
      return res.ok ? undefined : `device JWT refused (${res.reason})`;
    }
    return dev.boundTo.has(gatewayId) ? undefined : 'device is not bound to the gateway';
  };

  const sendError = (gatewayId: string, error: GatewayError): void => {
    errors.push({ ...error, gatewayId });
    server.broker.publish(
      {
        cmd: 'publish',
        topic: `/devices/${gatewayId}/errors`,
        payload: Buffer.from(JSON.stringify(error)),
        qos: 0,
        retain: false,
        dup: false,
      },
      () => undefined,
    );
  };

  const fail = (
    _client: Client,
    s: Session,
    packet: PublishPacket,
    cb: (err?: Error | null) => void,
    type: string,
    deviceId: string,
    description: string,
  ): void => {
    sendError(s.id, {
      error_type: type,
      device_id: deviceId,
      description,
      message_type: 'PUBLISH',
      topic: packet.topic,
      packet_id: packet.messageId ?? 0,
    });
    // Not acknowledged, not routed: handled as QoS 0 under a topic no one subscribes to.
    (packet as { qos: number }).qos = 0;
    packet.topic = `$clearblade-emulator/failed/${s.id}`;
    cb(null);
  };

  const close = (s: Session, reason: string, cb: (err?: Error | null) => void): void => {
    refusals.push({ id: s.id, reason });
    cb(new Error(reason));
  };

  const publishTo = (topic: string, payload: string, qos: 0 | 1): void => {
    server.broker.publish(
      { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false },
      () => undefined,
    );
  };

  return {
    port: server.port,
    url: server.url,
    async stop() {
      for (const set of byId.values()) for (const c of set) forget(c);
      await server.stop();
    },
    clientIdFor: (id) => `${prefix}${id}`,
    attached: (gatewayId) => [...new Set(live(gatewayId).flatMap(([, s]) => [...s.attached]))].sort(),
    online: (id) => live(id).length > 0,
    telemetry: (deviceId) => telemetry.get(deviceId) ?? [],
    states: (deviceId) => states.get(deviceId) ?? [],
    errors,
    refusals,
    expired,
    controls,
    subscribes,
    sendConfig(deviceId, payload) {
      configs.set(deviceId, payload);
      publishTo(`/devices/${deviceId}/config`, payload, 1);
    },
    sendCommand(deviceId, payload, subfolder) {
      if (holder(deviceId).length === 0) return false;
      publishTo(`/devices/${deviceId}/commands${subfolder ? `/${subfolder}` : ''}`, payload, 1);
      return true;
    },
    expire(id) {
      const conns = live(id);
      for (const [c] of conns) {
        expired.push(id);
        c.close();
      }
      return conns.length;
    },
    bind(deviceId, gatewayId) {
      const dev = devices.get(deviceId);
      if (!dev) throw new Error(`no device ${deviceId} in the registry`);
      dev.boundTo.add(gatewayId);
    },
    refuseSubscriptions(deviceId) {
      refusedSubs.add(deviceId);
    },
    waitFor: (predicate, timeoutMs, what) => until(predicate, timeoutMs, what),
  };
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  let list = map.get(key);
  if (!list) {
    list = [];
    map.set(key, list);
  }
  list.push(value);
}
