/**
 * Loads a whole mappings folder from texts (the caller reads the files): dialects, routes
 * and pair files, validated together so that every error of every file is reported at once.
 */
import type { SouthGatewaySpec } from '../core/contract.js';
import { clearbladeGateway } from '../dialects/clearblade-gateway.js';
import { compileDialect } from './compile.js';
import type { CompiledDialect } from './dialect.js';
import type { Kind } from './model.js';
import { type PairSettings, Plan } from './plan.js';
import { validate } from './schema.js';
import { parseSource, Reporter, type Source } from './source.js';

/** South dialects whose clients may be gateways: their gateway grammar (pure string work). */
export const SOUTH_GATEWAYS: ReadonlyMap<string, SouthGatewaySpec> = new Map([
  ['clearblade', clearbladeGateway],
]);

export interface MappingFile {
  /** Path shown in messages, e.g. mappings/dialects/connector.yaml. */
  path: string;
  /** 'dialects' | 'routes' | 'pairs' (the sub-folder). */
  folder: string;
  text: string;
}

export interface RouteSpec {
  name: string;
  file: string;
  south: string;
  north: string;
  url?: string;
  connection: 'direct' | 'gateway';
  settings: PairSettings;
  vars: Record<string, string>;
  identity: {
    file?: string;
    key?: string[];
    store?: string;
    provision?: 'token' | 'password';
    north?: Record<string, string>;
  };
  content?: string;
  offlineSync?: boolean;
  /** `downlinks: false`: uplinks only; no north subscription and a clean north session. */
  uplinkOnly?: boolean;
  /** South clients are gateways of this grammar (`south_gateway: true`). */
  southGateway?: SouthGatewaySpec;
  plan: Plan;
}

export interface LoadedMappings {
  dialects: Map<string, CompiledDialect>;
  /** Per "south>north" pair file: its settings and the dialects with its rule overrides. */
  pairs: Map<string, { settings: PairSettings; south?: CompiledDialect; north?: CompiledDialect }>;
  routes: Map<string, RouteSpec>;
  errors: string[];
}

interface RawRoute {
  route: string;
  south: string;
  north: string;
  url?: string;
  connection?: 'direct' | 'gateway';
  prefer?: PairSettings['prefer'];
  kinds?: PairSettings['kinds'];
  vars?: Record<string, string>;
  identity?: {
    file?: string;
    key?: string | string[];
    store?: string;
    provision?: 'token' | 'password';
    north?: Record<string, string>;
  };
  content?: string;
  offline_sync?: boolean;
  downlinks?: boolean;
  south_gateway?: boolean;
}

interface RawPair extends PairSettings {
  south: string;
  north: string;
  override?: {
    south?: Record<string, Record<string, unknown>>;
    north?: Record<string, Record<string, unknown>>;
  };
}

/**
 * A dialect with some of its topic rules replaced for one pair. Errors point into the pair
 * file (at the override of the rule concerned).
 */
function overridden(
  dialectSrc: Source,
  pairSrc: Source,
  side: 'south' | 'north',
  changes: Record<string, Record<string, unknown>>,
  report: Reporter,
): CompiledDialect | undefined {
  const raw = structuredClone(dialectSrc.value) as { dialect: string; topics: Array<{ name: string }> };
  const names: string[] = [];
  let ok = true;
  for (const [rule, fields] of Object.entries(changes)) {
    const i = raw.topics.findIndex((t) => t.name === rule);
    if (i < 0) {
      report.error(
        pairSrc,
        ['override', side, rule],
        `no topic rule named '${rule}' in dialect '${raw.dialect}'`,
        undefined,
        true,
      );
      ok = false;
      continue;
    }
    raw.topics[i] = { ...raw.topics[i], ...fields } as { name: string };
    names[i] = rule;
  }
  if (!ok) return undefined;
  const src: Source = {
    file: pairSrc.file,
    value: raw,
    pos: (path, key) => {
      const rule = path[0] === 'topics' && typeof path[1] === 'number' ? names[path[1]] : undefined;
      return rule
        ? pairSrc.pos(['override', side, rule, ...path.slice(2)], key)
        : pairSrc.pos(['override', side], key);
    },
  };
  return compileDialect(src, report);
}

