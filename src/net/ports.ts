import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/**
 * Ports on 127.0.0.1 for a child process (a Restate node, a QEMU forward) to bind after we pick them.
 *
 * The pick and the bind are apart in time, so the port must be one nobody else is likely to take in
 * between. A port from `listen(0)` is from the kernel's ephemeral range, the same range every outgoing
 * connection draws its local port from: a three-node Restate cluster's nodes connecting to each other
 * took one node's port before that node bound it (CI: "failed binding to address 127.0.0.1:36643:
 * Address in use"). So the picks come from below that range, at random, each probed free for TCP and
 * UDP (the testbed's DRBD links are UDP between QEMUs), all distinct, and none handed out twice in
 * this process.
 */
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 12_000) return low;
  } catch {
    // Not Linux: the IANA dynamic range starts at 49152.
    return 49_152;
  }
  // A range that starts this low leaves no room below it: the picks may meet it (a Restate start's
  // retry is then the backstop).
  return 32_768;
}

const FLOOR = 10_000;

type Held = { close(): Promise<void> };

function probeTcp(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

function probeUdp(port: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => resolve(null));
    socket.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve(socket));
  });
}

async function probe(port: number): Promise<Held | null> {
  const tcp = await probeTcp(port);
  if (tcp === null) return null;
  const udp = await probeUdp(port);
  const held: Held = {
    close: async () => {
      await new Promise((r) => tcp.close(r));
      if (udp !== null) await new Promise<void>((r) => udp.close(() => r()));
    },
  };
  if (udp === null) {
    await held.close();
    return null;
  }
  return held;
}

export async function freePorts(count: number): Promise<number[]> {
  const ceiling = ephemeralLow();
  const held: Held[] = [];
  const ports: number[] = [];
  try {
    for (let attempts = 0; ports.length < count; attempts++) {
      if (attempts > 1_000) throw new Error(`no ${count} free ports on 127.0.0.1 below ${ceiling}`);
      const port = FLOOR + Math.floor(Math.random() * (ceiling - FLOOR));
      if (handedOut.has(port)) continue;
      const server = await probe(port);
      if (server === null) continue;
      // Held until all are picked, so one pick cannot return a port another just released.
      held.push(server);
      ports.push(port);
      handedOut.add(port);
    }
  } finally {
    await Promise.all(held.map((h) => h.close()));
  }
  return ports;
}
