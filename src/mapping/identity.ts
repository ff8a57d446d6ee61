/**
 * The credentials identity source: records pairing a south identity with north identity
 * and secrets, indexed by the variables a device can be looked up with. Pure: the records
 * are given (routes/credentials.ts reads them from a YAML, JSON or CSV file).
 */
import { timingSafeEqual } from 'node:crypto';
import type { SouthScheme } from './dialect.js';
import type { IdentitySource } from './engine.js';
import { compileFleet, type Fleet, type FleetSpec } from './fleet-index.js';
import type { Vars } from './template.js';

export interface CredentialRecord {
  south: Vars;
  north: Vars;
  /** Many devices for one login (`devices:`, `groups:`): served by a FleetSession. */
  fleet?: FleetSpec;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class CredentialsIndex implements IdentitySource {
  /** Variable → value → the records holding it (several devices may share a connector secret). */
  private readonly index = new Map<string, Map<string, CredentialRecord[]>>();
  /** The devices of records that list them, indexed at load. */
  private readonly fleets = new Map<CredentialRecord, Fleet>();

  constructor(
    readonly records: readonly CredentialRecord[],
    private readonly keys?: readonly string[],
  ) {
    for (const r of records) {
      if (r.fleet) this.fleets.set(r, compileFleet(r.fleet));
      for (const [k, v] of Object.entries(r.south)) {
        let m = this.index.get(k);
        if (!m) {
          m = new Map();
          this.index.set(k, m);
        }
        const list = m.get(v);
        if (list) list.push(r);
        else m.set(v, [r]);
      }
    }
  }

  get size(): number {
    return this.records.length;
  }

  /** True when a record's south variables give `name` this value (e.g. a deviceId the file lists). */
  has(name: string, value: string): boolean {
    return this.index.get(name)?.has(value) ?? false;
  }

  async resolve(
    extracted: Readonly<Vars>,
    scheme: SouthScheme,
  ): Promise<{ vars: Vars; fleet?: Fleet } | { error: 'unknown_device' | 'bad_credentials' }> {
    return this.resolveSync(extracted, scheme);
  }

  resolveSync(
    extracted: Readonly<Vars>,
    scheme: Pick<SouthScheme, 'credential'> & { commonName?: unknown },
  ): { vars: Vars; fleet?: Fleet } | { error: 'unknown_device' | 'bad_credentials' } {
    // The route's keys first, then the scheme's credential, then whatever the CONNECT gave: a
    // certificate device (CN) is found even on a route keyed by token.
    let found = false;
    const look = (k: string): { vars: Vars; fleet?: Fleet } | undefined => {
      const v = extracted[k];
      if (v === undefined) return undefined;
      const list = this.index.get(k)?.get(v);
      if (!list) return undefined;
      found = true;
      // The first record that agrees with everything the CONNECT says.
      for (const record of list)
        if (this.consistent(record, extracted, scheme)) return this.vars(record, extracted);
      return undefined;
    };
    for (const k of this.keys ?? []) {
      const r = look(k);
      if (r) return r;
    }
    if (scheme.credential) {
      const r = look(scheme.credential);
      if (r) return r;
    }
    for (const k in extracted) {
      const r = look(k);
      if (r) return r;
    }
    if (found) return { error: 'bad_credentials' };
    // An unknown password or token is a bad credential; an unknown certificate name, an unknown device.
    return { error: scheme.commonName ? 'unknown_device' : 'bad_credentials' };
  }

  private consistent(
    record: CredentialRecord,
    extracted: Readonly<Vars>,
    scheme: Pick<SouthScheme, 'credential'>,
  ): boolean {
    const cred = scheme.credential;
    if (cred !== undefined) {
      const want = record.south[cred];
      const got = extracted[cred];
      if (want === undefined || got === undefined || !same(want, got)) return false;
    }
    for (const k in extracted) {
      if (k === cred) continue; // compared above
      const want = record.south[k];
      if (want !== undefined && !same(want, extracted[k] as string)) return false;
    }
    return true;
  }

  private vars(record: CredentialRecord, extracted: Readonly<Vars>): { vars: Vars; fleet?: Fleet } {
    const vars: Vars = {};
    for (const k in record.south) vars[k] = record.south[k] as string;
    for (const k in extracted) vars[k] = extracted[k] as string;
    for (const k in record.north) vars[k] = record.north[k] as string;
    const fleet = this.fleets.get(record);
    return fleet ? { vars, fleet } : { vars };
  }
}
