/**
 * Provisioning and credentials store. The file store is the default; a shared store
 * (Redis) lets several replicas behave as one. Records are flat string maps, grouped in
 * namespaces (e.g. 'connector' device tokens, 'connector-north' tokens received north).
 */
export type StoreRecord = Record<string, string>;

export interface CredentialStore {
  get(namespace: string, id: string): Promise<StoreRecord | undefined>;
  /** Creates the record only when absent (atomic across processes); false when it existed. */
  create(namespace: string, id: string, record: StoreRecord): Promise<boolean>;
  /** Creates or replaces. */
  put(namespace: string, id: string, record: StoreRecord): Promise<void>;
  delete(namespace: string, id: string): Promise<boolean>;
  close(): Promise<void>;
}
