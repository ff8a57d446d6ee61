/**
 * Real MQTT clients for tests: MQTT.js (in-process) here; mosquitto_pub/mosquitto_sub and
 * paho-mqtt via /usr/bin/python3 (child processes) in cli.ts, re-exported. Every wait has a
 * timeout.
 */
import type { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet';

export type { MqttClient } from 'mqtt';

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

/** MQTT topic filter match (+ and #), as brokers do it ($-topics are not matched by leading wildcards). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if ((f[0] === '#' || f[0] === '+') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Connect with MQTT.js: no automatic reconnect, 5 s connect timeout (override in opts).
 * Rejects with the client's error (e.g. a CONNACK refusal: `err.code` is the return/reason code).
 */
export function connectClient(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return tryConnect(url, opts).then((r) => {
    if (r.connack && r.client.connected) return r.client;
    throw r.error ?? new Error('connection closed before CONNACK');
  });
}

export interface ConnectResult {
  client: MqttClient;
  /** The CONNACK when one arrived (success or refusal). */
  connack?: IConnackPacket;
  /** Error reported by MQTT.js (refusal: `code` is the CONNACK return code / v5 reason code). */
  error?: Error & { code?: number | string };
  /** True when the connection closed without a successful CONNACK. */
  closed: boolean;
}

/** Connect and report what happened instead of throwing; a failed client is already ended. */
export function tryConnect(url: string, opts: IClientOptions = {}, timeoutMs = 8000): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    let connack: IConnackPacket | undefined;
    let error: (Error & { code?: number | string }) | undefined;
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.removeListener('packetreceive', onPacket);
      if (closed) client.end(true);
      const result: ConnectResult = { client, closed };
      if (connack) result.connack = connack;
      if (error) result.error = error;
      resolve(result);
    };
    const onPacket = (p: { cmd: string }): void => {
      if (p.cmd === 'connack') connack = p as IConnackPacket;
    };
    const timer = setTimeout(() => {
      error = error ?? new Error(`no CONNACK within ${timeoutMs} ms`);
      finish(true);
    }, timeoutMs);
    client.on('packetreceive', onPacket);
    client.once('connect', (p) => {
      connack = p;
      finish(false);
    });
    client.on('error', (e) => {
      error = error ?? e;
    });
    client.once('close', () => setImmediate(() => finish(true)));
  });
}

/** End a client (force: do not wait for in-flight messages), resolving when it is closed. */
export async function closeClient(client: MqttClient | undefined, force = true): Promise<void> {
  if (!client) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 3000);
    client.end(force, {}, () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export async function closeAll(clients: Iterable<MqttClient | undefined>): Promise<void> {
  await Promise.all([...clients].map((c) => closeClient(c)));
}

/** Subscribe and wait for the SUBACK; returns the granted entries (reject on timeout). */
export function subscribe(
  client: MqttClient,
  filter: string | string[],
  opts: mqtt.IClientSubscribeOptions = { qos: 0 },
  timeoutMs = 5000,
): Promise<mqtt.ISubscriptionGrant[]> {
  return withTimeout(client.subscribeAsync(filter, opts), timeoutMs, 'SUBACK');
}

/** Publish and wait for completion (PUBACK/PUBCOMP for QoS 1/2); resolves with the ack packet if any. */
export function publish(
  client: MqttClient,
  topic: string,
  payload: string | Buffer,
  opts: mqtt.IClientPublishOptions = {},
  timeoutMs = 5000,
): Promise<mqtt.Packet | undefined> {
  return withTimeout(client.publishAsync(topic, payload, opts), timeoutMs, 'publish completion');
}

/**
 * Collect the first n messages whose topic matches topicFilter (the caller subscribes).
 * Rejects after timeoutMs, saying how many arrived.
 */
export function collect(
  client: MqttClient,
  topicFilter: string,
  n: number,
  timeoutMs = 5000,
): Promise<ReceivedMessage[]> {
  return new Promise((resolve, reject) => {
    const got: ReceivedMessage[] = [];
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
      if (!topicMatches(topicFilter, topic)) return;
      got.push({ topic, payload, packet });
      if (got.length >= n) {
        cleanup();
        resolve(got);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`collect(${topicFilter}): ${got.length} of ${n} messages within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      client.removeListener('message', onMessage);
    };
    if (n <= 0) {
      cleanup();
      resolve(got);
      return;
    }
    client.on('message', onMessage);
  });
}

export async function nextMessage(
  client: MqttClient,
  topicFilter: string,
  timeoutMs = 5000,
): Promise<ReceivedMessage> {
  const [m] = await collect(client, topicFilter, 1, timeoutMs);
  return m!;
}

/** Messages matching topicFilter that arrive within windowMs (for "nothing arrives" checks). */
export function gather(
  client: MqttClient,
  topicFilter: string,
  windowMs: number,
): Promise<ReceivedMessage[]> {
  return new Promise((resolve) => {
    const got: ReceivedMessage[] = [];
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
      if (topicMatches(topicFilter, topic)) got.push({ topic, payload, packet });
    };
    client.on('message', onMessage);
    setTimeout(() => {
      client.removeListener('message', onMessage);
      resolve(got);
    }, windowMs);
  });
}

/** The arguments of the next `event` on emitter; rejects after timeoutMs. */
export function onceEvent(emitter: EventEmitter, event: string, timeoutMs = 5000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const handler = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(event, handler);
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.once(event, handler);
  });
}

/** Resolves when the client's connection is closed (immediately if it already is). */
export function waitClosed(client: MqttClient, timeoutMs = 5000): Promise<void> {
  if (!client.connected && (client.stream === undefined || client.stream.destroyed)) return Promise.resolve();
  return onceEvent(client as unknown as EventEmitter, 'close', timeoutMs).then(() => undefined);
}

/** Poll predicate every intervalMs until true; rejects after timeoutMs. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    if (await predicate()) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} not done within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export * from './cli.js';
