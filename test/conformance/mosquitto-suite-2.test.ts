/** Conformance shard 2: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(2);
