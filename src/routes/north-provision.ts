/**
 * Activation on the north side: when the north dialect lets devices activate themselves
 * (Connector `$provision/{deviceId}`) and a device's north identity has no credential yet, the
 * proxy activates it on the platform once, keeps the token it receives in the store, and uses
 * it for every later north CONNECT (EVRYTHNG devices moving to West Connectivity).
 *
 * Store records: NS/{deviceId} { token }. Activations of one id are serialised in-process;
 * across replicas the platform itself refuses the second one (the first token stays valid).
 */
import mqtt from 'mqtt';
import type { Logger } from '../log/logger.js';
import type { SouthScheme } from '../mapping/dialect.js';
import type { IdentitySource } from '../mapping/engine.js';
import type { Vars } from '../mapping/template.js';
import type { CredentialStore } from '../store/types.js';
import type { NorthTlsOptions } from '../upstream/transport.js';

export interface NorthActivation {
  /** North URL of the platform (mqtt://, mqtts://, ws://, wss://). */
  url: string;
  /** Builds the activation topic from the device variables (e.g. `$provision/{deviceId}`). */
  topic: (vars: Readonly<Vars>) => string | undefined;
  /** The north variable that holds the device id, and the one the token goes to. */
  idVar: string;
  tokenVar: string;
  /** North variables that, when present, mean the device already has a credential. */
  credentialVars: readonly string[];
  timeoutMs?: number;
  /** TLS options of the proxy's north connections (north.ca, north.cert...): the same platform. */
  tls?: NorthTlsOptions;
}

export type ActivationError = 'north_activation_refused' | 'north_activation_failed';

/** Publishes the activation request anonymously and waits for the token on the same topic. */
export function activateNorth(
  url: string,
  topic: string,
  timeoutMs: number,
  tls?: NorthTlsOptions,
): Promise<string | ActivationError> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, {
      ...tls,
      clientId: '',
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      keepalive: 30,
      protocolVersion: 4,
    });
    let done = false;
    const finish = (r: string | ActivationError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.end(true);
      resolve(r);
    };
    const timer = setTimeout(() => finish('north_activation_failed'), timeoutMs);
    client.on('error', () => finish('north_activation_failed'));
    // The platform closes the connection when it refuses (e.g. the id already exists).
    client.on('close', () =>
      finish(client.connected ? 'north_activation_refused' : 'north_activation_failed'),
    );
    client.on('message', (t, payload) => {
      if (t === topic && payload.length > 0) finish(payload.toString('utf8'));
    });
    client.on('connect', () => {
      client.subscribe(topic, { qos: 0 }, () => {
        client.publish(topic, '', { qos: 0 });
      });
    });
  });
}

/** An identity source whose north identities get a credential by activation when they lack one. */
export class ActivatingIdentity implements IdentitySource {
  private readonly running = new Map<string, Promise<string | ActivationError>>();
  /**
   * Tokens the platform gave that the store did not take (it was down): used from memory and
   * stored again on the device's next CONNECT. The platform activates a device once, so a
   * token lost here would lock the device out for good.
   */
  private readonly unsaved = new Map<string, string>();

  constructor(
    private readonly inner: IdentitySource,
    private readonly store: CredentialStore,
    private readonly ns: string,
    private readonly act: NorthActivation,
    private readonly log: Logger,
  ) {}

  async resolve(
    extracted: Readonly<Vars>,
    scheme: SouthScheme,
  ): Promise<{ vars: Vars } | { error: 'unknown_device' | 'bad_credentials' }> {
    const r = await this.inner.resolve(extracted, scheme);
    if ('error' in r) return r;
    const vars = r.vars;
    if (this.act.credentialVars.some((v) => vars[v])) return r;
    const id = vars[this.act.idVar];
    if (!id) return r;
    const held = this.unsaved.get(id);
    if (held !== undefined) {
      await this.keep(id, held);
      return { vars: { ...vars, [this.act.tokenVar]: held } };
    }
    const kept = (await this.store.get(this.ns, id))?.token;
    if (kept) return { vars: { ...vars, [this.act.tokenVar]: kept } };
    const token = await this.activateOnce(id, vars);
    // No credential north: the engine refuses the CONNECT (no north scheme fits).
    if (token === undefined) return r;
    return { vars: { ...vars, [this.act.tokenVar]: token } };
  }

  private async activateOnce(id: string, vars: Readonly<Vars>): Promise<string | undefined> {
    let p = this.running.get(id);
    if (!p) {
      p = this.activate(id, vars).finally(() => this.running.delete(id));
      this.running.set(id, p);
    }
    const r = await p;
    return r === 'north_activation_refused' || r === 'north_activation_failed' ? undefined : r;
  }

  private async activate(id: string, vars: Readonly<Vars>): Promise<string | ActivationError> {
    const topic = this.act.topic(vars);
    if (topic === undefined) return 'north_activation_failed';
    const r = await activateNorth(this.act.url, topic, this.act.timeoutMs ?? 5000, this.act.tls);
    if (r === 'north_activation_refused' || r === 'north_activation_failed') {
      // The id only: never the topic's payload or a credential.
      this.log.warn({ reason: r }, 'north activation of a device did not give a token');
      return r;
    }
    if (await this.keep(id, r))
      this.log.info('device activated on the north platform; token kept in the store');
    return r;
  }

  /** Stores a token; when the store fails, keeps it in memory (logged once per failure). */
  private async keep(id: string, token: string): Promise<boolean> {
    try {
      await this.store.put(this.ns, id, { token });
      this.unsaved.delete(id);
      return true;
    } catch (err) {
      if (!this.unsaved.has(id))
        this.log.error(
          { err: (err as Error).message },
          'device activated on the north platform but the store did not take its token: kept in memory, stored again on its next connect (a restart before then loses it)',
        );
      this.unsaved.set(id, token);
      return false;
    }
  }
}
