/** Conformance shard 10: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(10);
