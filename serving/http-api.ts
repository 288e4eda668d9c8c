/**
 * The read API (docs/contracts.md), on node:http (no framework: four routes, and every
 * microsecond of a read shows in the p99):
 *   GET /v1/badges?region=R&skus=A,B,C   GET /v1/badges/{sku}?region=R   GET /healthz   GET /metrics
 * Bad input -> 4xx with {"error": "..."}; Redis down -> 503; nothing a client sends crashes it.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { BadgeReader, RedisUnavailable } from './badge-reader';
import { ApiMetrics, createApiMetrics } from './metrics';
import { BadRequest, MAX_URL_LENGTH, parseRegion, parseSku, parseSkuList } from './request-validation';
import { logger } from '../log/logger';

export interface ApiOptions {
  reader: BadgeReader;
  metrics?: ApiMetrics;
  /** Other dependencies of this process to report in /healthz (npm start: PostgreSQL, Temporal). */
  dependencies?: () => Promise<Record<string, { status: 'up' | 'down'; error?: string }>>;
}

type Route = 'badges' | 'badge' | 'healthz' | 'metrics' | 'unknown';

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A request that reached a route: its URL, and its path as sent. */
interface Request {
  url: URL;
  path: string;
}

/** A refusal before any route runs (URL too long or malformed, unknown route, wrong method). */
type Refusal = { status: number; error: string; headers?: Record<string, string> };

function routeOf(req: http.IncomingMessage): { route: Route; request: Request } | { route: Route; refusal: Refusal } {
  const rawUrl = req.url ?? '/';
  if (rawUrl.length > MAX_URL_LENGTH)
    return {
      route: 'unknown',
      refusal: { status: 414, error: `request URL too long (${rawUrl.length} characters, at most ${MAX_URL_LENGTH})` },
    };
  let url: URL;
  try {
    url = new URL(rawUrl, 'http://x');
  } catch {
    return { route: 'unknown', refusal: { status: 400, error: 'malformed request URL' } };
  }
  // The path as sent: URL parsing would resolve "." and ".." segments (even percent-encoded),
  // and "." and ".." are valid SKU ids, addressable as /v1/badges/%2E.
  const path = originForm(rawUrl).split('?')[0].split('#')[0];
  const route: Route =
    path === '/v1/badges'
      ? 'badges'
      : path.startsWith('/v1/badges/')
        ? 'badge'
        : path === '/healthz'
          ? 'healthz'
          : path === '/metrics'
            ? 'metrics'
            : 'unknown';
  if (route === 'unknown') return { route, refusal: { status: 404, error: `no such route: ${path.slice(0, 200)}` } };
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return {
      route,
      refusal: { status: 405, error: `method ${req.method} not allowed; use GET`, headers: { allow: 'GET, HEAD' } },
    };
  return { route, request: { url, path } };
}

/**
 * The request target in origin form: a target in absolute form ("http://host/v1/badges/A", which
 * HTTP/1.1 servers must accept, and proxies send) without its scheme and authority; any other as is.
 */
export function originForm(target: string): string {
  const authority = /^https?:\/\/[^/?#]*/i.exec(target);
  if (!authority) return target;
  const rest = target.slice(authority[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** The SKU of /v1/badges/{sku}, percent-decoded and validated. */
function skuOfPath(path: string): string {
  let sku: string;
  try {
    sku = decodeURIComponent(path.slice('/v1/badges/'.length));
  } catch {
    throw new BadRequest('malformed sku in the path');
  }
  parseSku(sku);
  return sku;
}

export function createApiHandler(opts: ApiOptions) {
  const metrics = opts.metrics ?? createApiMetrics();
  const { reader } = opts;

  function observe(badges: { reason: string }[], stale: boolean, lagMs: number | null): void {
    for (const b of badges) metrics.badgesServed.inc({ reason: b.reason });
    if (stale) metrics.staleAnswers.inc();
    metrics.lag.set(lagMs === null ? Infinity : lagMs / 1000); // unknown (no confirmation): +Inf
  }

  /** One function per route; each answers and returns its status. */
  const routes: Record<Exclude<Route, 'unknown'>, (r: Request, res: http.ServerResponse) => Promise<number>> = {
    async badges({ url }, res) {
      const answer = await reader.getBadges(parseRegion(url.searchParams), parseSkuList(url.searchParams));
      observe(answer.badges, answer.stale, answer.lagMs);
      send(res, 200, answer);
      return 200;
    },
    async badge({ url, path }, res) {
      const sku = skuOfPath(path);
      const badge = await reader.getBadge(parseRegion(url.searchParams), sku);
      observe([badge], badge.stale, badge.lagMs);
      send(res, 200, badge);
      return 200;
    },
    async healthz(_, res) {
      // Reads need Redis only: the API is healthy (200) while Redis answers, whatever the
      // pipeline's other dependencies do; each is reported on its own.
      const [f, others] = await Promise.all([reader.freshness(), opts.dependencies?.() ?? Promise.resolve({})]);
      const dependencies = { redis: { status: 'up' as const }, ...others };
      const degraded = Object.values(dependencies).some((d) => d.status !== 'up');
      send(res, 200, { status: degraded ? 'degraded' : 'ok', redis: 'up', dependencies, ...f });
      return 200;
    },
    async metrics(_, res) {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
      return 200;
    },
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<[Route, number]> {
    const found = routeOf(req);
    if ('refusal' in found) {
      send(res, found.refusal.status, { error: found.refusal.error }, found.refusal.headers);
      return [found.route, found.refusal.status];
    }
    const route = found.route as Exclude<Route, 'unknown'>;
    try {
      return [route, await routes[route](found.request, res)];
    } catch (err) {
      if (err instanceof BadRequest) {
        send(res, err.status, { error: err.message });
        return [route, err.status];
      }
      if (err instanceof RedisUnavailable) {
        send(res, 503, { error: err.message }, { 'retry-after': '1' });
        return [route, 503];
      }
      throw err;
    }
  }

  return async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const started = process.hrtime.bigint();
    let route: Route = 'unknown';
    let status = 500;
    try {
      [route, status] = await handle(req, res);
    } catch (err) {
      // A bug, never client input: answer 500 and keep serving.
      logger('api').error({ err, method: req.method, url: req.url?.slice(0, 200) }, 'unexpected error');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    }
    metrics.requests.inc({ route, status: String(status) });
    metrics.latency.observe({ route }, Number(process.hrtime.bigint() - started) / 1e9);
  };
}

export function createApiServer(opts: ApiOptions): http.Server {
  const handler = createApiHandler(opts);
  const server = http.createServer({ maxHeaderSize: 96 * 1024 }, (req, res) => void handler(req, res));
  server.keepAliveTimeout = 65_000;
  // A malformed request line or headers: answer 400 instead of letting the socket error out.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const body = JSON.stringify({ error: status === 431 ? 'request headers too large' : 'malformed HTTP request' });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  // CONNECT (a tunnel request) goes to this event, not the handler: unheard, Node closes the
  // socket without an answer. Node has taken its own listeners off the socket by then: without
  // an error listener a client's reset would end the process, and a socket that is only ended
  // (the server allows half-open sockets) would wait for the client's end for good.
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    const body = JSON.stringify({ error: `method ${req.method} not allowed; use GET` });
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      () => socket.destroy(),
    );
  });
  return server;
}
