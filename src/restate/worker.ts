import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { EvacuationInput } from '../../machines/index.js';
import { evacuationObject, runLogObject } from './evacuation.js';
import { nodeObject } from './nodes.js';
import { type InstanceObjectOptions, instanceObject } from './object.js';
import { restate } from './sdk.js';

export interface Worker {
  /** Where Restate reaches it: register this (or a balancer in front of several) as a deployment. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface WorkerOptions extends InstanceObjectOptions {
  /** Default: a free port. */
  port?: number;
  host?: string;
  /** An evacuation's input as this cluster runs it (a cluster file's deadlines added). */
  prepareEvacuation?: (input: EvacuationInput) => EvacuationInput;
  /**
   * Restate's public keys (`publickeyv1_…`) whose signature a request must carry: any other request
   * is refused. Without, the worker serves whoever reaches it.
   */
  identityKeys?: string[];
}

/**
 * Serves the handlers over HTTP/2 for a Restate server to call. A worker keeps nothing of its own:
 * the journal is Restate's, so any number of them may serve one cluster, and one may die at any time.
 */
export async function serveWorker(options: WorkerOptions): Promise<Worker> {
  const handler = restate.createEndpointHandler({
    ...(options.identityKeys?.length ? { identityKeys: options.identityKeys } : {}),
    services: [
      instanceObject(options),
      nodeObject(),
      runLogObject(),
      evacuationObject({
        cluster: options.cluster,
        effects: options.effects,
        ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
        ...(options.prepareEvacuation === undefined ? {} : { prepare: options.prepareEvacuation }),
      }),
    ],
  });
  const server: Http2Server = createServer(handler);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const sessions = new Set<import('node:http2').ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
