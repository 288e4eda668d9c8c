/**
 * A logical replication connection to one source database: START_REPLICATION on the pipeline's
 * slot with the built-in pgoutput plugin, decoded frames handed out in order, and the slot's
 * position confirmed only when the caller says so (after the outbox transaction that holds the
 * changes has committed: capture/capture-loop.ts).
 *
 * Backpressure: frames queue in memory, raw (decoded as they are taken), up to HIGH_WATER; past it
 * the socket is paused, so a backlog in the slot is read as fast as the outbox takes it and never
 * piles up in the process.
 *
 * The connection uses node-postgres in replication mode; its CopyBoth frames arrive as `copyData`
 * events of the connection (node-postgres has no stream API for them).
 */
import pg from 'pg';
import { redactText } from '../config/redact';
import { decodeFrame, isReplyRequest, standbyStatusUpdate, type ReplicationFrame } from './pgoutput';
import { SourceSetupError } from './row-image';
import { dropConnection, endWithin } from '../db/cancellable';

const HIGH_WATER = 20_000;
const LOW_WATER = 5_000;
/** Under wal_sender_timeout (60 s by default), so an idle stream is never cut. */
const STATUS_EVERY_MS = 10_000;
/**
 * A confirmed position goes to the server at most this often. Each status update wakes the
 * walsender; at a few outbox writes per source every 10 ms, sending every one cost the worker more
 * than the ticks (profiled at 10,000 changes/s). Sending later is safe: a position not yet sent
 * only means the server may send those transactions again, and capture skips what the outbox
 * already holds (pipeline.capture_progress.lsn).
 */
const CONFIRM_EVERY_MS = 100;

export interface ReplicationStreamOptions {
  connectionString: string;
  slot: string;
  publication: string;
  /**
   * Ends the start (`ops pause`, a worker's shutdown): the connection is ended, whether it is still
   * being made or waiting for the stream to start, and the signal's reason thrown.
   */
  signal?: AbortSignal;
}

/** The slot is gone, or can no longer serve changes (invalidated): capture must re-create it and refill. */
export class SlotLostError extends Error {
  override name = 'SlotLostError';
}

/**
 * The walsender found no publication of that name at a change it decoded. Either the publication
 * does not exist (the source's set-up is not done), or it was dropped and created again since the
 * slot's position: pgoutput looks publications up as of each change (PostgreSQL before 18), so the
 * changes made while it was missing can never be decoded from this slot (CaptureSession.run tells
 * the two apart).
 */
export class PublicationMissingError extends SourceSetupError {
  override name = 'PublicationMissingError';
}

/** The slot is streaming to another capture (another run of the same source): this one leaves it. */
export class SlotBusyError extends Error {
  override name = 'SlotBusyError';
}

