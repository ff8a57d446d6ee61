/**
 * Effective configuration for `config --print`: defaults < `--config FILE` < environment
 * < flags (convict's order), with every secret masked. Secrets are the schema fields marked
 * `sensitive: true`, plus the password part of any URL (`mqtt://user:pass@host`).
 * These helpers do not depend on the process: argv, env and file reading are passed in.
 */
import { readFileSync } from 'node:fs';
import convict from 'convict';
import { parse as yamlParse, stringify as yamlStringify } from 'yaml';
import { type ProxyConfig, schema } from './schema.js';

export const MASK = '[redacted]';

/** A schema leaf: what the table generator and the masker read. */
export interface SchemaLeaf {
  doc: string;
  default: unknown;
  env?: string;
  arg?: string;
  sensitive?: boolean;
  format?: unknown;
}

/** Every leaf of a convict schema with its dotted path, in declaration order. */
export function schemaLeaves(node: object = schema, prefix = ''): Array<{ path: string; leaf: SchemaLeaf }> {
  const out: Array<{ path: string; leaf: SchemaLeaf }> = [];
  for (const [k, v] of Object.entries(node)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && 'doc' in v && 'default' in v) {
      out.push({ path, leaf: v as SchemaLeaf });
    } else if (v !== null && typeof v === 'object') {
      out.push(...schemaLeaves(v, path));
    }
  }
  return out;
}

/**
 * The options as `--help` lists them, from the schema (the image holds no README): flag,
 * environment variable and default on one line, the description on the next.
 */
export function optionsHelp(node: object = schema): string {
  const lines: string[] = [];
  for (const { path, leaf } of schemaLeaves(node)) {
    const def = leaf.default === '' ? 'empty' : JSON.stringify(leaf.default);
    const choices = Array.isArray(leaf.format) ? ` One of: ${leaf.format.join(', ')}.` : '';
    lines.push(`  --${leaf.arg}  ${leaf.env}  (${path}, default ${def})`, `      ${leaf.doc}${choices}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Dotted paths of the fields marked `sensitive: true`. */
export function sensitivePaths(node: object = schema): string[] {
  return schemaLeaves(node)
    .filter((e) => e.leaf.sensitive === true)
    .map((e) => e.path);
}

/**
 * Replace every `scheme://user:password@` in a text by `scheme://user:[redacted]@`. The
 * password runs to the last `@` before the next white space: a password may hold `@`, quotes
 * or anything else a URL can carry (masking a host too is the safe side).
 */
export function maskUrlPassword(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^/@:\s"']*):(\S*)@/gi, (_m, scheme, user) => {
    return `${scheme}${user}:${MASK}@`;
  });
}

/**
 * A deep copy of `config` with sensitive fields masked: a non-empty secret becomes
 * `[redacted]`, an empty one stays empty (so an operator sees it is unset).
 */
export function maskConfig<T extends object>(config: T, node: object = schema): T {
  const copy = structuredClone(config) as Record<string, unknown>;
  for (const path of sensitivePaths(node)) {
    const parts = path.split('.');
    const last = parts.pop() as string;
    let parent: Record<string, unknown> | undefined = copy;
    for (const p of parts) {
      const next: unknown = parent?.[p];
      parent = next !== null && typeof next === 'object' ? (next as Record<string, unknown>) : undefined;
    }
    if (parent && last in parent) {
      const v = parent[last];
      parent[last] = v === '' || v === undefined || v === null ? v : MASK;
    }
  }
  maskUrls(copy);
  return copy as T;
}

function maskUrls(obj: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'string') obj[k] = maskUrlPassword(v);
    else if (v !== null && typeof v === 'object') maskUrls(v as Record<string, unknown>);
  }
}

export interface ResolveOptions {
  /** Command-line flags (schema `arg` names, e.g. `--tcp-port 1884`). */
  args?: string[];
  env?: Record<string, string | undefined>;
  /** A YAML or JSON configuration file shaped like the schema. */
  file?: string;
}

