/**
 * Requests a device-facing dialect answers locally instead of translating them: activation
 * (`provision` kind, e.g. Connector's `$provision/{deviceId}`) and the content listing
 * (`content` kind, `$content`). Pure: the registry that creates identities is injected
 * (routes/provision.ts backs it with a CredentialStore) and the content list is given as bytes.
 *
 * - AnonymousSession: the mapper of a client that proved no identity (or a certificate that
 *   is not activated yet). It may only publish its activation request and subscribe to the
 *   reply topic; anything else closes the connection.
 * - LocalRequests: wraps a device's translating mapper and answers `provision`/`content`
 *   publishes itself; everything else goes to the wrapped mapper.
 */
import type { IPublishPacket, ISubscribePacket, IUnsubscribePacket, QoS } from 'mqtt-packet';
import type { Outcome, PublishOut, SessionMapper, SubscribePlan, UnsubscribePlan } from '../core/contract.js';
import type { CompiledDialect, Rule } from './dialect.js';
import { safeLevel, splitTopic, type Vars } from './template.js';

/** Shortest password a device may register (Connector: at least 20 characters). */
export const MIN_PASSWORD_CHARS = 20;

export type ProvisionResult = { token?: string } | { refused: string };

/** Creates device identities (atomically: a second activation of one id is refused). */
export interface Provisioner {
  /** token: the registry generates and returns a token; password: the payload is the password. */
  readonly mode: 'token' | 'password';
  /** Activation of a device identified by its TLS certificate: nothing is returned. */
  provision(deviceId: string, secret: { password?: string; certificate?: boolean }): Promise<ProvisionResult>;
}

export interface LocalServices {
  provisioner?: Provisioner;
  /** Automatic north subscriptions at QoS 1 (a persistent north session keeps offline changes). */
  offlineSync?: boolean;
  /** The `content` reply (a JSON list), shared by every device of the route. */
  content?: Buffer;
}

function payloadOf(p: IPublishPacket): Buffer {
  return typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
}

function matchKind(
  rules: readonly Rule[],
  kind: 'provision' | 'content',
  topic: string,
): { rule: Rule; caps: Vars } | undefined {
  const { levels } = splitTopic(topic);
  for (const r of rules) {
    if (r.up !== kind) continue;
    const caps: Vars = {};
    if (r.tpl.match(levels, caps)) return { rule: r, caps };
    for (const a of r.alts) if (a.match(levels, caps)) return { rule: r, caps };
  }
  return undefined;
}

/** One activation request; `bound` restricts it to one id (a certificate's CN). */
async function activate(
  prov: Provisioner,
  south: CompiledDialect,
  p: IPublishPacket,
  bound: string | undefined,
): Promise<Outcome> {
  const m = matchKind(south.upRules, 'provision', p.topic);
  if (!m) return { verdict: 'disconnect', reason: 'anonymous_publish' };
  const id = m.caps.deviceId;
  if (id === undefined || !safeLevel(id))
    return { verdict: 'disconnect', reason: 'bad_device_id', rule: m.rule.name };
  if (bound !== undefined && id !== bound)
    return { verdict: 'disconnect', reason: 'provision_other_device', rule: m.rule.name };
  let res: ProvisionResult;
  if (bound !== undefined) res = await prov.provision(id, { certificate: true });
  else if (prov.mode === 'password') {
    const password = payloadOf(p).toString('utf8');
    if ([...password].length < MIN_PASSWORD_CHARS)
      return { verdict: 'disconnect', reason: 'provision_password_too_short', rule: m.rule.name };
    res = await prov.provision(id, { password });
  } else res = await prov.provision(id, {});
  if ('refused' in res) return { verdict: 'disconnect', reason: res.refused, rule: m.rule.name };
  const reply: PublishOut[] =
    res.token !== undefined
      ? [{ topic: p.topic, payload: Buffer.from(res.token), qos: 0, retain: false }]
      : [];
  return { south: reply, verdict: 'continue', rule: m.rule.name, reason: 'provisioned' };
}

