/** Conformance shard 3: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(3);
