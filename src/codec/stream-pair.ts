/** In-memory byte streams for the proxy's inner clients (native WebSocket, gateway devices). */
import { Duplex } from 'node:stream';

/**
 * Two connected in-memory byte streams. A write is complete once the other side's reader has
 * room for it: while that reader is paused and full, the writer's callback waits, so its
 * `write()` returns false past its high-water mark and 'drain' follows when the reader reads
 * again. Without that, a paused side would queue whatever the other wrote, without bound.
 */
export function streamPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  /** The write callback of the side writing into sides[i], held while sides[i] is full. */
  const held: Array<(() => void) | undefined> = [undefined, undefined];
  const make = (self: 0 | 1) => {
    const other = (1 - self) as 0 | 1;
    return new Duplex({
      read() {
        const cb = held[self];
        held[self] = undefined;
        cb?.();
      },
      write(chunk: Buffer, _enc, cb) {
        if (sides[other]!.push(chunk)) cb();
        else held[other] = cb;
      },
      final(cb) {
        sides[other]!.push(null);
        cb();
      },
      destroy(err, cb) {
        const p = sides[other]!;
        if (!p.destroyed) p.destroy();
        cb(err);
      },
    });
  };
  sides.push(make(0), make(1));
  return [sides[0]!, sides[1]!];
}
