/**
 * Child process for the Redis store race: argv redisUrl workerName count. Prints the ids won.
 */
import { RedisStore } from '../../src/store/redis.js';

const [url, name, countText] = process.argv.slice(2);
if (!url || !name || !countText) throw new Error('usage: redis-worker.ts <url> <name> <count>');
const store = new RedisStore({ url });
const won: string[] = [];
await Promise.all(
  Array.from({ length: Number(countText) }, (_, i) =>
    store.create('shared', `id-${i}`, { owner: name }).then((ok) => {
      if (ok) won.push(`id-${i}`);
    }),
  ),
);
await store.close();
process.stdout.write(`${JSON.stringify({ name, won })}\n`);