/** The session of a client without an identity: activation only. */
export class AnonymousSession implements SessionMapper {
  constructor(
    private readonly south: CompiledDialect,
    private readonly prov: Provisioner,
    /** Device id of a certificate not yet activated: the only id it may activate. */
    private readonly bound?: string,
  ) {}

  uplink(packet: IPublishPacket): Promise<Outcome> {
    return activate(this.prov, this.south, packet, this.bound);
  }

  downlink(): Outcome {
    return { verdict: 'drop', reason: 'anonymous' };
  }

  subscribe(packet: ISubscribePacket): SubscribePlan {
    const granted = packet.subscriptions.map((s) => {
      const m = matchKind(this.south.upRules, 'provision', s.topic);
      const id = m?.caps.deviceId;
      const ok = id !== undefined && safeLevel(id) && (this.bound === undefined || id === this.bound);
      return { code: ok ? 0 : 0x80 };
    });
    return { north: [], granted };
  }

  unsubscribe(): UnsubscribePlan {
    return { north: [], ackOnly: true };
  }

  autoSubscribe(): Array<{ topic: string; qos: QoS }> {
    return [];
  }

  close(): void {}
}

/** A device's mapper with activation and content requests answered locally. */
export class LocalRequests implements SessionMapper {
  constructor(
    private readonly inner: SessionMapper,
    private readonly south: CompiledDialect,
    private readonly local: LocalServices,
  ) {
    // Only when the inner mapper has it: the session runs it at every connect when present.
    if (inner.onOnline)
      this.onOnline = () => (inner.onOnline as () => PublishOut[] | Promise<PublishOut[]>)();
  }

  onOnline?: () => PublishOut[] | Promise<PublishOut[]>;

  // Methods that pass on to the inner mapper, not functions bound per session (idle devices
  // keep them): without the inner hook they do what its absence does.
  onNorthConnack(sessionPresent: boolean): void {
    this.inner.onNorthConnack?.(sessionPresent);
  }

  takeEcho(frame: Buffer, topicStart: number, topicEnd: number, payloadStart: number): string | undefined {
    return this.inner.takeEcho?.(frame, topicStart, topicEnd, payloadStart);
  }

  /** The inner mapper's answer; an outcome that does nothing when it has no such hook. */
  onGatewayError(error: { type: string; description?: string }): Outcome {
    return this.inner.onGatewayError?.(error) ?? {};
  }

  uplink(packet: IPublishPacket): Outcome | Promise<Outcome> {
    const t = packet.topic;
    // Local topics of the device dialects start with '$': a cheap test before any matching.
    if (t.charCodeAt(0) === 36) {
      if (this.local.content) {
        const m = matchKind(this.south.upRules, 'content', t);
        if (m) {
          const reply: PublishOut = { topic: t, payload: this.local.content, qos: 0, retain: false };
          return { south: [reply], verdict: 'continue', rule: m.rule.name, reason: 'content' };
        }
      }
      if (this.local.provisioner) {
        const m = matchKind(this.south.upRules, 'provision', t);
        // The device already has an identity: activating it (or another one) again is refused.
        if (m) return { verdict: 'disconnect', reason: 'provision_existing_device', rule: m.rule.name };
      }
    }
    return this.inner.uplink(packet);
  }

  downlink(packet: IPublishPacket): Outcome {
    return this.inner.downlink(packet);
  }

  subscribe(packet: ISubscribePacket): SubscribePlan {
    return this.inner.subscribe(packet);
  }

  unsubscribe(packet: IUnsubscribePacket): UnsubscribePlan {
    return this.inner.unsubscribe(packet);
  }

  autoSubscribe(): Array<{ topic: string; qos: QoS }> {
    const auto = this.inner.autoSubscribe();
    return this.local.offlineSync ? auto.map((a) => ({ ...a, qos: 1 as QoS })) : auto;
  }

  close(): void {
    this.inner.close();
  }
}
