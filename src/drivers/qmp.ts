import type { Duplex } from 'node:stream';
import { z } from 'zod';

/**
 * A QMP session over any stream (here an SSH stream-local channel to the node's socket): the
 * greeting, qmp_capabilities, then commands answered in order. Events wake whoever waits for one.
 */

const Reply = z.union([
  z.object({ return: z.unknown(), id: z.number().optional() }),
  z.object({ error: z.object({ class: z.string(), desc: z.string() }), id: z.number().optional() }),
  z.object({ event: z.string(), data: z.unknown().optional() }),
  z.object({ QMP: z.unknown() }),
]);

export class QmpError extends Error {
  override name = 'QmpError';
}

export class QmpSession {
  private buffer = '';
  private pending: {
    id: number;
    command: string;
    resolve: (v: unknown) => void;
    reject: (e: Error) => void;
  }[] = [];
  private waiters = new Set<(event: string) => void>();
  private nextId = 1;
  private greeted: Promise<void>;
  closed = false;

  constructor(
    private readonly stream: Duplex,
    private readonly where: string,
  ) {
    let greet: () => void = () => {};
    let fail: (e: Error) => void = () => {};
    this.greeted = new Promise<void>((resolve, reject) => {
      greet = resolve;
      fail = reject;
    });
    stream.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString();
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line !== '') this.onMessage(line, greet);
      }
    });
    const onGone = () => {
      if (this.closed) return;
      this.closed = true;
      const error = new QmpError(`${where}: QMP connection closed (QEMU exited?)`);
      fail(error);
      for (const p of this.pending.splice(0)) p.reject(error);
      for (const w of this.waiters) w('closed');
    };
    stream.on('close', onGone);
    stream.on('end', onGone);
    stream.on('error', onGone);
  }

  private onMessage(line: string, greet: () => void) {
    let message: z.infer<typeof Reply>;
    try {
      message = Reply.parse(JSON.parse(line));
    } catch {
      return;
    }
    if ('QMP' in message) return greet();
    if ('event' in message) {
      for (const w of this.waiters) w(message.event);
      return;
    }
    const p = message.id === undefined ? this.pending.shift() : this.pending.find((x) => x.id === message.id);
    if (p === undefined) return;
    this.pending = this.pending.filter((x) => x !== p);
    if ('error' in message) p.reject(new QmpError(`${this.where}: ${p.command}: ${message.error.desc}`));
    else p.resolve(message.return);
  }

  /** Waits for the greeting and negotiates capabilities. */
  async open(): Promise<this> {
    await this.greeted;
    await this.execute('qmp_capabilities');
    return this;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new QmpError(`${this.where}: QMP connection closed`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.push({ id, command, resolve, reject });
      this.stream.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  /** Resolves on the next event whose name passes `match` (or 'closed'), or after timeoutMs with null. */
  nextEvent(
    match: (name: string) => boolean,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<string | null> {
    if (this.closed) return Promise.resolve('closed');
    return new Promise((resolve) => {
      const done = (v: string | null) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const waiter = (name: string) => {
        if (name === 'closed' || match(name)) done(name);
      };
      const onAbort = () => done(null);
      const timer = setTimeout(() => done(null), Math.max(0, timeoutMs));
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close() {
    this.closed = true;
    this.stream.end();
    this.stream.destroy();
  }
}

export const QueryStatus = z.object({ status: z.string(), running: z.boolean() });
/** query-dirty-rate (QEMU 5.2+): `dirty-rate` in MiB/s once `status` is measured. */
export const QueryDirtyRate = z.object({
  status: z.enum(['unstarted', 'measuring', 'measured']),
  'dirty-rate': z.number().optional(),
  'calc-time': z.number().optional(),
  mode: z.string().optional(),
});
export const QueryMigrate = z.object({
  status: z.string().optional(),
  ram: z
    .object({
      transferred: z.number(),
      remaining: z.number(),
      total: z.number(),
      'dirty-sync-count': z.number(),
    })
    .partial()
    .optional(),
  'cpu-throttle-percentage': z.number().optional(),
  'total-time': z.number().optional(),
  downtime: z.number().optional(),
  'error-desc': z.string().optional(),
  'socket-address': z
    .array(z.object({ type: z.string().optional(), host: z.string().optional(), port: z.string() }))
    .optional(),
});
export type QueryMigrate = z.infer<typeof QueryMigrate>;
