/**
 * The ports `npm start` opens on this one host. The configuration alone cannot refuse two equal
 * ones: the API and the workers may run on different hosts, each free to use the same number. Run
 * together, a clash made the worker fail at start and be restarted every 2 s for good (the reads
 * answering stale meanwhile), with an error naming a variable the user may not have set.
 */
import { ConfigurationError, type Config } from '../../config';

// (not TEMPORAL_UI_PORT: npm start opens it only when it starts the dev server itself, not with a
// Temporal of its own elsewhere; the dev server says so if the port is taken)
type PortSettings = Pick<Config, 'API_PORT' | 'WORKER_METRICS_PORT' | 'BATCH_WORKER_METRICS_PORT'>;

/** Throws ConfigurationError naming the settings that give one port to two listeners (0: any free port, never a clash). */
export function checkLocalPorts(config: PortSettings, batchWorker: boolean): void {
  const ports: [keyof PortSettings, number][] = [
    ['API_PORT', config.API_PORT],
    ['WORKER_METRICS_PORT', config.WORKER_METRICS_PORT],
  ];
  if (batchWorker) ports.push(['BATCH_WORKER_METRICS_PORT', config.BATCH_WORKER_METRICS_PORT]);
  const byPort = new Map<number, string[]>();
  for (const [name, port] of ports) if (port !== 0) byPort.set(port, [...(byPort.get(port) ?? []), name]);
  const clashes = [...byPort].filter(([, names]) => names.length > 1);
  if (clashes.length)
    throw new ConfigurationError(
      `invalid configuration:\n${clashes.map(([port, names]) => `  ${names.join(' and ')} are both ${port}: npm start opens each on this host; give them different ports`).join('\n')}`,
    );
}
