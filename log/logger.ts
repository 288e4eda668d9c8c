/**
 * The processes' logger (pino): the worker, the read API, `npm start` and the simulator log
 * through it, the Temporal SDK too (log/temporal-logger.ts). Off a terminal every line is one JSON
 * object (level, time, msg, then the fields) that a log collector can parse whatever the message
 * holds; on a terminal, one readable line. LOG_LEVEL and LOG_FORMAT (config/index.ts) decide.
 * Writes are synchronous: a process that logs its failure and exits still has the line out.
 * The `ops` CLI does not use it: its output is for people.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { loadLogConfig } from '../config';

export type { Logger };

type LogSettings = ReturnType<typeof loadLogConfig>;

/**
 * A root logger as `settings` say: info and below on stdout, warnings and errors on stderr (where
 * a supervisor, or a test running the process, looks for what went wrong), in the same format.
 */
export function createLogger(settings: LogSettings): Logger {
  const json = settings.LOG_FORMAT === 'json' || (settings.LOG_FORMAT === 'auto' && !process.stdout.isTTY);
  const options: pino.LoggerOptions = {
    level: settings.LOG_LEVEL.toLowerCase(),
    // "level":"warn" rather than 40: readable in a collector without pino's table
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    base: { pid: process.pid },
    // an Error under either name becomes { type, message, stack } on the same line
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
  };
  const to = (fd: 1 | 2) => (json ? pino.destination({ fd, sync: true }) : prettyTo(fd));
  // dedupe: each line goes to the one stream of the highest level it reaches
  return pino(
    options,
    pino.multistream(
      [
        { level: 'trace', stream: to(1) },
        { level: 'warn', stream: to(2) },
      ],
      { dedupe: true },
    ),
  );
}

/** One readable line per entry (its fields on the same line), coloured on a terminal. */
function prettyTo(fd: 1 | 2): NodeJS.WritableStream {
  return pretty({
    destination: fd,
    sync: true,
    colorize: (fd === 1 ? process.stdout : process.stderr).isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,component',
    // "component: message", as the text logs read before
    messageFormat: '{if component}{component}: {end}{msg}',
    singleLine: true,
  });
}

let root: Logger | undefined;

/** The process's logger for one part of it (`component` on every line): created on first use from the environment. */
export function logger(component: string): Logger {
  root ??= createLogger(settingsOrDefaults());
  return root.child({ component });
}

/** A bad LOG_LEVEL or LOG_FORMAT must not keep the process from saying so: loadConfig names it, logged with the defaults. */
function settingsOrDefaults(): LogSettings {
  try {
    return loadLogConfig();
  } catch {
    return loadLogConfig({});
  }
}
