// The attacks of `npm run faults` (after its kill points and damage): what an attacker or a careless
// user does to a workspace, each in a fresh one, counted as wrong results (a stale or altered result
// served), escapes (a value run as code, a write outside the workspace), orphans (a process alive
// after its stage) and crashes (a hang, exit 70, a stack trace). Kinds: shell contexts, code the key
// could miss, timestamp tricks, a full disk, special files as inputs, processes leaving their group,
// and the rest of trust round 3 (a linked workspace, prototype names, deep metrics, init through a
// link, the caller's environment); a hostile remote (trust round 4, hostile-remote.ts).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Random } from '../../src/random.ts';
import { outputStage } from '../helpers/fixtures.ts';
import { alive } from '../helpers/workspace.ts';
import { hostileRemote } from './hostile-remote.ts';

const CLI = fileURLToPath(new URL('../../bin/pipeline.js', import.meta.url));

export interface AttackTally {
  wrong: number;
  escapes: number;
  orphans: number;
  crashes: number;
  notes: string[];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function cli(dir: string, args: string[], env: Record<string, string> = {}, timeout = 60_000): Run {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: 'true', ...env }, timeout });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - t0 };
}

function workspace(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pipeline-attack-'));
  for (const [p, text] of Object.entries({ 'package.json': '{"type":"module"}\n', ...files })) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Files in the workspace (and beside it) an escaped value would have made. */
const escapedMarks = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('ESCAPED'));

const crashed = (r: Run) => r.code === null || r.code === 70 || /^\s+at |internal error/m.test(r.stderr);

/** Hostile values: each would create an ESCAPED file if run as shell. */
function payload(r: Random): string {
  const forms = ['$(touch ESCAPED1)', '`touch ESCAPED2`', '"; touch ESCAPED3; echo "', "'; touch ESCAPED4; echo '", '\n touch ESCAPED5 \n', ')$(touch ESCAPED6)(', '${IFS}$(touch${IFS}ESCAPED7)', '\\"$(touch ESCAPED8)\\"'];
  return Array.from({ length: 2 + r.int(3) }, () => forms[r.int(forms.length)]).join(' x ');
}

/** Shell places a value can land in, each a stage writing the value to its output. */
const SHELL_PLACES: Record<string, string> = {
  'env sh -c': `run: [env, sh, -c, 'printf "%s" \${params.v} > "$0"', "\${outputs.o}"]`,
  'timeout bash -c': `run: [timeout, '30', bash, -c, 'printf "%s" "\${params.v}" > "$0"', "\${outputs.o}"]`,
  'nice sh -e -c, single quotes': `run: [nice, -n, '5', sh, -e, -c, "printf '%s' '\${params.v}' > \\"$0\\"", "\${outputs.o}"]`,
  'stdbuf sh -c, $(...) in double quotes': `run: [stdbuf, -oL, sh, -c, 'printf "%s" "$(printf "%s" \${params.v})" > "$0"', "\${outputs.o}"]`,
  'shell line, backticks': 'shell: true\n    run: printf "%s" "`printf "%s" ${params.v}`" > "${outputs.o}"',
  'shell line, here-document': 'shell: true\n    run: |\n      cat > "${outputs.o}" <<DOC\n      ${params.v}\n      DOC',
  "shell line, quoted here-document": "shell: true\n    run: |\n      cat > \"${outputs.o}\" <<'DOC'\n      ${params.v}\n      DOC",
  'shell line, comment': 'shell: true\n    run: |\n      printf ok > "${outputs.o}" # ${params.v}\n      true',
  "bash $'...'": `run: [bash, -c, "printf '%s' $'\${params.v}' > \\"$0\\"", "\${outputs.o}"]`,
};

