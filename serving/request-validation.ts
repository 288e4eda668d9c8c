/**
 * What the read API accepts. Everything a client sends is checked here and rejected with a 4xx
 * and a message that says what was wrong; nothing a client sends reaches Redis unchecked.
 */
import { ID_PATTERN } from '../features/definitions';
import { MAX_SKUS_PER_CALL } from './badge-reader';

/** Ids as the shop writes them: letters, digits and . _ : -, at most 128 characters. */
const ID = ID_PATTERN;
/**
 * Over the longest request the contract allows, as any client's encoder may write it: 200 ids of
 * 128 characters, their 199 commas and a region, every ':' and ',' percent-encoded (three
 * characters each: URLSearchParams does it), and the path: under 78,000 characters. Under the
 * server's header limit (http-api.ts).
 */
export const MAX_URL_LENGTH = 80_000;

export class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export function parseRegion(params: URLSearchParams): string {
  const all = params.getAll('region');
  if (all.length === 0 || all[0] === '') throw new BadRequest('missing query parameter: region');
  if (all.length > 1) throw new BadRequest('region given more than once');
  if (!ID.test(all[0]))
    throw new BadRequest(
      `malformed region: ${JSON.stringify(all[0].slice(0, 140))} (letters, digits and . _ : -, at most 128)`,
    );
  return all[0];
}

export function parseSku(raw: string): string {
  if (!ID.test(raw))
    throw new BadRequest(
      `malformed sku: ${JSON.stringify(raw.slice(0, 140))} (letters, digits and . _ : -, at most 128)`,
    );
  return raw;
}

export function parseSkuList(params: URLSearchParams): string[] {
  const all = params.getAll('skus');
  if (all.length === 0 || all.join('') === '')
    throw new BadRequest('missing query parameter: skus (1 to 200 comma-separated SKU ids)');
  if (all.length > 1) throw new BadRequest('skus given more than once; send one comma-separated list');
  const skus = all[0].split(',');
  if (skus.length > MAX_SKUS_PER_CALL)
    throw new BadRequest(`too many skus: ${skus.length}, at most ${MAX_SKUS_PER_CALL} per request`);
  const seen = new Set<string>();
  for (const raw of skus) {
    if (raw === '') throw new BadRequest('empty sku in the list (two commas in a row, or a trailing comma)');
    parseSku(raw);
    if (seen.has(raw)) throw new BadRequest(`duplicate sku in the list: ${raw}`);
    seen.add(raw);
  }
  return skus;
}
