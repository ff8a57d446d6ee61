/**
 * Emulator of the EVRYTHNG Pub/Sub broker (MQTT 3.1.1) on aedes, per specs/evrythng-pubsub.txt,
 * for what mosquitto cannot do (see mosquitto-platforms.ts): several API keys, all logging in
 * as username `authorization`, each with its own scope.
 * - CONNECT: username `authorization`, password = a known API key; else CONNACK 4.
 * - A key may publish/subscribe the topics of its thngs, products and collections (an operator
 *   key: every topic). Out of scope: a PUBLISH is acknowledged and dropped, a SUBSCRIBE is
 *   granted and silent (no failure code, no messages), as the spec says.
 * - Topic options (`?project=…`, `?pubStates=1`) are stripped from the topic; `pubStates=1`
 *   sends the topic's last value right after the SUBACK.
 * - Publishes are delivered to every in-scope subscriber, on the topic without options.
 */
import type { Client } from 'aedes';
import { refuse, startAedes, until } from './aedes-server.js';

export interface EvrythngKey {
  key: string;
  /** Name used in records instead of the key (default "key-N"). */
  label?: string;
  thngs?: string[];
  products?: string[];
  collections?: string[];
  operator?: boolean;
}

export interface EvrythngPlatform {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** Accepted client publishes (topic without options), by key label. */
  readonly published: Array<{ label: string; topic: string; payload: string }>;
  /** Refusals and silent drops, bounded reasons, labels only. */
  readonly refusals: Array<{ label?: string; reason: string }>;
  /** The platform publishes (a property changed through the REST API, an action created, ...). */
  publish(topic: string, payload: string, qos?: 0 | 1): void;
  /** Last value per topic, as pubStates sends it. */
  lastValue(topic: string): string | undefined;
  waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
}

const VOID = '$evrythng-emulator/void';

/** The topic without its query-string options, and the options. */
export function splitOptions(topic: string): { path: string; options: URLSearchParams } {
  const q = topic.indexOf('?');
  if (q < 0) return { path: topic, options: new URLSearchParams() };
  return { path: topic.slice(0, q), options: new URLSearchParams(topic.slice(q + 1)) };
}

function inScope(k: EvrythngKey, path: string): boolean {
  if (k.operator) return true;
  const [empty, kind, id] = path.split('/');
  if (empty !== '' || id === undefined || id === '' || id.includes('+') || id.includes('#')) return false;
  const ids =
    kind === 'thngs'
      ? k.thngs
      : kind === 'products'
        ? k.products
        : kind === 'collections'
          ? k.collections
          : [];
  return (ids ?? []).includes(id);
}

export async function startEvrythngPlatform(opts: { keys: EvrythngKey[] }): Promise<EvrythngPlatform> {
  const keys = opts.keys.map((k, i) => ({ ...k, label: k.label ?? `key-${i + 1}` }));
  const sessions = new WeakMap<Client, (typeof keys)[number]>();
  const published: EvrythngPlatform['published'] = [];
  const refusals: EvrythngPlatform['refusals'] = [];
  const last = new Map<string, string>();
  /** Topics whose last value a client asked for (`?pubStates=1`), sent once the SUBACK is out. */
  const pubStates = new WeakMap<Client, string[]>();

  const server = await startAedes({
    authenticate(client, username, password, done) {
      const k = keys.find((x) => x.key === password?.toString());
      if (username !== 'authorization' || !k) {
        refusals.push({ reason: 'bad_credentials' });
        return done(refuse(4, 'bad user name or password'), false);
      }
      sessions.set(client, k);
      done(null, true);
    },
    authorizePublish(client, packet, cb) {
      if (!client) return cb(null);
      const k = sessions.get(client);
      const { path } = splitOptions(packet.topic);
      if (!k || !inScope(k, path)) {
        refusals.push({ label: k?.label, reason: 'publish_out_of_scope' });
        packet.topic = VOID;
        return cb(null);
      }
      const payload = Buffer.from(packet.payload).toString('utf8');
      published.push({ label: k.label, topic: path, payload });
      last.set(path, payload);
      packet.topic = path;
      packet.retain = false;
      cb(null);
    },
    authorizeSubscribe(client, sub, cb) {
      const k = sessions.get(client);
      const { path, options } = splitOptions(sub.topic);
      if (!k || !inScope(k, path)) {
        refusals.push({ label: k?.label, reason: 'subscribe_out_of_scope' });
        return cb(null, { ...sub, topic: `${VOID}/${client.id}` });
      }
      if (options.get('pubStates') === '1') {
        const list = pubStates.get(client) ?? [];
        list.push(path);
        pubStates.set(client, list);
      }
      cb(null, { ...sub, topic: path });
    },
  });

  server.broker.on('subscribe', (_subs, client) => {
    const list = pubStates.get(client);
    pubStates.delete(client);
    for (const path of list ?? []) {
      const value = last.get(path);
      if (value === undefined) continue;
      client.publish(
        { cmd: 'publish', topic: path, payload: Buffer.from(value), qos: 0, retain: false, dup: false },
        () => undefined,
      );
    }
  });

  return {
    port: server.port,
    url: server.url,
    stop: server.stop,
    published,
    refusals,
    publish(topic, payload, qos = 0) {
      const { path } = splitOptions(topic);
      last.set(path, payload);
      server.broker.publish(
        { cmd: 'publish', topic: path, payload: Buffer.from(payload), qos, retain: false, dup: false },
        () => undefined,
      );
    },
    lastValue: (topic) => last.get(splitOptions(topic).path),
    waitFor: (predicate, timeoutMs, what) => until(predicate, timeoutMs, what),
  };
}
