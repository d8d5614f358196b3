import { type ChildProcess, spawn } from 'node:child_process';

/** Runs the built CLI; each `when` entry acts once stdout has shown its text. */
export function cli(
  args: string[],
  when: [string, (kill: (signal?: NodeJS.Signals) => void) => void][] = [],
) {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const pending = [...when];
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    while (pending.length > 0 && stdout.includes(pending[0]![0])) {
      pending.shift()![1]((signal = 'SIGINT') => child.kill(signal));
    }
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
}

/** A `drbd-migrate worker` process (the built CLI), once it listens. */
export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  exited: Promise<void>;
}

export function startWorker(args: string[]): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', 'worker', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /worker for cluster \S+ at http:\/\/127\.0\.0\.1:(\d+) \(pid (\d+)\)/.exec(out);
      if (m) resolve({ child, pid: Number(m[2]), port: Number(m[1]), exited });
    });
    child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${err}`)));
  });
}