type PgConnection = {
  on(event: 'copyData', fn: (msg: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', fn: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
};

/**
 * The session settings the walsender's text output must be written with (capture/json-bytes.ts
 * reads ISO timestamps with UTC offsets), as startup options and as one statement run before
 * streaming, which a connection string's own `options` cannot replace.
 */
const OUTPUT_SETTINGS_OPTIONS = '-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3';
const OUTPUT_SETTINGS_SQL = `select set_config('DateStyle', 'ISO', false), set_config('TimeZone', 'UTC', false), set_config('extra_float_digits', '3', false)`;

/** A server that accepted the connection but neither starts nor refuses the stream in this long: given up. */
const START_TIMEOUT_MS = 30_000;
/** How long a close waits for the server's side of it before it drops the connection (a host gone silent). */
const CLOSE_WAIT_MS = 2_000;

export class ReplicationStream {
  /** Raw CopyData frames, decoded as they are taken: a queued frame is one small object, not a tree. */
  private readonly queue: Buffer[] = [];
  private head = 0;
  private receivedAt = Date.now();
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private ended = false;
  private paused = false;
  private confirmed = 0n;
  private statusTimer: NodeJS.Timeout | null = null;
  /** The position the last status update carried, and when it went. */
  private sent = 0n;
  private sentAtMs = 0;
  private confirmTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly client: pg.Client,
    private readonly connection: PgConnection,
  ) {}

  /** Connects and starts streaming from the slot's confirmed position. */
  static async start(opts: ReplicationStreamOptions): Promise<ReplicationStream> {
    const { signal } = opts;
    signal?.throwIfAborted();
    const client = new pg.Client({
      connectionString: opts.connectionString,
      replication: 'database',
      application_name: 'fresh-badges-capture',
      // Text output as capture/row-image.ts converts it: ISO dates, UTC offsets. (Set again below:
      // an `options` parameter in the connection string replaces this one.)
      options: OUTPUT_SETTINGS_OPTIONS,
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
    } as pg.ClientConfig);
    client.on('error', () => {}); // the failed query below reports it
    // Nothing is made on the server before the stream starts: ending the connection is enough (a
    // walsender that has not noticed yet holds the slot a moment longer: the next start is told
    // the slot is busy, and retried).
    const stop = () => dropConnection(client); // in any phase: db/cancellable.ts says why not end()
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const stream = await ReplicationStream.begin(client, opts);
      if (signal?.aborted) {
        await stream.close();
        throw signal.reason;
      }
      return stream;
    } catch (err) {
      throw signal?.aborted ? signal.reason : err;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  private static async begin(client: pg.Client, opts: ReplicationStreamOptions): Promise<ReplicationStream> {
    await client.connect();
    try {
      await client.query(OUTPUT_SETTINGS_SQL);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    const connection = (client as unknown as { connection: PgConnection }).connection;
    const stream = new ReplicationStream(client, connection);
    connection.on('copyData', ({ chunk }) => stream.receive(chunk));
    const sql = `START_REPLICATION SLOT ${opts.slot} LOGICAL 0/0 (proto_version '1', publication_names '${opts.publication}', messages 'true')`;
    // Started once the server answers CopyBothResponse: it holds the slot from then on. A start the
    // server refuses (slot busy, lost, no publication) fails here, so the caller has taken nothing
    // on the strength of it (capture-loop.ts claims the source's generation after this).
    const started = new Promise<void>((resolve, reject) => {
      connection.once('replicationStart', () => resolve());
      client.query(sql).then(
        () => {
          stream.finish(null);
          resolve();
        },
        (err: Error) => {
          stream.finish(err);
          reject(stream.failure ?? err);
        },
      );
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the source did not start streaming slot ${opts.slot} within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([started, timeout]);
    } catch (err) {
      await stream.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    stream.statusTimer = setInterval(() => stream.sendStatus(false), STATUS_EVERY_MS);
    return stream;
  }

  /** Up to `max` frames, waiting at most `waitMs` for the first. Throws once the stream failed. */
  async take(max: number, waitMs: number): Promise<ReplicationFrame[]> {
    if (this.available() === 0 && !this.failure && !this.ended && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = null;
          resolve();
        }, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
    const n = Math.min(max, this.available());
    if (n === 0) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new Error('the replication stream ended');
      return [];
    }
    const out: ReplicationFrame[] = [];
    for (let i = 0; i < n; i++) {
      try {
        out.push(decodeFrame(this.queue[this.head]!));
      } catch (err) {
        // the frames before it are handed out; the next take reports the failure (also when the
        // server had already ended the stream: the frame it sent before is what broke)
        const failure = classify(err as Error);
        this.finish(null);
        this.failure ??= failure;
        this.queue.length = this.head = 0;
        if (!out.length) throw this.failure;
        return out;
      }
      this.head++;
    }
    if (this.head > 10_000 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.paused && this.available() < LOW_WATER) {
      this.paused = false;
      this.connection.stream.resume();
    }
    return out;
  }

  /** Tells the server every change up to `lsn` is safely written: the slot may move there. */
  confirm(lsn: bigint): void {
    if (lsn <= this.confirmed) return;
    this.confirmed = lsn;
    if (this.confirmTimer) return; // the update already due carries it
    const wait = this.sentAtMs + CONFIRM_EVERY_MS - Date.now();
    if (wait <= 0) this.sendStatus(false);
    else
      this.confirmTimer = setTimeout(() => {
        this.confirmTimer = null;
        this.sendStatus(false);
      }, wait);
  }

  /** False once the stream failed or ended. */
  get healthy(): boolean {
    return !this.failure && !this.ended;
  }

  get confirmedLsn(): bigint {
    return this.confirmed;
  }

  async close(): Promise<void> {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.clearConfirmTimer();
    // the last confirmed position, if it has not gone yet (the slot would otherwise send it again)
    if (this.confirmed > this.sent) this.sendStatus(false);
    this.ended = true;
    this.wake?.();
    await endWithin(this.client, CLOSE_WAIT_MS);
  }

  private available(): number {
    return this.queue.length - this.head;
  }

  /**
   * Whether the server answers: asks it for a reply now, and waits up to `ms` for anything from it.
   * A stream this process stopped reading (the queue full: backpressure) counts as answering.
   */
  async answers(ms: number): Promise<boolean> {
    if (this.paused) return true;
    const asked = Date.now();
    this.sendStatus(true);
    while (Date.now() - asked < ms) {
      if (this.receivedAt >= asked || this.paused) return true;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.receivedAt >= asked;
  }

  private receive(chunk: Buffer): void {
    this.receivedAt = Date.now();
    // A keepalive asking for a reply gets it now, not when its turn to be decoded comes.
    if (isReplyRequest(chunk)) this.sendStatus(false);
    // A copy: the protocol parser reuses the buffer the chunk points into.
    this.queue.push(Buffer.from(chunk));
    if (!this.paused && this.available() >= HIGH_WATER) {
      this.paused = true;
      this.connection.stream.pause();
    }
    this.wake?.();
  }

  private clearConfirmTimer(): void {
    if (this.confirmTimer) clearTimeout(this.confirmTimer);
    this.confirmTimer = null;
  }

  private sendStatus(replyRequested: boolean): void {
    if (this.ended || this.failure) return;
    this.clearConfirmTimer(); // this update carries the newest position
    this.sent = this.confirmed;
    this.sentAtMs = Date.now();
    try {
      this.connection.sendCopyFromChunk(standbyStatusUpdate(this.confirmed, this.sentAtMs, replyRequested));
    } catch {
      // the connection is gone: the stream's query fails and take() reports it
    }
  }

  private finish(err: Error | null): void {
    if (err && !this.ended) this.failure = classify(err);
    this.ended = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.clearConfirmTimer();
    this.wake?.();
  }
}

function classify(err: Error): Error {
  const code = (err as { code?: string }).code;
  const message = redactText(err.message);
  if (/publication .* does not exist/.test(message))
    return new PublicationMissingError(`${message}: run sql/source-setup.sql on the source database (docs/capture.md)`);
  // 42704: the slot does not exist; 55000: it was invalidated (max_slot_wal_keep_size) or cannot
  // be used ("can no longer get changes from replication slot").
  if (
    (code === '42704' && /replication slot/.test(message)) ||
    (code === '55000' && /no longer|invalidated/.test(message))
  )
    return new SlotLostError(`replication slot lost: ${message}`);
  if (code === '55006') return new SlotBusyError(message);
  // Slot names are the server's, not a database's: one of this name made from another database of
  // the server (the source moved databases, the pipeline's name kept) cannot stream this one. Not
  // dropped by capture (it may be another's): the operator's to drop, asked again every 30 s.
  if (code === '55000' && /not created in this database/.test(message))
    return new SourceSetupError(
      `${message}: a slot of this name belongs to another database of the source's server. Drop it there if nothing reads it (select pg_drop_replication_slot('<slot>') in that database), and capture creates its own`,
    );
  return new Error(`replication stream failed: ${message}`);
}
