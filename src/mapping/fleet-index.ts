/**
 * Records naming many devices for one login (an application account that sees a fleet, as
 * foxtrackr's `foxtrackr/#`): the devices indexed at load by every variable they give, their
 * groups, where a route's south topics name the device, and how one south filter expands into
 * the devices it covers. Pure: no sockets, no files.
 */
import type { Plan } from './plan.js';
import { safeLevel, type Vars } from './template.js';

/** A record's devices as written (`devices:` list, optional `groups: { name: [deviceId, ...] }`). */
export interface FleetSpec {
  readonly devices: readonly Readonly<Vars>[];
  readonly groups?: Readonly<Record<string, readonly string[]>>;
}

/** A record's devices, compiled once when its credentials file is loaded. */
export interface Fleet {
  readonly devices: readonly Readonly<Vars>[];
  readonly groupSpec: Readonly<Record<string, readonly string[]>>;
  /** Variable → value → device index; a value two devices share indexes nothing (-1). */
  readonly byVar: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Group memberships resolved by the variable a route names devices with (made on first use). */
  readonly resolved: Map<string, { byName: Map<string, number[]>; ofDevice: Map<number, string[]> }>;
}

export function compileFleet(spec: FleetSpec): Fleet {
  const byVar = new Map<string, Map<string, number>>();
  spec.devices.forEach((d, i) => {
    for (const k in d) {
      let m = byVar.get(k);
      if (!m) {
        m = new Map();
        byVar.set(k, m);
      }
      const v = d[k] as string;
      m.set(v, m.has(v) ? -1 : i);
    }
  });
  return { devices: spec.devices, groupSpec: spec.groups ?? {}, byVar, resolved: new Map() };
}

/** The device a variable's value names, or undefined (no device, or several). */
export function deviceBy(fleet: Fleet, name: string, value: string): number | undefined {
  const i = fleet.byVar.get(name)?.get(value);
  return i === undefined || i < 0 ? undefined : i;
}

/** The groups, by name and by device, with members named by `deviceVar`. */
export function groupsOf(
  fleet: Fleet,
  deviceVar: string,
): { byName: Map<string, number[]>; ofDevice: Map<number, string[]> } {
  let g = fleet.resolved.get(deviceVar);
  if (g) return g;
  g = { byName: new Map(), ofDevice: new Map() };
  for (const [name, members] of Object.entries(fleet.groupSpec)) {
    const list: number[] = [];
    for (const m of members) {
      const i = deviceBy(fleet, deviceVar, m);
      if (i === undefined || list.includes(i)) continue;
      list.push(i);
      const of = g.ofDevice.get(i);
      if (of) of.push(name);
      else g.ofDevice.set(i, [name]);
    }
    g.byName.set(name, list);
  }
  fleet.resolved.set(deviceVar, g);
  return g;
}

/** Where a route's south topics name the device: `foxtrackr/{deviceId}/...` is level 1. */
export interface FleetLayout {
  /** The identity variable naming the device (foxtrackr: deviceId). */
  readonly deviceVar: string;
  readonly level: number;
  /** The literal levels before it (foxtrackr: ["foxtrackr"]). */
  readonly prefix: readonly string[];
}

const layouts = new WeakMap<Plan, FleetLayout | null>();

/**
 * The south dialect's allowed filters must all name the device with the same identity
 * variable at the same level, after the same literal levels; otherwise (Connector: no device
 * in its topics; akenza: a secret before it) records with devices cannot be served: undefined.
 */
export function fleetLayout(plan: Plan): FleetLayout | undefined {
  const known = layouts.get(plan);
  if (known !== undefined) return known ?? undefined;
  const south = plan.south;
  let found: FleetLayout | undefined;
  let ok = !south.subs.automatic;
  for (const a of south.subs.allowed) {
    const at = a.levels.findIndex((l) => 'cap' in l && south.identity.has(l.cap));
    if (at < 0) continue;
    const level = a.levels[at] as { cap: string };
    const prefix: string[] = [];
    for (const l of a.levels.slice(0, at)) if ('lit' in l) prefix.push(l.lit);
    if (prefix.length !== at) ok = false;
    if (
      found &&
      (found.deviceVar !== level.cap || found.level !== at || found.prefix.join('/') !== prefix.join('/'))
    )
      ok = false;
    found ??= { deviceVar: level.cap, level: at, prefix };
  }
  const out = ok ? found : undefined;
  layouts.set(plan, out ?? null);
  return out;
}

/** What one south filter covers: every device, one device, or a group's devices. */
export interface Cover {
  /** Device indexes, or 'all'. */
  readonly devices: 'all' | readonly number[];
  /** The group named at the device level, when it is a group's filter. */
  readonly group?: string;
  /** The same filter for one device (its id at the device level), as its own session takes it. */
  internal(id: string): string;
}

