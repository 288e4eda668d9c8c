/**
 * The Temporal SDK's logs through the process's logger: Runtime.install({ logger }) takes a
 * Logger (@temporalio/common); this one hands each call to pino, so the SDK's own lines, the
 * workflows' `log` and the Rust core's forwarded logs come out as the rest do (one JSON object a
 * line off a terminal) instead of the DefaultLogger's multi-line object dumps on stderr.
 */
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';
import { makeTelemetryFilterString, type TelemetryOptions } from '@temporalio/worker';
import type { Logger } from './logger';

const METHOD = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly pino: Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    // (the SDK's timestamp is a symbol-keyed field: pino leaves it out and stamps its own time)
    this.pino[METHOD[level]](meta ?? {}, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/**
 * The Rust core's logs, forwarded to the Runtime's logger rather than printed by the core itself
 * in a format of its own. At INFO, WARN and ERROR the SDK's default filter (core WARN, its
 * libraries ERROR), raised to LOG_LEVEL; at DEBUG and TRACE everything at that level.
 */
export function forwardedCoreLogging(level: LogLevel): TelemetryOptions['logging'] {
  const verbose = level === 'DEBUG' || level === 'TRACE';
  const core = verbose || level === 'ERROR' ? level : 'WARN';
  return { filter: makeTelemetryFilterString({ core, other: verbose ? level : 'ERROR' }), forward: {} };
}
