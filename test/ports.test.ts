import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../src/net/ports.js';

const bindTcp = (port: number) =>
  new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve()));
  });
const bindUdp = (port: number) =>
  new Promise<void>((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind({ port, address: '127.0.0.1', exclusive: true }, () => s.close(() => resolve()));
  });

describe('freePorts', () => {
  it('picks distinct ports below the ephemeral range, free for TCP and UDP, never the same twice', async () => {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
    const first = await freePorts(12);
    const second = await freePorts(12);
    const all = [...first, ...second];
    expect(new Set(all).size).toBe(all.length);
    for (const port of all) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(low);
      await bindTcp(port);
      await bindUdp(port);
    }
  });
});
