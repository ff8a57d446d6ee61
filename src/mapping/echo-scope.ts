/**
 * Which uplinks can come back as echoes: only those whose north topic a subscription of the
 * north session matches. An uplink no north filter covers is never sent back by the broker,
 * so remembering it would only fill the echo set (up to its bound, per device) with entries
 * that are never taken: an akenza device publishing to EVRYTHNG property topics, which are
 * two-way, without subscribing to anything.
 *
 * The scope holds the filters the north broker keeps for the session's client id, as far as
 * the proxy knows. A clean session starts with none. A persistent one (shared by the engine
 * between connections of one client id) keeps the filters of earlier connections, and does not
 * know them at all when the broker had the session before this process saw it: then every
 * two-way uplink is remembered, as the broker may hold any subscription, until a north CONNACK
 * says the broker kept no session.
 */
import { EchoSet } from './echo.js';
import { filterMatches, splitTopic } from './template.js';

/** Topics whose answer is cached; the cache starts over when full or when the filters change. */
const CACHE_MAX = 256;

export class EchoScope {
  /** What the session sent north and may get back (kept with the scope: it outlives a connection). */
  readonly set = new EchoSet();
  /** North filter → its levels (a `?project=` scope is not part of what it matches). */
  private readonly held = new Map<string, string[]>();
  /**
   * The held filters' levels by their literal head (the levels before the first wildcard,
   * with their count): a topic is checked against the filters one of its prefixes names, not
   * against all of them (a login serving 10,000 devices holds a filter or more per device).
   */
  private readonly byHead = new Map<string, string[][]>();
  /** Topic → covered: made at the first uplink checked (an idle device has none). */
  private covered: Map<string, boolean> | undefined;
  /** The broker may hold subscriptions the proxy has not seen (a persistent session it did not open). */
  private unknown: boolean;

  constructor(persistent: boolean) {
    this.unknown = persistent;
  }

  /** A north subscription to `filter` was sent. */
  hold(filter: string): void {
    if (this.held.has(filter)) return;
    const levels = splitTopic(filter).levels;
    this.held.set(filter, levels);
    const head = headOf(levels);
    const bucket = this.byHead.get(head);
    if (bucket) bucket.push(levels);
    else this.byHead.set(head, [levels]);
    this.covered = undefined;
  }

  /** The north session unsubscribed from `filter`. */
  release(filter: string): void {
    const levels = this.held.get(filter);
    if (!levels) return;
    this.held.delete(filter);
    const head = headOf(levels);
    const bucket = this.byHead.get(head);
    const at = bucket?.indexOf(levels) ?? -1;
    if (bucket && at >= 0) {
      bucket.splice(at, 1);
      if (bucket.length === 0) this.byHead.delete(head);
    }
    this.covered = undefined;
  }

  /**
   * The north CONNACK: without a session present the broker holds no subscription but those
   * sent with or after this CONNECT (`current`), and nothing it could still send back.
   */
  northSession(present: boolean, current: readonly string[]): void {
    if (present) return;
    this.unknown = false;
    this.held.clear();
    this.byHead.clear();
    this.covered = undefined;
    this.set.clear();
    for (const f of current) this.hold(f);
  }

  /** True when the north broker may send `topic` back to this session. */
  covers(topic: string): boolean {
    if (this.unknown) return true;
    if (this.held.size === 0) return false;
    const hit = this.covered?.get(topic);
    if (hit !== undefined) return hit;
    const levels = topic.split('/');
    let yes = false;
    let prefix = '';
    for (let k = 0; !yes && k <= levels.length; k++) {
      if (k === 1) prefix = levels[0] as string;
      else if (k > 1) prefix += `/${levels[k - 1]}`;
      const bucket = this.byHead.get(`${k}|${prefix}`);
      if (bucket) for (const f of bucket) if (filterMatches(f, levels)) yes = true;
    }
    if (!this.covered || this.covered.size >= CACHE_MAX) this.covered = new Map();
    this.covered.set(topic, yes);
    return yes;
  }
}

/** A filter's literal head: its levels before the first wildcard, with their count. */
function headOf(levels: readonly string[]): string {
  let k = 0;
  while (k < levels.length && levels[k] !== '+' && levels[k] !== '#') k++;
  return `${k}|${levels.slice(0, k).join('/')}`;
}

/** Echo scopes no session holds that a pool keeps, by count and by the bytes of their sets. */
const IDLE_SCOPES = 10_000;
const IDLE_ECHO_BYTES = 64 * 1024 * 1024;

/**
 * The echo scopes of a route's persistent north sessions, by north client id. A scope no
 * session holds stays (a reconnect finds its filters and pending echoes) among the IDLE_SCOPES
 * most recently left, within IDLE_ECHO_BYTES of echo sets in all; older ones go (a client id
 * may come from the device, so there is no bound on how many there are). A scope made again
 * starts as unknown, as after a restart: it remembers every two-way uplink until the north
 * CONNACK says whether the broker kept a session.
 */
export class EchoScopePool {
  private readonly scopes = new Map<string, { scope: EchoScope; sessions: number }>();
  /** Client id → its echo set's bytes, for the scopes no session holds, oldest first. */
  private readonly idle = new Map<string, number>();
  private idleBytes = 0;

  /** The scope of `clientId` for one session, and what that session calls when it closes. */
  take(clientId: string): { echo: EchoScope; onClose: () => void } {
    let e = this.scopes.get(clientId);
    if (!e) {
      e = { scope: new EchoScope(true), sessions: 0 };
      this.scopes.set(clientId, e);
    }
    const b = this.idle.get(clientId);
    if (b !== undefined) {
      this.idle.delete(clientId);
      this.idleBytes -= b;
    }
    e.sessions++;
    const echo = e.scope;
    return { echo, onClose: () => this.left(clientId, echo) };
  }

  private left(clientId: string, scope: EchoScope): void {
    const e = this.scopes.get(clientId);
    if (!e || e.scope !== scope || --e.sessions > 0) return;
    const b = scope.set.bytes;
    this.idle.set(clientId, b);
    this.idleBytes += b;
    for (const [id, bytes] of this.idle) {
      if (this.idle.size <= IDLE_SCOPES && this.idleBytes <= IDLE_ECHO_BYTES) break;
      this.idle.delete(id);
      this.idleBytes -= bytes;
      this.scopes.delete(id);
    }
  }
}
