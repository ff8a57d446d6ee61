/** Packet identifiers (1..65535) of one side of a connection: the relays, the north links, the gateway window. */

export interface IdSpace {
  /** A free id; `preferred` when it is free (so a 1:1 relay keeps the sender's ids). */
  alloc(preferred?: number): number;
  free(id: number): void;
}

/** Packet identifiers 1..65535 for one side, skipping those in use. */
export class IdAllocator implements IdSpace {
  private next = 1;
  private readonly used = new Set<number>();

  alloc(preferred?: number): number {
    if (preferred !== undefined && preferred > 0 && preferred <= 65535 && !this.used.has(preferred)) {
      this.used.add(preferred);
      return preferred;
    }
    for (let i = 0; i < 65535; i++) {
      const id = this.next;
      this.next = id === 65535 ? 1 : id + 1;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
    throw new Error('MDP_ERR_NO_PACKET_ID: 65535 messages in flight on one connection');
  }

  free(id: number): void {
    this.used.delete(id);
  }

  get inUse(): number {
    return this.used.size;
  }
}