/**
 * The devices a south filter (split into levels) covers, in O(1) for a filter naming a device
 * or a group: `foxtrackr/#`, `foxtrackr/+/V3.0/bat` → all; `foxtrackr/777/#` → device 777;
 * `foxtrackr/my_group/V3.0/bat` → the group's devices. Undefined when it covers none.
 */
export function expandFilter(
  layout: FleetLayout,
  fleet: Fleet,
  levels: readonly string[],
): Cover | undefined {
  const { level: d, prefix, deviceVar } = layout;
  const head = prefix.length > 0 ? `${prefix.join('/')}/` : '';
  // `#` is a filter's last level (MQTT-4.7.1-2): `#/x` or `foxtrackr/#/x` covers nothing.
  const last = levels.length - 1;
  for (let i = 0; i < d; i++) {
    const f = levels[i];
    if (f === '#') return i === last ? { devices: 'all', internal: (id) => `${head}${id}/#` } : undefined;
    if (f === undefined || (f !== '+' && f !== prefix[i])) return undefined;
  }
  const at = levels[d];
  if (at === undefined) return undefined;
  if (at === '#') return d === last ? { devices: 'all', internal: (id) => `${head}${id}/#` } : undefined;
  const tail = levels.length > d + 1 ? `/${levels.slice(d + 1).join('/')}` : '';
  const internal = (id: string) => `${head}${id}${tail}`;
  if (at === '+') return { devices: 'all', internal };
  const one = deviceBy(fleet, deviceVar, at);
  if (one !== undefined) return { devices: [one], internal };
  const members = groupsOf(fleet, deviceVar).byName.get(at);
  if (members && members.length > 0) return { devices: members, group: at, internal };
  return undefined;
}

/** Identity variables the route's topics carry, on each side. */
function topicVars(plan: Plan, side: 'south' | 'north'): Set<string> {
  return new Set(plan[side].rules.flatMap((r) => r.identityCaps));
}

/**
 * Mistakes in records with devices, for this route: a dialect that cannot serve them, a
 * device without the id its topics need, a value that could widen a topic, an id two devices
 * share, a group naming an unknown device or a device's name. Values never appear in messages.
 */
export function fleetErrors(
  plan: Plan,
  records: ReadonlyArray<{ south: Readonly<Vars>; fleet?: FleetSpec | undefined }>,
  file: string,
): string[] {
  const errors: string[] = [];
  const layout = fleetLayout(plan);
  const inTopics = new Set([...topicVars(plan, 'south'), ...topicVars(plan, 'north')]);
  const northTopic = topicVars(plan, 'north');
  records.forEach((r, n) => {
    const spec = r.fleet;
    if (!spec) return;
    const at = `${file}: record ${n + 1}`;
    if (!layout) {
      errors.push(
        `${at}: lists devices, but the ${plan.south.name} dialect's subscription filters do not name a device after literal levels (records with devices need topics such as foxtrackr/{deviceId}/...)`,
      );
      return;
    }
    const dv = layout.deviceVar;
    if (r.south[dv] !== undefined)
      errors.push(
        `${at}: south.${dv} and devices together (a record with devices names them in its devices list)`,
      );
    const seen = new Map<string, Map<string, number>>();
    spec.devices.forEach((d, i) => {
      if (d[dv] === undefined)
        errors.push(`${at}: device ${i + 1} has no ${dv} (the ${plan.south.name} topics name devices by it)`);
      for (const k in d) {
        const v = d[k] as string;
        if (inTopics.has(k) && !safeLevel(v))
          errors.push(
            `${at}: device ${i + 1}: ${k} is empty or holds '/', '+', '#' or NUL (it is a topic level)`,
          );
        if (k !== dv && !northTopic.has(k)) continue;
        let m = seen.get(k);
        if (!m) {
          m = new Map();
          seen.set(k, m);
        }
        const first = m.get(v);
        if (first !== undefined)
          errors.push(
            `${at}: device ${i + 1}: ${k} repeats device ${first + 1}'s (each device needs its own)`,
          );
        else m.set(v, i);
      }
    });
    const ids = seen.get(dv) ?? new Map<string, number>();
    for (const [name, members] of Object.entries(spec.groups ?? {})) {
      if (!safeLevel(name))
        errors.push(`${at}: a group name is empty or holds '/', '+', '#' or NUL (it is a topic level)`);
      else if (ids.has(name))
        errors.push(
          `${at}: group '${name}' has the ${dv} of a device (a topic level names one or the other)`,
        );
      members.forEach((m, j) => {
        if (!ids.has(m))
          errors.push(`${at}: group '${name}', member ${j + 1} is no ${dv} of the record's devices`);
      });
    }
  });
  return errors;
}
