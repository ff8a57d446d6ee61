import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { schemaLeaves } from '../../src/config/print.js';
import { configBlock, configTable, END, extractBlock, START, withBlock } from '../../src/config/table.js';

test('every schema option has a doc string, an environment variable and a flag, all unique', () => {
  const leaves = schemaLeaves();
  assert.ok(leaves.length >= 30);
  const envs = new Set<string>();
  const args = new Set<string>();
  for (const { path, leaf } of leaves) {
    assert.ok(leaf.doc.length > 5, `${path} has no doc`);
    assert.match(leaf.env ?? '', /^MQTT_PROXY_[A-Z0-9_]+$/, `${path} env`);
    assert.match(leaf.arg ?? '', /^[a-z0-9-]+$/, `${path} flag`);
    assert.ok(!envs.has(leaf.env as string), `${path}: duplicate env`);
    assert.ok(!args.has(leaf.arg as string), `${path}: duplicate flag`);
    envs.add(leaf.env as string);
    args.add(leaf.arg as string);
  }
});

test('the table has one row per option with flag, env var and default', () => {
  const rows = configTable().split('\n');
  assert.equal(rows.length, schemaLeaves().length + 2);
  assert.ok(
    rows.includes(
      '| `listen.tcpPort` | `--tcp-port` | `MQTT_PROXY_TCP_PORT` | `1883` | Plain MQTT (TCP) port; -1 disables it. |',
    ),
  );
  assert.ok(rows.some((r) => r.startsWith('| `store.redisUrl` |') && r.includes('**Secret**')));
  assert.ok(rows.some((r) => r.startsWith('| `log.level` |') && r.includes('`debug`')));
});

test('withBlock appends the block once and replaces it in place afterwards', () => {
  const first = withBlock('# Title\n\nSome text.\n');
  assert.equal(extractBlock(first), configBlock());
  assert.ok(first.startsWith('# Title\n\nSome text.\n\n## Configuration\n\n'));
  const edited = first.replace('| `listen.tcpPort` |', '| `listen.tcpPortOld` |') + '\n## After\n';
  const again = withBlock(edited);
  assert.equal(again.split(START).length, 2, 'one block only');
  assert.equal(extractBlock(again), configBlock());
  assert.ok(again.endsWith(`${END}\n\n## After\n`), 'text after the block is kept');
  assert.equal(withBlock(again), again, 'idempotent');
});

test('README.md configuration table matches the schema (regenerate: node --import tsx src/config/table.ts --write)', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = extractBlock(readme);
  assert.ok(block !== undefined, 'README.md has no config-table block');
  assert.equal(block, configBlock());
});

test('every schema option is read by code outside src/config (no option that does nothing)', async () => {
  const { readdirSync } = await import('node:fs');
  const { join } = await import('node:path');
  const src = new URL('../../src/', import.meta.url).pathname;
  let code = '';
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (p !== join(src, 'config')) walk(p);
      } else if (e.name.endsWith('.ts')) code += readFileSync(p, 'utf8');
    }
  };
  walk(src);
  for (const { path } of schemaLeaves()) {
    const name = path.split('.').pop() as string;
    assert.match(code, new RegExp(`\\b${name}\\b`), `${path} is read by no code`);
  }
});
