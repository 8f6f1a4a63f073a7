// Starting the test S3 server (s3-server.ts) from a test or a benchmark: its endpoint, the
// environment the CLI needs to reach it (s3rver's own credentials), and a stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface S3Server {
  endpoint: string;
  /** Where s3rver keeps the buckets' objects (to damage one on purpose). */
  dir: string;
  /** What the CLI needs in its environment: s3rver's fixed credentials, a region. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./s3-server.ts', import.meta.url));

/** `verify`: every request's signature checked by the front (tests); off for benchmarks. */
export async function startS3(buckets: string[], verify = true): Promise<S3Server> {
  const dir = mkdtempSync(join(tmpdir(), 's3rver-'));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SCRIPT, ...(verify ? [] : ['--no-verify']), dir, ...buckets], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`the S3 server exited (${code}) before it listened`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    dir,
    env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' },
    stop: async () => {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
