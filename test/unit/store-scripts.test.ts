/**
 * The store's Lua scripts as the loader builds them (store/scripts.ts): every include resolved
 * once, every name a script uses defined in store/names.ts (a misspelt FIELD.x is nil in Lua and
 * would only fail when that line runs), and a header that says KEYS, ARGV and the reply.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIELD, KEY, OP } from '../../store/names';
import { SCRIPTS, scriptSource } from '../../store/scripts';

const NAMES: Record<string, Record<string, string>> = { KEY, FIELD, OP };
const LUA_DIR = path.resolve(__dirname, '../../store/lua');

describe('store scripts', () => {
  it('every script file is loaded, with its includes in place once and no include left', () => {
    const files = fs
      .readdirSync(LUA_DIR)
      .filter((f) => f.endsWith('.lua'))
      .map((f) => f.slice(0, -4))
      .sort();
    expect(
      Object.values(SCRIPTS)
        .map((s) => s.file)
        .sort(),
    ).toEqual(files);
    for (const s of Object.values(SCRIPTS)) {
      expect(s.lua).not.toMatch(/@include/);
      expect(s.lua.match(/^local function comparePositions/gm)?.length ?? 0).toBeLessThanOrEqual(1);
      expect(s.sha).toMatch(/^[0-9a-f]{40}$/);
    }
    expect(scriptSource('gated-hset')).toContain('local function partitionBelow');
  });

  it('uses only names store/names.ts defines', () => {
    const undefinedNames: string[] = [];
    for (const s of Object.values(SCRIPTS))
      for (const [, table, name] of s.lua.matchAll(/\b(KEY|FIELD|OP)\.(\w+)/g))
        if (!(name in NAMES[table])) undefinedNames.push(`${s.file}: ${table}.${name}`);
    expect(undefinedNames).toEqual([]);
  });

  it('each file starts with a header naming its KEYS, ARGV and reply', () => {
    for (const s of Object.values(SCRIPTS)) {
      const header = fs.readFileSync(path.join(LUA_DIR, `${s.file}.lua`), 'utf8').split('\n--- @include')[0];
      expect(header, s.file).toMatch(/^-- /);
      expect(header, s.file).toMatch(/KEYS\[1\]/);
      expect(header, s.file).toMatch(/ARGV\[1\]/);
      expect(header, s.file).toMatch(/Returns/);
    }
  });
});
