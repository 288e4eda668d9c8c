/** Prometheus metrics of the read API (prom-client), served at /metrics. */
import client from 'prom-client';

export function createApiMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'fresh_badges_api_' });
  return {
    registry,
    requests: new client.Counter({
      name: 'fresh_badges_api_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['route', 'status'] as const,
      registers: [registry],
    }),
    latency: new client.Histogram({
      name: 'fresh_badges_api_request_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers: [registry],
    }),
    badgesServed: new client.Counter({
      name: 'fresh_badges_api_badges_total',
      help: 'badges answered, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    staleAnswers: new client.Counter({
      name: 'fresh_badges_api_stale_answers_total',
      help: 'answers served with stale: true',
      registers: [registry],
    }),
    lag: new client.Gauge({
      name: 'fresh_badges_api_lag_seconds',
      help: 'lag of the online store as seen by the last answer (now - caught-up watermark)',
      registers: [registry],
    }),
  };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
