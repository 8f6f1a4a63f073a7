// Test workspaces: a temp folder with stage modules and specs, and the real CLI run on it.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RACY_MS } from '../../src/cache/signature.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'bin', 'pipeline.js');
/** How a stage module outside this repository imports the stage API. */
export const STAGE_API = 'rrtn-pipeline';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Stage id -> what the run said of it (done, cached, FAILED, ...). */
  states: Map<string, string>;
}

export class Workspace {
  readonly dir: string;
  /** How long one CLI call may take (training on a software GPU under a parallel test file takes longer). */
  timeoutMs = 120_000;
  constructor(files: Record<string, string> = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'pipeline-test-'));
    this.write('package.json', '{"type":"module"}\n');
    for (const [p, c] of Object.entries(files)) this.write(p, c);
  }
  path(p: string): string {
    return join(this.dir, p);
  }
  write(p: string, content: string): void {
    mkdirSync(dirname(this.path(p)), { recursive: true });
    writeFileSync(this.path(p), content);
  }
  read(p: string): string {
    return readFileSync(this.path(p), 'utf8');
  }
  exists(p: string): boolean {
    return existsSync(this.path(p));
  }
  run(...args: string[]): CliResult {
    return this.runEnv({}, ...args);
  }
  /** Runs the CLI with some environment variables set (a value of undefined: unset). */
  runEnv(vars: Record<string, string | undefined>, ...args: string[]): CliResult {
    const env: Record<string, string | undefined> = { ...process.env, CI: 'true', ...vars };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: this.dir, encoding: 'utf8', env, timeout: this.timeoutMs });
    return result(r.status ?? exitStatus(r.signal), r.stdout, r.stderr);
  }
  /** Starts the CLI without waiting (own process group, so a test can kill it and its children). */
  start(...args: string[]) {
    return this.startEnv({}, ...args);
  }
  startEnv(vars: Record<string, string>, ...args: string[]) {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: this.dir, env: { ...process.env, CI: 'true', ...vars }, detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const done = new Promise<CliResult>((res) => child.on('close', (code, sig) => res(result(code ?? exitStatus(sig), stdout, stderr))));
    return { child, done, output: () => stdout + stderr };
  }
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The status a shell reports for a process a signal ended: 128 + its number (130 for SIGINT). */
export function exitStatus(sig: NodeJS.Signals | null): number {
  return sig ? 128 + osConstants.signals[sig] : -1;
}

function result(code: number, stdout: string, stderr: string): CliResult {
  const states = new Map<string, string>();
  for (const m of (stdout + stderr).matchAll(/^\[\s*[\d.]+s\] [✔✖•] (\S+) (\S+)/gm)) states.set(m[1]!, m[2]!);
  return { code, stdout, stderr, states };
}

/** Stage ids the run executed (not cached), sorted. */
export function ran(r: CliResult): string[] {
  return [...r.states].filter(([, s]) => s === 'done').map(([id]) => id).sort();
}

/** True while a process with this pid exists and runs (a zombie waiting to be reaped has ended). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return true; // no /proc: the signal answered
  }
}

export async function waitFor(pred: () => boolean, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}


/**
 * Makes files as old as a real workspace's: their mtime put a minute back and, since no call can
 * set a ctime, a wait until every ctime is past the engine's racy window (a signature taken
 * within a second of a file's times is never trusted: see src/cache/signature.ts).
 */
export async function aged(paths: string[]): Promise<void> {
  const t = Date.now() / 1000 - 60;
  for (const p of paths) utimesSync(p, t, t);
  const newest = Math.max(...paths.map((p) => statSync(p).ctimeMs));
  const wait = newest + RACY_MS + 20 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
