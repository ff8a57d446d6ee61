import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { configWith } from '../../src/config/schema.js';
import { createStore, FileStore, RedisStore } from '../../src/store/index.js';
import { type RedisServer, startRedis } from '../emulators/redis.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);

describe('RedisStore on a real redis-server', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('creates, reads, replaces and deletes; create refuses an existing id', async () => {
    const store = new RedisStore({ url: redis.url, prefix: 't1:' });
    assert.equal(await store.get('connector', 'dev-1'), undefined);
    assert.equal(await store.create('connector', 'dev-1', { token: 'a' }), true);
    assert.equal(await store.create('connector', 'dev-1', { token: 'b' }), false);
    assert.deepEqual(await store.get('connector', 'dev-1'), { token: 'a' });
    await store.put('connector', 'dev-1', { token: 'c' });
    assert.deepEqual(await store.get('connector', 'dev-1'), { token: 'c' });
    assert.equal(await store.delete('connector', 'dev-1'), true);
    assert.equal(await store.delete('connector', 'dev-1'), false);
    assert.equal(await store.get('connector', 'dev-1'), undefined);
    assert.equal(await store.create('ns', 'empty', {}), true);
    assert.deepEqual(await store.get('ns', 'empty'), {});
    await store.close();
  });

  it('keeps namespace and id apart even when they contain ":"', async () => {
    const store = new RedisStore({ url: redis.url, prefix: 't2:' });
    await store.put('a:b', 'c', { v: '1' });
    assert.equal(await store.get('a', 'b:c'), undefined);
    assert.equal(await store.create('a', 'b:c', { v: '2' }), true);
    assert.deepEqual(await store.get('a:b', 'c'), { v: '1' });
    await store.close();
  });

  it('two replicas see each other immediately', async () => {
    const a = new RedisStore({ url: redis.url, prefix: 't3:' });
    const b = new RedisStore({ url: redis.url, prefix: 't3:' });
    await a.put('ns', 'k', { v: 'from-a' });
    assert.deepEqual(await b.get('ns', 'k'), { v: 'from-a' });
    assert.equal(await b.create('ns', 'k', { v: 'b' }), false);
    await a.close();
    await b.close();
  });

  it('three processes racing: each id created exactly once', async () => {
    const worker = fileURLToPath(new URL('./redis-worker.ts', import.meta.url));
    const count = 50;
    const outs = await Promise.all(
      ['p1', 'p2', 'p3'].map((n) =>
        run(process.execPath, ['--import', 'tsx', worker, redis.url, n, String(count)], { timeout: 60_000 }),
      ),
    );
    const won = outs.flatMap((o) => (JSON.parse(o.stdout.trim()) as { won: string[] }).won).sort();
    assert.deepEqual(won, Array.from({ length: count }, (_, i) => `id-${i}`).sort());
  });

  it('createStore builds the store the configuration names', async () => {
    const redisStore = createStore(configWith({ store: { kind: 'redis', redisUrl: redis.url } }).store);
    assert.ok(redisStore instanceof RedisStore);
    await redisStore.put('ns', 'via-config', { v: '1' });
    assert.deepEqual(await redisStore.get('ns', 'via-config'), { v: '1' });
    await redisStore.close();
    const dir = mkdtempSync(join(tmpdir(), 'store-cfg-'));
    try {
      const fileStore = createStore(configWith({ store: { kind: 'file', file: join(dir, 's.json') } }).store);
      assert.ok(fileStore instanceof FileStore);
      await fileStore.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('RedisStore without a server', () => {
  it('fails with a clear error that does not reveal the URL password', async () => {
    const port = await freePort();
    const errors: Error[] = [];
    const store = new RedisStore({
      url: `redis://user:sup3r-s3cret@127.0.0.1:${port}/0`,
      commandTimeoutMs: 300,
      onError: (e) => errors.push(e),
    });
    await assert.rejects(store.get('ns', 'k'), (err: Error) => {
      assert.match(err.message, /^redis store get failed: /);
      assert.doesNotMatch(err.message, /sup3r/);
      return true;
    });
    assert.ok(errors.length > 0, 'connection errors are reported to onError');
    for (const e of errors) assert.doesNotMatch(e.message, /sup3r/);
    await store.close();
  });

  it('refuses a URL that is not redis://', () => {
    assert.throws(() => new RedisStore({ url: 'http://127.0.0.1:1' }), /must start with redis:\/\//);
    assert.throws(() => new RedisStore({ url: 'not a url' }), /not a valid URL/);
  });
});

describe('RedisStore on a server that wants a password', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
    const admin = new RedisStore({ url: redis.url });
    // Through the store's own client: CONFIG SET is a plain command.
    await (admin as unknown as { client: { config(...a: string[]): Promise<unknown> } }).client.config(
      'SET',
      'requirepass',
      'r1ght-pw',
    );
    await admin.close();
  });
  after(async () => {
    await redis?.stop();
  });

  const attempt = async (url: string) => {
    const errors: Error[] = [];
    const store = new RedisStore({ url, commandTimeoutMs: 1000, onError: (e) => errors.push(e) });
    let failure: Error | undefined;
    await store.get('ns', 'k').catch((e: Error) => {
      failure = e;
    });
    await store.close();
    return { errors, failure };
  };

  it('a wrong password is said to be refused (WRONGPASS), not "connection error", never shown', async () => {
    const { errors, failure } = await attempt(`redis://:wr0ng-pw@127.0.0.1:${redis.port}/0`);
    assert.equal(errors.length, 1, errors.map((e) => e.message).join('\n'));
    assert.match(errors[0]!.message, /: WRONGPASS, the user or password of store\.redisUrl is refused$/);
    assert.match(failure?.message ?? '', /^redis store get failed: WRONGPASS/);
    for (const m of [errors[0]!.message, failure?.message ?? '']) assert.doesNotMatch(m, /wr0ng|r1ght/);
  });

  it('no password at all is said to be needed (NOAUTH)', async () => {
    const { errors } = await attempt(`redis://127.0.0.1:${redis.port}/0`);
    assert.match(errors[0]?.message ?? '', /: NOAUTH, the server needs a password/);
  });
});
