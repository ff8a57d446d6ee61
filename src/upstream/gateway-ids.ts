/**
 * The packet ids of one gateway link (src/upstream/gateway.ts): one space for every device on
 * the shared connection, kept across reconnects so unacknowledged uplinks are resent under
 * their ids.
 *
 * An id is released only once nothing can answer it any more. A device that leaves (or is
 * replaced) while one of its uplinks is unanswered north frees that id in its relay, but the
 * platform's PUBACK for it may still come: were the id given to another device's uplink
 * meanwhile, that PUBACK would acknowledge a message the platform does not have. Such an id
 * stays allocated (an orphan) until its answer comes or the connection is gone.
 */
import { IdAllocator, type IdSpace } from '../codec/packet-ids.js';
import type { Pending } from './gateway-member.js';

export class LinkIds {
  /** Every id in use on the link: uplinks, attaches and detaches, subscriptions. */
  readonly all = new IdAllocator();
  /** North packet id → the member whose uplink it is, and the packet for a resend. */
  readonly pending = new Map<number, Pending>();
  /** Ids whose north message is unanswered while nobody waits for the answer any more. */
  private readonly orphans = new Set<number>();
  /**
   * What the devices' relays allocate from and free to: an id whose uplink is still
   * unanswered north (in `pending`, or an orphan) is not released by them.
   */
  readonly forMembers: IdSpace = {
    alloc: (preferred) => this.all.alloc(preferred),
    free: (id) => {
      if (!this.pending.has(id) && !this.orphans.has(id)) this.all.free(id);
    },
  };

  /** Uplinks sent and unanswered, including those nobody waits for: the link's window. */
  get inFlight(): number {
    return this.pending.size + this.orphans.size;
  }

  /** The member left: its unanswered uplinks become orphans (not resent, ids kept). */
  orphanUplinks(member: Pending['member']): void {
    for (const [id, p] of this.pending) {
      if (p.member !== member) continue;
      this.pending.delete(id);
      this.orphans.add(id);
    }
  }

  /** A control message nobody waits for any more (its PUBACK was late): its id is kept. */
  orphan(id: number): void {
    this.orphans.add(id);
  }

  /** An acknowledgement for an orphan: its id is free again. False when it is not one. */
  settleOrphan(id: number): boolean {
    if (!this.orphans.delete(id)) return false;
    this.all.free(id);
    return true;
  }

  /** The connection is gone: nothing will answer the orphans. */
  dropOrphans(): void {
    for (const id of this.orphans) this.all.free(id);
    this.orphans.clear();
  }
}
