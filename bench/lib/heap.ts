/**
 * Heap snapshot summary: live JS heap by constructor (self size and count), and the
 * difference between two snapshots divided by the number of devices connected between
 * them: what one idle session keeps alive.
 */
import { readFileSync } from 'node:fs';
import { fmt, table } from './stats.js';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

export type HeapCensus = Map<string, { size: number; count: number }>;

export function census(file: string): HeapCensus {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out: HeapCensus = new Map();
  for (let i = 0; i < s.nodes.length; i += nf) {
    const type = types[s.nodes[i + iType] as number] ?? '?';
    const name = s.strings[s.nodes[i + iName] as number] ?? '?';
    const key = type === 'object' || type === 'closure' ? `${type}:${name}` : `(${type})`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += s.nodes[i + iSize] as number;
    e.count += 1;
    out.set(key, e);
  }
  return out;
}

export function diffPerDevice(before: HeapCensus, after: HeapCensus, devices: number, top = 25): string {
  const rows: Array<[string, number, number]> = [];
  let total = 0;
  for (const [k, a] of after) {
    const b = before.get(k) ?? { size: 0, count: 0 };
    const size = (a.size - b.size) / devices;
    const count = (a.count - b.count) / devices;
    total += size;
    rows.push([k, size, count]);
  }
  rows.sort((x, y) => y[1] - x[1]);
  return table([
    ['kept alive per idle device (heap snapshot diff)', 'bytes', 'objects'],
    ...rows.slice(0, top).map(([k, size, count]) => [k, fmt(size), fmt(count, 1)]),
    ['total', fmt(total), ''],
  ]);
}

interface FullSnapshot extends Snapshot {
  snapshot: {
    meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] };
  };
  edges: number[];
}

/** Internal arrays ((array) nodes) grouped by the object holding them and the property name. */
export function arrayOwners(file: string): Map<string, { size: number; count: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as FullSnapshot;
  const m = s.snapshot.meta;
  const nf = m.node_fields.length;
  const ef = m.edge_fields.length;
  const iType = m.node_fields.indexOf('type');
  const iName = m.node_fields.indexOf('name');
  const iSize = m.node_fields.indexOf('self_size');
  const iEdges = m.node_fields.indexOf('edge_count');
  const eType = m.edge_fields.indexOf('type');
  const eName = m.edge_fields.indexOf('name_or_index');
  const eTo = m.edge_fields.indexOf('to_node');
  const nodeTypes = m.node_types[0];
  const edgeTypes = m.edge_types[0];
  const owner = new Map<number, string>();
  let e = 0;
  for (let n = 0; n < s.nodes.length; n += nf) {
    const count = s.nodes[n + iEdges] as number;
    const ownerName = `${nodeTypes[s.nodes[n + iType] as number]}:${s.strings[s.nodes[n + iName] as number]}`;
    for (let k = 0; k < count; k++, e += ef) {
      const to = s.edges[e + eTo] as number;
      const et = edgeTypes[s.edges[e + eType] as number];
      if (et === 'weak' || owner.has(to)) continue;
      if (nodeTypes[s.nodes[to + iType] as number] !== 'array') continue;
      const nameIdx = s.edges[e + eName] as number;
      const prop = et === 'element' || et === 'hidden' ? `[${et}]` : (s.strings[nameIdx] ?? '?');
      owner.set(to, `${ownerName}.${prop}`);
    }
  }
  const out = new Map<string, { size: number; count: number }>();
  for (const [to, key] of owner) {
    const x = out.get(key) ?? { size: 0, count: 0 };
    x.size += s.nodes[to + iSize] as number;
    x.count += 1;
    out.set(key, x);
  }
  return out;
}
