/** The read API takes request targets in absolute form as their path (serving/http-api.ts). */
import { describe, expect, it } from 'vitest';
import { originForm } from '../../serving/http-api';

describe('originForm', () => {
  it.each([
    ['/v1/badges/A?region=R1', '/v1/badges/A?region=R1'],
    ['http://host:8080/v1/badges/A?region=R1', '/v1/badges/A?region=R1'],
    ['HTTPS://host/healthz', '/healthz'],
    ['http://host', '/'],
    ['http://host?region=R1', '/?region=R1'],
    ['http://user@host/v1/badges/%2E', '/v1/badges/%2E'],
    ['ftp://host/v1/badges/A', 'ftp://host/v1/badges/A'],
    ['*', '*'],
  ])('%s is %s', (target, path) => {
    expect(originForm(target)).toBe(path);
  });
});
