/**
 * The one loader of the store's Lua scripts. Each script is a file of store/lua/ whose header says
 * its KEYS, ARGV and reply; shared parts live in store/lua/includes/. A script's source is:
 *  - the tables KEY, FIELD and OP built from store/names.ts, first, so a key suffix, hash field or
 *    operation code is written once for TypeScript and Lua alike;
 *  - its file, with each `--- @include "includes/<name>"` line replaced by that include (once).
 * `defineScripts` makes every script a command of a client and its pipelines (`fbApply`, …), so
 * ioredis runs it by EVALSHA and loads it when the server lacks it; the read path runs its script
 * with EVALSHA_RO by `sha` (serving/badge-reader.ts).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FIELD, HELD, KEY, OP } from './names';
import type { StoreRedis } from './redis-client';

export interface StoreScript {
  /** The file under store/lua/, without `.lua`. */
  file: string;
  /** The client command it is defined as. */
  command: string;
  lua: string;
  sha: string;
}

const LUA_DIR = path.join(__dirname, 'lua');
const INCLUDE = /^--- @include "([\w/-]+)"\s*$/gm;

/** `local NAME = { key = 'value', … }` for one table of names. */
function luaTable(name: string, values: Record<string, string>): string {
  const fields = Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  return `local ${name} = { ${fields.join(', ')} }`;
}

const NAMES_PREAMBLE = [
  luaTable('KEY', KEY),
  luaTable('FIELD', FIELD),
  luaTable('HELD', HELD),
  luaTable('OP', OP),
].join('\n');

/** A script's source: the names, then the file with its includes in place. */
export function scriptSource(file: string): string {
  const included = new Set<string>();
  const body = fs.readFileSync(path.join(LUA_DIR, `${file}.lua`), 'utf8').replace(INCLUDE, (_, include: string) => {
    if (included.has(include)) return '';
    included.add(include);
    return fs.readFileSync(path.join(LUA_DIR, `${include}.lua`), 'utf8').trimEnd();
  });
  return `${NAMES_PREAMBLE}\n${body}`;
}

function load(file: string, command: string): StoreScript {
  const lua = scriptSource(file);
  return { file, command, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Every script of the store. */
export const SCRIPTS = {
  apply: load('apply', 'fbApply'),
  readBadges: load('read-badges', 'fbReadBadges'),
  checkPosition: load('check-position', 'fbCheckPosition'),
  gatedHset: load('gated-hset', 'fbGatedHset'),
  readWatermark: load('read-watermark', 'fbReadWatermark'),
  advanceFence: load('advance-fence', 'fbAdvanceFence'),
  finishBackfill: load('finish-backfill', 'fbFinishBackfill'),
  backfillStep: load('backfill-step', 'fbBackfillStep'),
  deleteTombstone: load('delete-tombstone', 'fbDeleteTombstone'),
  raiseCounter: load('raise-counter', 'fbRaiseCounter'),
  releaseHeld: load('release-held', 'fbReleaseHeld'),
  splitPosition: load('split-position', 'fbSplitPosition'),
  lowerPosition: load('lower-position', 'fbLowerPosition'),
} as const;

type Callable = Record<string, (...args: (string | number)[]) => unknown>;

/** Defines every script as a command of this client and its pipelines (once per client). */
export function defineScripts(redis: StoreRedis): void {
  for (const s of Object.values(SCRIPTS))
    if (typeof (redis as unknown as Partial<Callable>)[s.command] !== 'function')
      redis.defineCommand(s.command, { lua: s.lua });
}

/**
 * Runs `script` on a client or a pipeline that defineScripts prepared: KEYS first (`numKeys` of
 * them), then ARGV.
 */
export function runScript(target: object, script: StoreScript, numKeys: number, ...args: (string | number)[]): unknown {
  return (target as Callable)[script.command](numKeys, ...args);
}
