/**
 * Keys given on topics: a dialect declaring the `access_token` option (EVRYTHNG's MQTT over
 * WebSocket clients, `client.subscribe('/thngs/{id}/properties?access_token=KEY')`) lets a
 * client connect without credentials and give its key on its first SUBSCRIBE or PUBLISH.
 * Until then its session is a gate: nothing north, and a topic without a key is refused as
 * the dialect refuses a topic outside a key's scope. The key is then looked up as the
 * CONNECT's password would have been (the CONNECT `keyConnect` makes). Pure.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { Outcome, SessionMapper, SubscribePlan } from '../core/contract.js';
import type { CompiledDialect } from './dialect.js';
import { splitTopic, type Vars } from './template.js';

/** The topic option carrying a key. */
export const KEY_OPTION = 'access_token';

/** The dialect takes keys on topics. */
export function takesTopicKeys(d: CompiledDialect): boolean {
  return d.options.has(KEY_OPTION);
}

function decode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** The key in parsed topic options (percent-decoded), undefined when there is none. */
export function keyIn(options: Readonly<Vars> | undefined): string | undefined {
  const v = options?.[KEY_OPTION];
  return v === undefined ? undefined : decode(v);
}

/** The key a topic or filter carries (`?access_token=KEY`), undefined when none; '' for an empty one. */
export function topicKey(topic: string): string | undefined {
  return topic.includes('?') ? keyIn(splitTopic(topic).options) : undefined;
}

/** Compared in constant time for equal lengths (the key is a secret). */
export function sameKey(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The CONNECT a key stands in for: the first south scheme whose password is one variable
 * (EVRYTHNG `password: "{apiKey}"`) and whose username is fixed (`authorization`) or absent,
 * with the key as password. Undefined when the dialect has no such scheme.
 */
export function keyConnect(
  south: CompiledDialect,
  c: IConnectPacket,
  key: string,
): IConnectPacket | undefined {
  for (const s of south.southAuth) {
    if (s.jwt || s.commonName || s.credential === undefined) continue;
    if (s.password?.length !== 1 || s.password[0]?.lone !== s.credential) continue;
    const user = s.username === undefined ? '' : s.username.find((t) => t.literal)?.source;
    if (user === undefined) continue;
    const out: IConnectPacket = { ...c, password: Buffer.from(key) };
    if (user) out.username = user;
    else delete out.username;
    return out;
  }
  return undefined;
}

/**
 * The session of a client that has not given its key yet. A publish is dropped (as a topic of
 * another identity is); a filter carrying a key is one that was refused (0x80: an unknown
 * key); any other gets the dialect's answer to a filter outside the key's scope (EVRYTHNG:
 * granted and silent). Nothing arrives from north: there is no north.
 */
export class KeyGate implements SessionMapper {
  constructor(private readonly south: CompiledDialect) {}

  uplink(): Outcome {
    return { verdict: 'drop', reason: 'unauthenticated' };
  }

  downlink(): Outcome {
    return { verdict: 'drop', reason: 'unauthenticated' };
  }

  subscribe(packet: { subscriptions: Array<{ topic: string; qos: number }> }): SubscribePlan {
    const otherwise = this.south.subs.otherwise;
    if (otherwise === 'disconnect') return { north: [], granted: [], disconnect: 'bad_subscription' };
    const max = this.south.quirks.maxDownlinkQos;
    return {
      north: [],
      granted: packet.subscriptions.map((s) => ({
        code: otherwise === 'silent' && topicKey(s.topic) === undefined ? Math.min(s.qos, max) : 0x80,
      })),
    };
  }

  unsubscribe(): { north: string[]; ackOnly: boolean } {
    return { north: [], ackOnly: true };
  }

  autoSubscribe(): [] {
    return [];
  }

  close(): void {}
}
