/**
 * The source databases capture reads, from the configuration: the inventory service's and the
 * order service's, or one database holding both (then one source, `shop`, one slot).
 */
import { SOURCE_TABLES, type SourceTable } from './source-tables';

export interface CaptureSource {
  /** 'inventory', 'orders', or 'shop' when one database holds every table. */
  name: string;
  url: string;
  /** Its read replica, where rows are re-read (capture/watermark-read.ts, reconcile/source-view.ts); absent: the source itself. */
  replicaUrl?: string;
  tables: SourceTable[];
  /** The logical replication slot on that database (slot names are server-wide: see slotName). */
  slot: string;
  publication: string;
  /**
   * Every source of this configuration, this one included: a source joining a pipeline that
   * captured another layout before is refilled (outbox/capture-layout.ts).
   */
  layout: CaptureSourceRef[];
}

/** A source's name, slot and tables: what the pipeline database records of the layout. */
export interface CaptureSourceRef {
  name: string;
  slot: string;
  tables: SourceTable[];
}

/** Created by sql/source-setup.sql on every source database. */
export const PUBLICATION = 'fresh_badges';

/** The pipeline's database and the two source databases (empty: the pipeline's). */
export interface SourceConfig {
  DATABASE_URL: string;
  REPLICA_DATABASE_URL?: string;
  INVENTORY_DATABASE_URL?: string;
  ORDERS_DATABASE_URL?: string;
  INVENTORY_REPLICA_DATABASE_URL?: string;
  ORDERS_REPLICA_DATABASE_URL?: string;
}

export function captureSources(config: SourceConfig): CaptureSource[] {
  const inventoryUrl = config.INVENTORY_DATABASE_URL || config.DATABASE_URL;
  const ordersUrl = config.ORDERS_DATABASE_URL || config.DATABASE_URL;
  // A source's replica: its own setting, else the pipeline database's replica when the source is that database.
  const replicaOf = (url: string, own: string | undefined) =>
    own || (url === config.DATABASE_URL ? config.REPLICA_DATABASE_URL : '') || undefined;
  const pipelineDb = databaseName(config.DATABASE_URL);
  const layout: CaptureSourceRef[] = [];
  const make = (name: string, url: string, replicaUrl: string | undefined, tables: SourceTable[]): CaptureSource => {
    const ref = { name, slot: slotName(pipelineDb, name), tables };
    layout.push(ref);
    return { ...ref, url, ...(replicaUrl ? { replicaUrl } : {}), publication: PUBLICATION, layout };
  };
  const all = Object.keys(SOURCE_TABLES) as SourceTable[];
  const inventoryReplica = replicaOf(inventoryUrl, config.INVENTORY_REPLICA_DATABASE_URL);
  const ordersReplica = replicaOf(ordersUrl, config.ORDERS_REPLICA_DATABASE_URL);
  if (inventoryUrl === ordersUrl) {
    if (inventoryReplica && ordersReplica && inventoryReplica !== ordersReplica)
      throw new Error(
        'INVENTORY_REPLICA_DATABASE_URL and ORDERS_REPLICA_DATABASE_URL differ, but one database holds both sources: set one replica',
      );
    return [make('shop', inventoryUrl, inventoryReplica ?? ordersReplica, all)];
  }
  return [
    make('inventory', inventoryUrl, inventoryReplica, ['skus', 'fulfillment_centers', 'region_fc', 'inventory']),
    make('orders', ordersUrl, ordersReplica, ['orders']),
  ];
}

/** The database a URL names (its path). */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

/**
 * A slot name unique per pipeline database and source: slot names are shared by every database of
 * a server, so two pipelines (say, a test database beside the dev one) reading one source server
 * need different ones. Lower-case letters, digits and _, at most 63 characters.
 */
export function slotName(pipelineDb: string, source: string): string {
  const clean = (s: string) => s.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const name = `fb_${clean(pipelineDb)}_${clean(source)}`;
  if (name.length <= 63) return name;
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return `${name.slice(0, 54)}_${h.toString(16).padStart(8, '0')}`;
}
