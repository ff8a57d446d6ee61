import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FileStore } from '../../src/store/file.js';
import { acquireLock } from '../../src/store/lock.js';

const run = promisify(execFile);
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'filestore-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('creates, reads, replaces and deletes records; create refuses an existing id', async () => {
    const path = join(tempDir(), 'sub', 'store.json');
    const store = new FileStore({ path });
    assert.equal(await store.get('connector', 'dev-1'), undefined);
    assert.equal(await store.create('connector', 'dev-1', { token: 't1' }), true);
    assert.equal(await store.create('connector', 'dev-1', { token: 't2' }), false);
    assert.deepEqual(await store.get('connector', 'dev-1'), { token: 't1' });
    await store.put('connector', 'dev-1', { token: 't3', extra: 'x' });
    assert.deepEqual(await store.get('connector', 'dev-1'), { token: 't3', extra: 'x' });
    assert.equal(await store.get('other-namespace', 'dev-1'), undefined);
    assert.equal(await store.delete('connector', 'dev-1'), true);
    assert.equal(await store.delete('connector', 'dev-1'), false);
    assert.equal(await store.get('connector', 'dev-1'), undefined);
    await store.close();
  });

  it('treats ids such as "constructor" as plain ids and refuses "__proto__"', async () => {
    const store = new FileStore({ path: join(tempDir(), 'store.json') });
    assert.equal(await store.get('ns', 'constructor'), undefined);
    assert.equal(await store.get('toString', 'x'), undefined);
    assert.equal(await store.create('ns', 'constructor', { v: '1' }), true);
    assert.deepEqual(await store.get('ns', 'constructor'), { v: '1' });
    await assert.rejects(store.put('ns', '__proto__', { v: '1' }), /may not be "__proto__"/);
    await store.close();
  });

  it('a burst of concurrent changes in one process is applied in order, each create decided once', async () => {
    const store = new FileStore({ path: join(tempDir(), 'store.json') });
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => store.create('ns', `id-${i % 100}`, { n: String(i) })),
    );
    assert.equal(results.filter((r) => r).length, 100);
    results.slice(0, 100).forEach((r) => {
      assert.equal(r, true);
    });
    assert.deepEqual(await store.get('ns', 'id-42'), { n: '42' });
    await Promise.all([
      store.put('ns', 'k', { v: '1' }),
      store.delete('ns', 'k'),
      store.put('ns', 'k', { v: '3' }),
    ]);
    assert.deepEqual(await store.get('ns', 'k'), { v: '3' });
    await store.close();
  });

  it('survives a restart: a new instance reads what the old one wrote', async () => {
    const path = join(tempDir(), 'store.json');
    const a = new FileStore({ path });
    await a.create('ns', 'x', { v: '1' });
    await a.close();
    const b = new FileStore({ path });
    assert.deepEqual(await b.get('ns', 'x'), { v: '1' });
    assert.equal(await b.create('ns', 'x', { v: '2' }), false);
    await b.close();
  });

  it('two instances sharing the file see each other writes', async () => {
    const path = join(tempDir(), 'store.json');
    const a = new FileStore({ path });
    const b = new FileStore({ path });
    await a.put('ns', 'k', { v: 'from-a' });
    assert.deepEqual(await b.get('ns', 'k'), { v: 'from-a' });
    await b.put('ns', 'k', { v: 'from-b' });
    assert.deepEqual(await a.get('ns', 'k'), { v: 'from-b' });
    assert.equal(await a.create('ns', 'k', { v: 'again' }), false);
    await a.close();
    await b.close();
  });

  it('returns copies: mutating a returned record does not change the store', async () => {
    const store = new FileStore({ path: join(tempDir(), 'store.json') });
    await store.put('ns', 'k', { v: '1' });
    const rec = await store.get('ns', 'k');
    assert.ok(rec);
    rec.v = 'changed';
    assert.deepEqual(await store.get('ns', 'k'), { v: '1' });
    await store.close();
  });

  it('four processes racing on one file: every write kept, each shared id created exactly once', async () => {
    const dir = tempDir();
    const path = join(dir, 'store.json');
    const worker = fileURLToPath(new URL('./file-worker.ts', import.meta.url));
    const count = 25;
    const names = ['p1', 'p2', 'p3', 'p4'];
    const outs = await Promise.all(
      names.map((n) =>
        run(process.execPath, ['--import', 'tsx', worker, path, n, String(count)], { timeout: 90_000 }),
      ),
    );
    const results = outs.map((o) => JSON.parse(o.stdout.trim()) as { name: string; won: string[] });
    const allWon = results.flatMap((r) => r.won).sort();
    const expected = Array.from({ length: count }, (_, i) => `id-${i}`).sort();
    assert.deepEqual(allWon, expected, 'each shared id won by exactly one process');
    const store = new FileStore({ path });
    for (const r of results) {
      for (const id of r.won) assert.deepEqual(await store.get('shared', id), { owner: r.name });
    }
    for (const n of names)
      assert.equal((await store.list('own')).filter((id) => id.startsWith(`${n}-`)).length, count);
    await store.close();
    const leftovers = readdirSync(dir).filter((f) => f !== 'store.json');
    assert.deepEqual(leftovers, [], 'no temp or lock files left behind');
  });

  it('takes over a lock left by a dead process', async () => {
    const path = join(tempDir(), 'store.json');
    // A pid that is not running: a finished child's.
    const { stdout } = await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const { hostname } = await import('node:os');
    writeFileSync(`${path}.lock`, `${stdout}\n${hostname()}\nabcdef\n`);
    const store = new FileStore({ path, timeoutMs: 2000 });
    await store.put('ns', 'k', { v: '1' });
    assert.deepEqual(await store.get('ns', 'k'), { v: '1' });
    assert.equal(existsSync(`${path}.lock`), false);
    await store.close();
  });

  it('takes over a lock older than staleMs even when its owner looks alive', async () => {
    const path = join(tempDir(), 'store.json');
    const { hostname } = await import('node:os');
    const { utimesSync } = await import('node:fs');
    writeFileSync(`${path}.lock`, `${process.pid}\n${hostname()}\nfeedbeef\n`);
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${path}.lock`, old, old);
    const store = new FileStore({ path, timeoutMs: 2000, staleMs: 30_000 });
    await store.put('ns', 'k', { v: '1' });
    assert.deepEqual(await store.get('ns', 'k'), { v: '1' });
    await store.close();
  });

  it('times out with a clear error on a lock held by a live process', async () => {
    const path = join(tempDir(), 'store.json');
    const release = await acquireLock(`${path}.lock`);
    try {
      const store = new FileStore({ path, timeoutMs: 200 });
      await assert.rejects(store.put('ns', 'k', { v: '1' }), /timed out after 200 ms waiting for the lock/);
      await store.close();
    } finally {
      await release();
    }
  });

  it('reports a corrupt file clearly without quoting its content', async () => {
    const path = join(tempDir(), 'store.json');
    writeFileSync(path, '{"namespaces": {"ns": {"k": {"token": "s3cr3t-token"}}}');
    const store = new FileStore({ path });
    await assert.rejects(store.get('ns', 'k'), (err: Error) => {
      assert.match(err.message, /is not valid JSON/);
      assert.doesNotMatch(err.message, /s3cr3t/);
      return true;
    });
    await store.close();
  });

  it('refuses non-string record values and writes the file with mode 600', async () => {
    const path = join(tempDir(), 'store.json');
    const store = new FileStore({ path });
    await assert.rejects(store.put('ns', 'k', { v: 1 as unknown as string }), /must be a string/);
    await store.put('ns', 'k', { v: '1' });
    const { statSync } = await import('node:fs');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), {
      version: 1,
      namespaces: { ns: { k: { v: '1' } } },
    });
    await store.close();
  });
});
