/**
 * A realistic catalogue for demos, tests and benchmarks: FCs spread over regions, each region
 * served by a few FCs ranked nearest first, SKUs stocked at a few FCs each. Written in chunks by
 * set-returning SQL (fast even for millions of SKUs), deterministically from the sizes.
 */
import type pg from 'pg';

export interface CatalogueSize {
  skus: number;
  fcs: number;
  regions: number;
  /** FCs that can deliver same-day to a region (ranked). */
  fcsPerRegion: number;
  /** FCs each SKU is stocked at. */
  fcsPerSku: number;
}

export const DEFAULT_SIZE: CatalogueSize = { skus: 10_000, fcs: 12, regions: 6, fcsPerRegion: 3, fcsPerSku: 3 };

export const skuId = (i: number) => `SKU-${String(i).padStart(7, '0')}`;
export const fcId = (i: number) => `FC-${String(i).padStart(3, '0')}`;
export const regionId = (i: number) => `R-${String(i).padStart(2, '0')}`;

/** The FCs SKU i is stocked at: the same function the seed and the traffic use. */
export function skuFcIndexes(i: number, size: CatalogueSize): number[] {
  const out: number[] = [];
  const stride = Math.max(1, Math.floor(size.fcs / size.fcsPerSku));
  for (let j = 0; j < Math.min(size.fcsPerSku, size.fcs); j++) out.push((i + j * stride) % size.fcs);
  return out;
}

export async function catalogueExists(pool: pg.Pool): Promise<boolean> {
  const r = await pool.query('select exists (select 1 from shop.skus) as e');
  return r.rows[0].e;
}

export async function seedCatalogue(
  pool: pg.Pool,
  size: CatalogueSize,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  if (size.fcsPerSku > size.fcs) throw new Error(`--fcs-per-sku (${size.fcsPerSku}) cannot exceed --fcs (${size.fcs})`);
  if (size.fcsPerRegion > size.fcs)
    throw new Error(`--fcs-per-region (${size.fcsPerRegion}) cannot exceed --fcs (${size.fcs})`);
  await pool.query(
    `insert into shop.fulfillment_centers (fc_id, region, daily_capacity, updated_at)
     select 'FC-' || lpad(f::text, 3, '0'), 'R-' || lpad((f % $2)::text, 2, '0'), 2000 + (f * 7919) % 6000, now()
       from generate_series(0, $1 - 1) f
     on conflict (fc_id) do nothing`,
    [size.fcs, size.regions],
  );
  // Region r is served by FCs r, r+1, … (wrapping), nearest first.
  await pool.query(
    `insert into shop.region_fc (region, fc_id, rank)
     select 'R-' || lpad(r::text, 2, '0'), 'FC-' || lpad(((r + k) % $2)::text, 3, '0'), k + 1
       from generate_series(0, $1 - 1) r, generate_series(0, $3 - 1) k
     on conflict (region, fc_id) do nothing`,
    [size.regions, size.fcs, size.fcsPerRegion],
  );
  const chunk = 50_000;
  const stride = Math.max(1, Math.floor(size.fcs / size.fcsPerSku));
  for (let from = 0; from < size.skus; from += chunk) {
    const to = Math.min(size.skus, from + chunk) - 1;
    await pool.query(
      `insert into shop.skus (sku_id, title, lifecycle)
       select 'SKU-' || lpad(i::text, 7, '0'), 'Product ' || i,
              case when i % 50 = 7 then 'discontinued' when i % 33 = 5 then 'paused' else 'active' end
         from generate_series($1::int, $2::int) i
       on conflict (sku_id) do nothing`,
      [from, to],
    );
    await pool.query(
      `insert into shop.inventory (sku_id, fc_id, on_hand, reserved, updated_at)
       select 'SKU-' || lpad(i::text, 7, '0'), 'FC-' || lpad(((i + j * $4) % $3)::text, 3, '0'),
              case when (i * 31 + j * 17) % 10 = 0 then 0 else (i * 13 + j * 29) % 60 end, 0, now()
         from generate_series($1::int, $2::int) i, generate_series(0, $5 - 1) j
       on conflict do nothing`,
      [from, to, size.fcs, stride, Math.min(size.fcsPerSku, size.fcs)],
    );
    onProgress?.(to + 1, size.skus);
  }
}

/** Reads the catalogue size back from the tables (for traffic against an existing catalogue). */
export async function readCatalogueSize(pool: pg.Pool): Promise<CatalogueSize> {
  const r = await pool.query(`select
      (select count(*) from shop.skus)::int as skus,
      (select count(*) from shop.fulfillment_centers)::int as fcs,
      (select count(distinct region) from shop.region_fc)::int as regions,
      (select coalesce(max(c), 0) from (select count(*) c from shop.region_fc group by region) x)::int as per_region,
      (select coalesce(max(c), 0) from (select count(*) c from shop.inventory group by sku_id) x)::int as per_sku`);
  const row = r.rows[0];
  return { skus: row.skus, fcs: row.fcs, regions: row.regions, fcsPerRegion: row.per_region, fcsPerSku: row.per_sku };
}