export function loadMappings(files: readonly MappingFile[]): LoadedMappings {
  const report = new Reporter();
  const dialects = new Map<string, CompiledDialect>();
  const dialectFile = new Map<string, Source>();
  const broken = new Set<string>();
  const routes = new Map<string, RouteSpec>();
  const pairs = new Map<string, { src: Source; pair: RawPair }>();
  const routeSrcs: Source[] = [];
  for (const f of files) {
    const src = parseSource(f.path, f.text, report);
    if (src.value === undefined) {
      if (f.folder === 'dialects') broken.add(baseName(f.path));
      continue;
    }
    if (f.folder === 'dialects') {
      const d = compileDialect(src, report);
      const named = (src.value as { dialect?: unknown }).dialect;
      const name = typeof named === 'string' ? named : baseName(f.path);
      if (dialectFile.has(name))
        report.error(src, ['dialect'], `dialect '${name}' is also defined in ${dialectFile.get(name)?.file}`);
      dialectFile.set(name, src);
      if (d) dialects.set(name, d);
      else broken.add(name);
    } else if (f.folder === 'pairs') {
      if (validate('pair', src, report)) {
        const pair = src.value as RawPair;
        pairs.set(`${pair.south}>${pair.north}`, { src, pair });
      }
    } else if (f.folder === 'routes') {
      if (validate('route', src, report)) routeSrcs.push(src);
    }
  }
  const known = (name: string) => dialects.has(name) || broken.has(name);
  const pairOut: LoadedMappings['pairs'] = new Map();
  for (const [key, { src, pair }] of pairs) {
    const entry: { settings: PairSettings; south?: CompiledDialect; north?: CompiledDialect } = {
      settings: {
        ...(pair.prefer ? { prefer: pair.prefer } : {}),
        ...(pair.kinds ? { kinds: pair.kinds } : {}),
      },
    };
    for (const side of ['south', 'north'] as const) {
      if (!known(pair[side])) {
        report.error(
          src,
          [side],
          `unknown dialect '${pair[side]}'`,
          `dialects: ${[...dialectFile.keys()].join(', ')}`,
        );
        continue;
      }
      const changes = pair.override?.[side];
      const dsrc = dialectFile.get(pair[side]);
      if (changes && dsrc && dialects.has(pair[side])) {
        const d = overridden(dsrc, src, side, changes, report);
        if (d) entry[side] = d;
      }
    }
    pairOut.set(key, entry);
  }
  for (const src of routeSrcs) {
    const r = src.value as RawRoute;
    let ok = true;
    for (const side of ['south', 'north'] as const) {
      if (!known(r[side])) {
        report.error(
          src,
          [side],
          `unknown dialect '${r[side]}'`,
          `dialects: ${[...dialectFile.keys()].join(', ')}`,
        );
        ok = false;
      }
    }
    const pairEntry = pairOut.get(`${r.south}>${r.north}`);
    const south = pairEntry?.south ?? dialects.get(r.south);
    const north = pairEntry?.north ?? dialects.get(r.north);
    if (r.connection === 'gateway' && north && !north.gateway) {
      report.error(src, ['connection'], `dialect '${r.north}' declares no gateway`, `use connection: direct`);
      ok = false;
    }
    const southGateway = r.south_gateway ? SOUTH_GATEWAYS.get(r.south) : undefined;
    if (r.south_gateway && !southGateway) {
      report.error(
        src,
        ['south_gateway'],
        `dialect '${r.south}' has no gateway grammar`,
        `south gateways: ${[...SOUTH_GATEWAYS.keys()].join(', ')}`,
      );
      ok = false;
    }
    if (r.downlinks === false && r.offline_sync) {
      report.error(
        src,
        ['downlinks'],
        'a route without downlinks has nothing to keep for offline devices',
        'remove offline_sync: true, or downlinks: false',
      );
      ok = false;
    }
    if (routes.has(r.route)) report.error(src, ['route'], `route '${r.route}' is defined twice`);
    if (!ok || !south || !north) continue;
    const keys =
      r.identity?.key === undefined ? [] : Array.isArray(r.identity.key) ? r.identity.key : [r.identity.key];
    keys.forEach((k, i) => {
      if (!south.identity.has(k)) {
        const at = Array.isArray(r.identity?.key) ? ['identity', 'key', i] : ['identity', 'key'];
        report.error(
          src,
          at,
          `identity key '${k}' is not an identity variable of dialect '${r.south}'`,
          `one of: ${[...south.identity].join(', ')}`,
        );
        ok = false;
      }
    });
    for (const v of Object.keys(r.vars ?? {})) {
      if (!south.identity.has(v) && !north.identity.has(v)) {
        report.error(
          src,
          ['vars', v],
          `variable '${v}' is used by neither '${r.south}' nor '${r.north}'`,
          'declare it under identity: in a dialect, or remove it',
          true,
        );
        ok = false;
      }
    }
    // A kind a route maps onto must be one the other side carries that way, or every such
    // message is dropped (no_north_rule / no_south_rule) with nothing said at load.
    for (const dir of ['up', 'down'] as const) {
      const target = dir === 'up' ? north : south;
      const carried = new Set(target.rules.map((x) => (dir === 'up' ? x.up : x.down)));
      for (const [from, to] of Object.entries(r.kinds?.[dir] ?? {})) {
        if (carried.has(to as Kind)) continue;
        report.error(
          src,
          ['kinds', dir, from],
          `'${target.name}' has no '${dir}' rule of kind '${to}': every ${from} ${dir === 'up' ? 'uplink' : 'downlink'} would be dropped`,
          `map it to a kind '${target.name}' carries ${dir}`,
        );
        ok = false;
      }
    }
    if (!ok) continue;
    const pair = pairs.get(`${r.south}>${r.north}`)?.pair;
    const settings: PairSettings = {
      prefer: { ...pair?.prefer, ...r.prefer },
      kinds: { up: { ...pair?.kinds?.up, ...r.kinds?.up }, down: { ...pair?.kinds?.down, ...r.kinds?.down } },
    };
    const key = r.identity?.key;
    routes.set(r.route, {
      name: r.route,
      file: src.file,
      south: r.south,
      north: r.north,
      ...(r.url ? { url: r.url } : {}),
      connection: r.connection ?? 'direct',
      settings,
      vars: r.vars ?? {},
      identity: {
        ...(r.identity?.file ? { file: r.identity.file } : {}),
        ...(key ? { key: Array.isArray(key) ? key : [key] } : {}),
        ...(r.identity?.store ? { store: r.identity.store } : {}),
        ...(r.identity?.provision ? { provision: r.identity.provision } : {}),
        ...(r.identity?.north ? { north: r.identity.north } : {}),
      },
      ...(r.content ? { content: r.content } : {}),
      ...(r.offline_sync ? { offlineSync: true } : {}),
      ...(r.downlinks === false ? { uplinkOnly: true } : {}),
      ...(southGateway ? { southGateway } : {}),
      plan: new Plan(south, north, settings),
    });
  }
  return { dialects, pairs: pairOut, routes, errors: report.errors };
}

/**
 * A plan for any two loaded dialects (the `translate` command needs no route file): the
 * pair file's overrides and settings apply, `settings` win over the pair's.
 */
export function planFor(
  m: LoadedMappings,
  south: string,
  north: string,
  settings: PairSettings = {},
): Plan | undefined {
  const pair = m.pairs.get(`${south}>${north}`);
  const s = pair?.south ?? m.dialects.get(south);
  const n = pair?.north ?? m.dialects.get(north);
  if (!s || !n) return undefined;
  const p = pair?.settings;
  return new Plan(s, n, {
    prefer: { ...p?.prefer, ...settings.prefer },
    kinds: {
      up: { ...p?.kinds?.up, ...settings.kinds?.up },
      down: { ...p?.kinds?.down, ...settings.kinds?.down },
    },
  });
}

function baseName(p: string): string {
  const b = p.split('/').pop() ?? p;
  return b.replace(/\.ya?ml$/, '');
}
