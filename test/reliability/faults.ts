// `npm run faults`: kill -9 at random points of a small pipeline (module stages in child processes
// and inline, command stages, a sweep, folder outputs), then rerun; every kind of damage to the
// cache's state, then rerun; then the attacks of attacks.ts. Counted: wrong results (published
// outputs that differ from a clean run's, or a cache entry that claims content it does not hold),
// escapes (a value run as code, a write out of the workspace), orphans (stage processes alive
// after the pipeline is gone), crashes (a rerun that fails, hangs or prints a stack trace).
//   FAULT_KILLS (default 20), FAULT_SEED (default 1).
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../src/random.ts';
import { alive } from '../helpers/workspace.ts';
import { attacks, type AttackTally } from './attacks.ts';

const CLI = fileURLToPath(new URL('../../bin/pipeline.js', import.meta.url));

const FILES: Record<string, string> = {
  'package.json': '{"type":"module"}\n',
  'data/in.txt': '3 1 4 1 5 9 2 6\n',
  'stages/split.ts': `import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, inputs: ['x'], outputs: ['parts'], async run(ctx) {
  appendFileSync(join(ctx.workspace, 'pids.txt'), process.pid + '\\n');
  const nums = readFileSync(ctx.inputs.x as string, 'utf8').trim().split(/\\s+/);
  mkdirSync(ctx.outputs.parts);
  for (const [i, n] of nums.entries()) {
    writeFileSync(join(ctx.outputs.parts, 'p' + i + '.txt'), n + '\\n');
    await new Promise((r) => setTimeout(r, 40));
  }
} });
`,
  'stages/total.ts': `import { readFileSync, writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, inputs: ['xs'], outputs: ['total'], async run(ctx) {
  const xs = ctx.inputs.xs as string[];
  const sum = xs.reduce((s, f) => s + Number(readFileSync(f, 'utf8')), 0);
  await new Promise((r) => setTimeout(r, 100));
  writeFileSync(ctx.outputs.total, String(sum) + '\\n');
} });
`,
  'p.yaml': `stages:
  split:
    uses: stages/split.ts
    inputs: { x: data/in.txt }
    outs: { parts: out/parts }
  square:
    matrix: { k: [2, 3] }
    run: [sh, -c, 'echo $$ >> pids.txt; sleep 0.2; cat "$0"/*.txt | awk -v k="$2" "{ s += \\$1 ^ k } END { print s }" > "$1"', "\${stages.split.outputs.parts}", "\${outputs.o}", "\${matrix.k}"]
    outs: { o: null }
  total:
    uses: stages/total.ts
    executor: inline
    inputs: { xs: "\${stages.square.outputs.o}" }
    outs: { total: out/total.txt }
  report:
    shell: true
    run: echo $$ >> pids.txt; sleep 0.2; (echo total; cat \${stages.total.outputs.total}; ls out/parts | wc -l) > \${outputs.r}
    outs: { r: out/report.txt }
`,
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(dir: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: 'true' }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pipeline-faults-'));
  for (const [p, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  const old = Date.now() / 1000 - 60; // old enough to be trusted by signature (no-op snapshot)
  for (const p of Object.keys(FILES)) utimesSync(join(dir, p), old, old);
  return dir;
}

/** The published outputs, as text: what a user reads. */
function results(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${p.slice(dir.length)}: ${readFileSync(p, 'utf8')}`);
    }
  };
  if (existsSync(join(dir, 'out'))) walk(join(dir, 'out'));
  return out.join('');
}

const stackTrace = (s: string) => /^\s+at |internal error/m.test(s);

async function orphansOf(dir: string): Promise<number> {
  const file = join(dir, 'pids.txt');
  if (!existsSync(file)) return 0;
  const pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  for (let i = 0; i < 40 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  const left = pids.filter(alive);
  for (const pid of left) {
    let cmd = '?';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      // gone meanwhile
    }
    process.stderr.write(`  alive: pid ${pid}: ${cmd}\n`);
  }
  return left.length;
}

type Tally = AttackTally;

/** A rerun after a fault: it must succeed without a trace, publish the clean results, and hold only intact objects. */
function checkRerun(dir: string, reference: string, what: string, tally: Tally, verify = false): void {
  const r = verify ? cli(dir, 'run', 'p.yaml', '--verify') : cli(dir, 'run', 'p.yaml');
  if (r.code !== 0 || stackTrace(r.stderr)) {
    tally.crashes++;
    tally.notes.push(`${what}: rerun exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return;
  }
  if (results(dir) !== reference) {
    tally.wrong++;
    tally.notes.push(`${what}: published outputs differ from a clean run's`);
  }
  const v = cli(dir, 'verify');
  if (v.code !== 0) {
    tally.wrong++;
    tally.notes.push(`${what}: verify found damaged objects after the rerun: ${v.stdout.trim()}`);
  }
}

async function killPoints(n: number, r: Random, reference: string, coldMs: number, tally: Tally): Promise<void> {
  for (let i = 0; i < n; i++) {
    const dir = workspace();
    try {
      const at = Math.round(r.float() * coldMs);
      const child = spawn(process.execPath, [CLI, 'run', 'p.yaml'], { cwd: dir, env: { ...process.env, CI: 'true' }, detached: true, stdio: 'ignore' });
      const exited = new Promise((res) => child.on('close', res));
      await new Promise((res) => setTimeout(res, at));
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // it had finished
      }
      await exited;
      const left = await orphansOf(dir);
      if (left) {
        tally.orphans += left;
        tally.notes.push(`kill at ${at} ms: ${left} stage processes outlived the pipeline`);
      }
      checkRerun(dir, reference, `kill at ${at} ms`, tally);
      const after = await orphansOf(dir);
      if (after) {
        tally.orphans += after;
        tally.notes.push(`kill at ${at} ms: ${after} stage processes alive after the rerun`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk : (p: string) => out.push(p))(join(d, e.name));
  };
  walk(dir);
  return out.sort();
}

/** Rewrites a file in place keeping its size and times (what only a content check can see). */
function sameSizeRewrite(f: string): void {
  const st = statSync(f);
  const buf = readFileSync(f);
  for (let i = 0; i < buf.length; i++) buf[i] = buf[i] === 0x30 ? 0x31 : 0x30;
  writeFileSync(f, buf);
  utimesSync(f, st.atime, st.mtime);
}

type Damage = [string, (cache: string, r: Random) => void, boolean?];

const pick = <T,>(r: Random, xs: T[]): T[] => (xs.length ? [xs[r.int(xs.length)]!] : []);

const DAMAGE: Damage[] = [
  ['object truncated, mtime put back', (c, r) => pick(r, filesUnder(join(c, 'objects'))).forEach((f) => { const st = statSync(f); truncateSync(f, Math.floor(st.size / 2)); utimesSync(f, st.atime, st.mtime); })],
  ['object deleted', (c, r) => pick(r, filesUnder(join(c, 'objects'))).forEach((f) => rmSync(f))],
  ['object rewritten at the same size (run --verify)', (c) => filesUnder(join(c, 'objects')).forEach(sameSizeRewrite), true],
  ['object replaced by a folder', (c, r) => pick(r, filesUnder(join(c, 'objects'))).forEach((f) => { rmSync(f); mkdirSync(f); })],
  ['manifests emptied', (c) => filesUnder(join(c, 'manifests')).forEach((f) => writeFileSync(f, '[]'))],
  ['manifests garbage', (c) => filesUnder(join(c, 'manifests')).forEach((f) => writeFileSync(f, '{not json'))],
  ['manifests deleted', (c) => rmSync(join(c, 'manifests'), { recursive: true, force: true })],
  ['run records {}', (c) => [...filesUnder(join(c, 'runs')), ...filesUnder(join(c, 'latest'))].forEach((f) => writeFileSync(f, '{}'))],
  ['run records truncated', (c) => [...filesUnder(join(c, 'runs')), ...filesUnder(join(c, 'latest'))].forEach((f) => truncateSync(f, Math.floor(statSync(f).size / 2)))],
  ['run records edited plausibly', (c) => [...filesUnder(join(c, 'runs')), ...filesUnder(join(c, 'latest'))].forEach((f) => writeFileSync(f, readFileSync(f, 'utf8').replace(/"size":(\d)/g, '"size":9$1')))],
  ['run records deleted', (c) => rmSync(join(c, 'runs'), { recursive: true, force: true })],
  ['latest-run index garbage', (c) => filesUnder(join(c, 'latest')).forEach((f) => writeFileSync(f, '\u0000\u0001'))],
  ['latest-run index swapped keys', (c) => filesUnder(join(c, 'latest')).forEach((f) => writeFileSync(f, readFileSync(f, 'utf8').replace(/"key":"([0-9a-f])/g, '"key":"0'))) ],
  ['published-outputs index garbage', (c) => filesUnder(join(c, 'published')).forEach((f) => writeFileSync(f, '[]'))],
  ['snapshot {}', (c) => filesUnder(join(c, 'snapshots')).forEach((f) => writeFileSync(f, '{}'))],
  ['snapshot edited plausibly', (c) => filesUnder(join(c, 'snapshots')).forEach((f) => writeFileSync(f, readFileSync(f, 'utf8').replace('"stages":[', '"stages":["ghost",')))],
  ['spec memos garbage', (c) => filesUnder(join(c, 'specs')).forEach((f) => writeFileSync(f, '{"value":{}}'))],
  ['digest state garbage', (c) => writeFileSync(join(c, 'state.json'), '{"version":1,"files":5}')],
  ['digest state edited plausibly', (c) => writeFileSync(join(c, 'state.json'), readFileSync(join(c, 'state.json'), 'utf8').replace(/"[0-9a-f]{32}"/g, '"0123456789abcdef0123456789abcdef"'))],
  ['code closures garbage', (c) => filesUnder(join(c, 'closures')).forEach((f) => writeFileSync(f, '{"files":5}'))],
  ['code closures listing other digests', (c) => filesUnder(join(c, 'closures')).forEach((f) => writeFileSync(f, readFileSync(f, 'utf8').replace(/"[0-9a-f]{32}"/g, '"0123456789abcdef0123456789abcdef"')))],
  ['compiled modules appended to', (c) => filesUnder(join(c, 'modules')).filter((f) => f.endsWith('.mjs')).forEach((f) => appendFileSync(f, '\nexport const x = 1;\n'))],
  ['compiled modules truncated', (c) => filesUnder(join(c, 'modules')).filter((f) => f.endsWith('.mjs')).forEach((f) => truncateSync(f, 10))],
  ['compiled module integrity lists deleted', (c) => filesUnder(join(c, 'modules')).filter((f) => f.endsWith('integrity.json')).forEach((f) => rmSync(f))],
  ['view file deleted', (c, r) => pick(r, filesUnder(join(c, 'views'))).forEach((f) => rmSync(f))],
  ['view file added', (c) => filesUnder(join(c, 'views')).slice(0, 1).forEach((f) => writeFileSync(join(dirname(f), 'extra.txt'), 'x'))],
  ['view file written through its hardlink', (c) => filesUnder(join(c, 'views')).forEach((f) => appendFileSync(f, '7\n'))],
  ['stale lock of a dead process', (c) => { mkdirSync(join(c, 'lock'), { recursive: true }); writeFileSync(join(c, 'lock', 'owner.json'), JSON.stringify({ pid: 999999, host: require_hostname(), since: 'then', command: 'x' })); }],
  ['tmp leftovers', (c) => { mkdirSync(join(c, 'tmp', 'x-1-abc', 'out'), { recursive: true }); writeFileSync(join(c, 'tmp', 'x-1-abc', 'out', 'f'), 'half'); }],
];

function require_hostname(): string {
  return spawnSync('hostname', { encoding: 'utf8' }).stdout.trim();
}

function corruptions(r: Random, template: string, reference: string, tally: Tally): number {
  for (const [what, hurt, verify] of DAMAGE) {
    const dir = mkdtempSync(join(tmpdir(), 'pipeline-faults-c-'));
    try {
      cpSync(template, dir, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
      // (cpSync does not keep hardlinks: views are rebuilt links of objects in the copy.)
      hurt(join(dir, 'cache'), r);
      checkRerun(dir, reference, what, tally, verify);
      checkRerun(dir, reference, `${what} (second rerun)`, tally);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return DAMAGE.length;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seed = Number(process.env.FAULT_SEED ?? 1);
  const kills = Number(process.env.FAULT_KILLS ?? 20);
  const r = new Random(seed);
  const t0 = Date.now();
  const ref = workspace();
  const cold = Date.now();
  const first = cli(ref, 'run', 'p.yaml');
  const coldMs = Date.now() - cold;
  if (first.code !== 0) throw new Error(`the clean run failed: ${first.stderr}`);
  cli(ref, 'run', 'p.yaml'); // writes the no-op snapshot
  const reference = results(ref);
  process.stderr.write(`clean run ${coldMs} ms; reference:\n${reference}`);
  const tally: Tally = { wrong: 0, escapes: 0, orphans: 0, crashes: 0, notes: [] };
  await killPoints(kills, r, reference, coldMs, tally);
  const c = corruptions(r, ref, reference, tally);
  rmSync(ref, { recursive: true, force: true });
  const a = await attacks(r, tally);
  for (const n of tally.notes) process.stderr.write(`  ${n}\n`);
  process.stderr.write(`seed ${seed}, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  process.stdout.write(`faults: ${kills} kill points, ${c} corruptions, ${a} attacks, ${tally.wrong} wrong results, ${tally.escapes} escapes, ${tally.orphans} orphans, ${tally.crashes} crashes\n`);
  process.exitCode = tally.wrong + tally.escapes + tally.orphans + tally.crashes ? 1 : 0;
}