async function shellContexts(r: Random, t: AttackTally): Promise<number> {
  let n = 0;
  for (const [name, body] of Object.entries(SHELL_PLACES)) {
    const v = payload(r).replace(/\n/g, name.includes('here-document') ? '\n' : ' ');
    const dir = workspace({ 'p.yaml': `params:\n  v: x\nstages:\n  a:\n    ${body}\n    outs: { o: out.txt }\n` });
    try {
      const run = cli(dir, ['run', 'p.yaml', '--set', `v=${JSON.stringify(v)}`]);
      n++;
      if (escapedMarks(dir).length) {
        t.escapes++;
        t.notes.push(`shell, ${name}: the value ran as code (${escapedMarks(dir).join(', ')})`);
      }
      if (crashed(run)) {
        t.crashes++;
        t.notes.push(`shell, ${name}: exit ${run.code}: ${run.stderr.slice(-300)}`);
      } else if (run.code === 0) {
        const got = readFileSync(join(dir, 'out.txt'), 'utf8');
        const want = name.includes('comment') ? 'ok' : name.includes('here-document') ? `${v}\n` : v;
        if (got !== want) {
          t.wrong++;
          t.notes.push(`shell, ${name}: the value arrived altered: ${JSON.stringify(got.slice(0, 80))}`);
        }
      } else if (!/q\.yaml|p\.yaml:\d+:\d+: /.test(run.stderr)) {
        t.crashes++;
        t.notes.push(`shell, ${name}: refused without saying where: ${run.stderr.slice(-300)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return n;
}

const stage = outputStage;

/** Code a stage uses, in every form: [name, files, the file edited, its new text, the output wanted after]. */
const CODE_FORMS: Array<[string, Record<string, string>, string, string, string]> = [
  ['dynamic import of a template literal', { 'stages/s.ts': stage('  const { v } = await import(`./lib/h.ts`);\n  writeFileSync(ctx.outputs.o, v);'), 'stages/lib/h.ts': "export const v = '1';\n" }, 'stages/lib/h.ts', "export const v = '2';\n", '2'],
  ['extensionless import of a .tsx', { 'stages/s.ts': stage('  writeFileSync(ctx.outputs.o, v);', "import { v } from './lib/h';"), 'stages/lib/h.tsx': "export const v: string = '1';\n" }, 'stages/lib/h.tsx', "export const v: string = '2';\n", '2'],
  ['import of JSON', { 'stages/s.ts': stage('  writeFileSync(ctx.outputs.o, d.v);', "import d from './lib/d.json';"), 'stages/lib/d.json': '{"v":"1"}' }, 'stages/lib/d.json', '{"v":"2"}', '2'],
  ['import after a string holding /*', { 'stages/s.ts': stage('  writeFileSync(ctx.outputs.o, v);', "const a = '/*';\nimport { v } from './lib/h.ts';\nconst b = '*/';\nvoid a; void b;"), 'stages/lib/h.ts': "export const v = '1';\n" }, 'stages/lib/h.ts', "export const v = '2';\n", '2'],
  ['file read by new URL(..., import.meta.url)', { 'stages/s.ts': stage("  writeFileSync(ctx.outputs.o, readFileSync(new URL('./lib/k.txt', import.meta.url), 'utf8'));", "import { readFileSync } from 'node:fs';"), 'stages/lib/k.txt': '1' }, 'stages/lib/k.txt', '2', '2'],
  ['linked package', { 'stages/s.ts': stage('  writeFileSync(ctx.outputs.o, v);', "import { v } from 'linkedlib';"), 'lib/package.json': '{"name":"linkedlib","version":"1.0.0","type":"module","main":"i.js"}', 'lib/i.js': "export const v = '1';\n" }, 'lib/i.js', "export const v = '2';\n", '2'],
];

async function codeForms(t: AttackTally): Promise<number> {
  for (const [name, files, edited, text, want] of CODE_FORMS) {
    const dir = workspace({ ...files, 'p.yaml': 'stages:\n  s:\n    uses: stages/s.ts\n    outs: { o: out.txt }\n' });
    try {
      if (files['lib/package.json']) {
        mkdirSync(join(dir, 'node_modules'));
        symlinkSync('../lib', join(dir, 'node_modules', 'linkedlib'));
      }
      const first = cli(dir, ['run', 'p.yaml']);
      writeFileSync(join(dir, edited), text);
      const second = cli(dir, ['run', 'p.yaml']);
      if (crashed(first) || crashed(second) || first.code || second.code) {
        t.crashes++;
        t.notes.push(`code, ${name}: exit ${first.code}/${second.code}: ${(first.stderr + second.stderr).slice(-300)}`);
      } else if (readFileSync(join(dir, 'out.txt'), 'utf8') !== want) {
        t.wrong++;
        t.notes.push(`code, ${name}: the old result was served after an edit`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return CODE_FORMS.length;
}

/** Waits until every given file's ctime is past the engine's racy window, as a real workspace's is. */
async function settle(files: string[]): Promise<void> {
  const newest = Math.max(...files.map((f) => statSync(f).ctimeMs));
  const ms = newest + 1100 - Date.now();
  if (ms > 0) await wait(ms);
}

async function timestampTricks(t: AttackTally): Promise<number> {
  const spec = `stages:\n  copy:\n    run: [sh, -c, 'touch started; while [ ! -e go ]; do sleep 0.02; done; cat in.txt > "$0"; touch read; while [ ! -e back ]; do sleep 0.02; done', "\${outputs.o}"]\n    deps: [in.txt]\n    outs: { o: out.txt }\n`;
  const dir = workspace({ 'in.txt': 'AAAA', 'p.yaml': spec, go: '', back: '' });
  try {
    await settle([join(dir, 'in.txt'), join(dir, 'p.yaml')]);
    cli(dir, ['run', 'p.yaml']);
    // 1. A same-size rewrite with its mtime put back (cp -p).
    const st = statSync(join(dir, 'in.txt'));
    writeFileSync(join(dir, 'in.txt'), 'BBBB');
    utimesSync(join(dir, 'in.txt'), st.atime, st.mtime);
    const one = cli(dir, ['run', 'p.yaml']);
    if (crashed(one) || readFileSync(join(dir, 'out.txt'), 'utf8') !== 'BBBB') {
      t.wrong++;
      t.notes.push('timestamps: a same-size rewrite with its mtime put back was served the old result');
    }
    // 2. Edited while the stage runs, then put back: nothing stored under the old key.
    for (const f of ['go', 'back', 'started', 'read']) rmSync(join(dir, f), { force: true });
    writeFileSync(join(dir, 'in.txt'), 'AAAA');
    await settle([join(dir, 'in.txt')]);
    const kept = statSync(join(dir, 'in.txt'));
    const child = spawn(process.execPath, [CLI, 'run', 'p.yaml'], { cwd: dir, env: { ...process.env, CI: 'true' }, stdio: 'ignore' });
    const done = new Promise<number | null>((res) => child.on('close', res));
    while (!existsSync(join(dir, 'started'))) await wait(20);
    writeFileSync(join(dir, 'in.txt'), 'CCCC');
    writeFileSync(join(dir, 'go'), '');
    while (!existsSync(join(dir, 'read'))) await wait(20);
    writeFileSync(join(dir, 'in.txt'), 'AAAA');
    utimesSync(join(dir, 'in.txt'), kept.atime, kept.mtime);
    writeFileSync(join(dir, 'back'), '');
    await done;
    const after = cli(dir, ['run', 'p.yaml']);
    if (crashed(after) || readFileSync(join(dir, 'out.txt'), 'utf8') !== 'AAAA') {
      t.wrong++;
      t.notes.push('timestamps: an input edited during its stage and put back was served the mid-run content');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return 2;
}

async function fullDisk(t: AttackTally): Promise<number> {
  const small = mkdtempSync(join(tmpdir(), 'pipeline-attack-small-'));
  if (process.getuid?.() !== 0 || spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]).status !== 0) {
    rmSync(small, { recursive: true, force: true });
    t.notes.push('full disk: skipped (needs root to mount a small tmpfs)');
    return 0;
  }
  const dir = workspace({ 'p.yaml': `stages:\n  a:\n    run: [sh, -c, 'head -c 3000000 /dev/zero; echo a > "$0"', "\${outputs.o}"]\n    outs: { o: out.txt }\n` });
  try {
    const cache = join(small, 'cache');
    const full = cli(dir, ['run', 'p.yaml', '--cache-dir', cache]);
    if (crashed(full) || !/disk holding the cache is full/.test(full.stderr)) {
      t.crashes++;
      t.notes.push(`full disk: exit ${full.code}: ${full.stderr.slice(0, 300)}`);
    }
    writeFileSync(join(dir, 'p.yaml'), `stages:\n  a:\n    run: [sh, -c, 'echo a > "$0"', "\${outputs.o}"]\n    outs: { o: out.txt }\n`);
    const gc = cli(dir, ['gc', '--cache-dir', cache]);
    const again = cli(dir, ['run', 'p.yaml', '--cache-dir', cache]);
    if (gc.code !== 0 || again.code !== 0 || readFileSync(join(dir, 'out.txt'), 'utf8') !== 'a\n') {
      t.crashes++;
      t.notes.push(`full disk: the cache was not usable after (gc ${gc.code}, run ${again.code}): ${(gc.stderr + again.stderr).slice(0, 300)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    spawnSync('umount', [small]);
    rmSync(small, { recursive: true, force: true });
  }
  return 1;
}

async function specialFiles(t: AttackTally): Promise<number> {
  let n = 0;
  for (const kind of ['fifo', 'dev/zero', 'fifo in a folder']) {
    const dir = workspace({});
    try {
      if (kind === 'fifo') spawnSync('mkfifo', [join(dir, 'dep')]);
      else if (kind === 'dev/zero') symlinkSync('/dev/zero', join(dir, 'dep'));
      else {
        mkdirSync(join(dir, 'dep'));
        spawnSync('mkfifo', [join(dir, 'dep', 'p')]);
      }
      writeFileSync(join(dir, 'p.yaml'), `stages:\n  a:\n    run: [sh, -c, 'echo a > "$0"', "\${outputs.o}"]\n    deps: [dep]\n    outs: { o: out.txt }\n`);
      for (const cmd of ['status', 'run']) {
        n++;
        const r = cli(dir, [cmd, 'p.yaml'], {}, 20_000);
        if (crashed(r) || !/is a (FIFO|character device)/.test(r.stdout + r.stderr)) {
          t.crashes++;
          t.notes.push(`special file, ${kind}, ${cmd}: exit ${r.code} after ${r.ms} ms: ${r.stderr.slice(-200)}`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return n;
}

async function escapedProcesses(t: AttackTally): Promise<number> {
  const dir = workspace({
    'detach.cjs': "const c = require('child_process').spawn('sleep', ['60'], { detached: true, stdio: 'inherit' });\nrequire('fs').writeFileSync('node.pid', String(c.pid));\nc.unref();\n",
    'p.yaml': "stages:\n  setsid:\n    run: [sh, -c, 'setsid sleep 60 & echo $! > setsid.pid']\n  python:\n    run: [python3, -c, \"import subprocess; p = subprocess.Popen(['sleep', '60'], start_new_session=True); open('python.pid', 'w').write(str(p.pid))\"]\n  node:\n    run: [node, detach.cjs]\n",
  });
  try {
    const r = cli(dir, ['run', 'p.yaml'], {}, 120_000);
    if (crashed(r) || r.ms > 20_000) {
      t.crashes++;
      t.notes.push(`escaped processes: the run took ${r.ms} ms (exit ${r.code})`);
    }
    await wait(300);
    for (const f of ['setsid.pid', 'python.pid', 'node.pid']) {
      const pid = existsSync(join(dir, f)) ? Number(readFileSync(join(dir, f), 'utf8')) : 0;
      if (pid && alive(pid)) {
        t.orphans++;
        t.notes.push(`escaped processes: ${f.replace('.pid', '')}'s process ${pid} outlived its stage`);
        process.kill(pid, 'SIGKILL');
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return 3;
}

async function theRest(t: AttackTally): Promise<number> {
  let n = 0;
  const note = (cond: boolean, bucket: 'wrong' | 'escapes' | 'crashes', what: string) => {
    n++;
    if (!cond) return;
    t[bucket]++;
    t.notes.push(what);
  };
  const spec = `stages:\n  a:\n    run: [sh, -c, 'echo hi > "$0"; printenv LC_ALL >> "$0" || true', "\${outputs.o}"]\n    outs: { o: out.txt }\n`;
  const dir = workspace({ 'p.yaml': spec });
  const links = mkdtempSync(join(tmpdir(), 'pipeline-attack-links-'));
  try {
    symlinkSync(dir, join(links, 'ws'));
    cli(join(links, 'ws'), ['run', 'p.yaml'], { LC_ALL: 'de_DE.UTF-8' });
    note(readFileSync(join(dir, 'out.txt'), 'utf8') !== 'hi\n', 'wrong', 'environment: LC_ALL reached the stage unkeyed');
    writeFileSync(join(dir, 'p.yaml'), spec.replace('echo hi', 'echo hello'));
    const direct = cli(dir, ['run', 'p.yaml']);
    note(direct.code !== 0, 'crashes', `linked workspace: the same workspace by its real path failed: ${direct.stderr.slice(-200)}`);
    for (const set of ['__proto__.x=1', 'constructor=1']) {
      const r = cli(dir, ['run', 'p.yaml', '--set', set]);
      note(r.code !== 2 || crashed(r), 'crashes', `--set ${set}: exit ${r.code}`);
    }
    writeFileSync(join(dir, 'mk.cjs'), "require('fs').mkdirSync(process.argv[2]); require('fs').writeFileSync(process.argv[2] + '/m.json', '{\"a\":1,\"d\":' + '{\"x\":'.repeat(50000) + '1' + '}'.repeat(50000) + '}');\n");
    writeFileSync(join(dir, 'p.yaml'), 'stages:\n  m:\n    run: [node, mk.cjs, "${outputs.o}"]\n    outs: { o: null }\n    metrics: [o/m.json]\n');
    cli(dir, ['run', 'p.yaml']);
    const exp = cli(dir, ['exp', 'show', 'p.yaml']);
    note(exp.code !== 0 || crashed(exp), 'crashes', `exp show on metrics nested 50,000 deep: exit ${exp.code}`);
    const outside = mkdtempSync(join(tmpdir(), 'pipeline-attack-out-'));
    mkdirSync(join(dir, 'proj'));
    symlinkSync(outside, join(dir, 'proj', 'stages'));
    cli(dir, ['init', 'proj']);
    note(readdirSync(outside).length > 0, 'escapes', 'init wrote through a symlinked stages/ out of the project');
    rmSync(outside, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(links, { recursive: true, force: true });
  }
  return n;
}

/** Every attack once; returns how many were made. */
export async function attacks(r: Random, t: AttackTally): Promise<number> {
  let n = 0;
  for (const run of [() => shellContexts(r, t), () => codeForms(t), () => timestampTricks(t), () => fullDisk(t), () => specialFiles(t), () => escapedProcesses(t), () => theRest(t), () => hostileRemote(t)]) n += await run();
  return n;
}
