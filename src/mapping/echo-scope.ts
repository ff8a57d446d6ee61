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
    this.held.set(filter, splitTopic(filter).levels);
    this.covered = undefined;
  }

  /** The north session unsubscribed from `filter`. */
  release(filter: string): void {
    if (this.held.delete(filter)) this.covered = undefined;
  }

  /**
   * The north CONNACK: without a session present the broker holds no subscription but those
   * sent with or after this CONNECT (`current`), and nothing it could still send back.
   */
  northSession(present: boolean, current: readonly string[]): void {
    if (present) return;
    this.unknown = false;
    this.held.clear();
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
    for (const f of this.held.values()) {
      if (filterMatches(f, levels)) {
        yes = true;
        break;
      }
    }
    if (!this.covered || this.covered.size >= CACHE_MAX) this.covered = new Map();
    this.covered.set(topic, yes);
    return yes;
  }
}
