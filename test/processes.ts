import { spawn } from 'node:child_process';

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
