/** Conformance shard 4: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(4);
