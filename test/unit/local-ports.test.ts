/** The ports npm start opens on one host must differ (scripts/lib/local-ports.ts). */
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../config';
import { checkLocalPorts } from '../../scripts/lib/local-ports';

const ports = { API_PORT: 8080, WORKER_METRICS_PORT: 9464, BATCH_WORKER_METRICS_PORT: 9465 };

describe('checkLocalPorts', () => {
  it('names both settings of a port given twice', () => {
    expect(() => checkLocalPorts(ports, true)).not.toThrow();
    expect(() => checkLocalPorts({ ...ports, WORKER_METRICS_PORT: 8080 }, true)).toThrow(ConfigurationError);
    expect(() => checkLocalPorts({ ...ports, WORKER_METRICS_PORT: 8080 }, true)).toThrow(
      /API_PORT and WORKER_METRICS_PORT are both 8080/,
    );
    expect(() => checkLocalPorts({ ...ports, BATCH_WORKER_METRICS_PORT: 9464 }, true)).toThrow(
      /WORKER_METRICS_PORT and BATCH_WORKER_METRICS_PORT are both 9464/,
    );
  });

  it('the batch worker port only when it runs; 0 (any free port) never clashes', () => {
    expect(() => checkLocalPorts({ ...ports, BATCH_WORKER_METRICS_PORT: 9464 }, false)).not.toThrow();
    expect(() => checkLocalPorts({ ...ports, API_PORT: 0, WORKER_METRICS_PORT: 0 }, true)).not.toThrow();
  });
});