/** Thrown for a configuration that cannot be read or does not validate; the message is secret-free. */
export class ConfigError extends Error {
  readonly code = 'MDP_ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The effective configuration: defaults < file < env < flags, validated strictly. */
export function resolveConfig(opts: ResolveOptions = {}): ProxyConfig {
  const env = opts.env ?? {};
  // biome-ignore lint/suspicious/noExplicitAny: convict's schema typing cannot express custom format functions
  const c = convict<ProxyConfig>(schema as any, { args: opts.args ?? [], env: env as NodeJS.ProcessEnv });
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `cannot read configuration file ${opts.file}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
    let parsed: unknown;
    try {
      parsed = yamlParse(text, { prettyErrors: false });
    } catch (err) {
      // The first line only: the parser's longer messages quote the file's lines, secrets too;
      // and of it the text before any ': ' (a few messages end with the offending source text).
      const first = ((err as Error).message.split('\n')[0] ?? 'syntax error').split(': ')[0];
      const at = yamlErrorPosition(text, err);
      throw new ConfigError(
        `configuration file ${opts.file} is not valid YAML/JSON${at ? ` at line ${at.line}, column ${at.col}` : ''}: ${maskUrlPassword(first ?? 'syntax error')}`,
      );
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(
        `configuration file ${opts.file} must hold a mapping of sections (north, listen, ...)`,
      );
    }
    // load() overlays the file, then applies env and flags again: flags and env still win.
    // biome-ignore lint/suspicious/noExplicitAny: convict.load takes a partial tree
    c.load((parsed ?? {}) as any);
  }
  try {
    c.validate({ allowed: 'strict' });
  } catch (err) {
    // convict leaves sensitive values out of its messages; URLs may still carry a password,
    // and one that does not parse (a space, a quote) escapes the mask: their values are not quoted.
    const lines = (err as Error).message
      .split('\n')
      .map((l) => (/^[\w.]*url:/i.test(l) ? l.replace(/: value was .*$/s, '') : l));
    throw new ConfigError(`invalid configuration:\n${maskUrlPassword(lines.join('\n'))}`);
  }
  const config = c.getProperties();
  const missing = missingTlsPart(config);
  if (missing) throw new ConfigError(`invalid configuration:\n${missing}`);
  return config;
}

/**
 * A certificate without its key (or a key without its certificate) would start with no TLS at
 * all for the listeners, or a north connection without its client certificate: say so instead.
 */
function missingTlsPart(config: ProxyConfig): string | undefined {
  const { tlsCert, tlsKey, tlsCa } = config.listen;
  if (tlsCert && !tlsKey)
    return 'listen.tlsKey: must be set with listen.tlsCert (the TLS and WSS listeners need both)';
  if (tlsKey && !tlsCert)
    return 'listen.tlsCert: must be set with listen.tlsKey (the TLS and WSS listeners need both)';
  if (tlsCa && !tlsCert)
    return 'listen.tlsCa: client certificates are verified on the TLS and WSS listeners: set listen.tlsCert and listen.tlsKey too';
  const { cert, key } = config.north;
  if (cert && !key) return 'north.key: must be set with north.cert (the client certificate needs its key)';
  if (key && !cert) return 'north.cert: must be set with north.key (the client certificate needs its key)';
  return undefined;
}

/** Line and column (1-based) of a yaml parse error: its linePos, else computed from its offset. */
function yamlErrorPosition(text: string, err: unknown): { line: number; col: number } | undefined {
  const e = err as { linePos?: Array<{ line: number; col: number }>; pos?: number[] };
  const lp = e.linePos?.[0];
  if (lp && Number.isInteger(lp.line) && Number.isInteger(lp.col)) return { line: lp.line, col: lp.col };
  const offset = e.pos?.[0];
  if (!Number.isInteger(offset)) return undefined;
  const before = text.slice(0, Math.min(offset as number, text.length));
  const nl = before.lastIndexOf('\n');
  return { line: before.split('\n').length, col: before.length - nl };
}

/** The masked configuration as YAML (default) or JSON. */
export function formatConfig(config: ProxyConfig, format: 'yaml' | 'json' = 'yaml'): string {
  const masked = maskConfig(config);
  return format === 'json' ? `${JSON.stringify(masked, null, 2)}\n` : yamlStringify(masked);
}

/** The line a terminal gets once the proxy listens (the north URL's password masked). */
export function listeningBanner(
  config: ProxyConfig,
  ports: { tcp?: number; ws?: number; metrics?: number },
): string {
  const north = maskUrlPassword(config.north.url) || 'embedded broker';
  return `mqtt-dialect-proxy listening: tcp ${ports.tcp ?? '-'}, ws ${ports.ws ?? '-'}${config.listen.wsPath}, metrics ${ports.metrics ?? '-'}; north ${north}\n`;
}
