/** Conformance shard 7: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(7);
