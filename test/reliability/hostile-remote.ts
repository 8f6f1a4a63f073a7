// The "hostile remote" family of `npm run faults` (trust round 4): a folder remote written by an
// attacker, or by a teammate whose key the victim trusts but whose machine was taken. Each attack
// starts from a copy of a genuine remote (one run, pushed by the trusted teammate), changes it, and
// then the victim (an empty cache, trusting the teammate) runs `pull`, `run --pull`, `remote verify`
// and `exp show`. Counted: wrong results (a published output that is not the genuine one), escapes
// (a file written outside the workspace, a control character reaching the terminal), crashes (a
// hang, exit 70, a stack trace).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirDigest } from '../../src/cache/digests.ts';
import { hashBytes } from '../../src/cache/hash.ts';
import { sealedText } from '../../src/fsutil.ts';
import { onlyRecord, putObject, signAs } from '../helpers/forge.ts';
import type { AttackTally } from './attacks.ts';

const CLI = fileURLToPath(new URL('../../bin/pipeline.js', import.meta.url));

const SPEC = `stages:
  make:
    run: [sh, -c, 'mkdir -p "$0" && echo genuine > "$0/f.txt" && echo "{\\"accuracy\\": 0.61}" > "$1"', '\${outputs.data}', '\${outputs.metrics}']
    outs: { data: out, metrics: metrics.json }
    metrics: [metrics]
`;

interface Run {
  code: number | null;
  out: string;
}

function cli(dir: string, cfg: string, args: string[]): Run {
  // Killed if it hangs: a pull stuck in a read would not answer SIGTERM.
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: 'true', XDG_CONFIG_HOME: cfg }, timeout: 30_000, killSignal: 'SIGKILL' });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

type Attack = [string, (remote: string, ctx: { key: string; rec: Record<string, unknown>; trusted: string; attacker: string; outside: string }) => Promise<void> | void];

const recordPath = (remote: string, key: string) => join(remote, 'runs', `${key}.json`);

/** A folder output pointing at a hostile file list, signed by the trusted key. */
async function withManifest(remote: string, ctx: { key: string; rec: Record<string, unknown>; trusted: string }, paths: string[]): Promise<void> {
  const bytes = Buffer.from('owned\n');
  const d = await putObject(remote, bytes);
  const manifest = paths.map((path) => ({ path, size: bytes.length, digest: d }));
  const md = (await dirDigest(manifest as never)).digest;
  mkdirSync(join(remote, 'manifests'), { recursive: true });
  writeFileSync(join(remote, 'manifests', `${md}.json`), JSON.stringify(manifest));
  const outputs = ctx.rec.outputs as Record<string, unknown>;
  writeFileSync(recordPath(remote, ctx.key), signAs(ctx.trusted, { ...ctx.rec, outputs: { ...outputs, data: { kind: 'dir', digest: md, size: bytes.length * paths.length, files: paths.length } } }));
}

async function otherMetrics(remote: string, ctx: { rec: Record<string, unknown> }): Promise<Record<string, unknown>> {
  const fake = Buffer.from('{"accuracy": 0.99}\n');
  const digest = await putObject(remote, fake);
  const outputs = ctx.rec.outputs as Record<string, { digest: string; size: number }>;
  return { ...ctx.rec, outputs: { ...outputs, metrics: { ...outputs.metrics!, digest, size: fake.length } } };
}

const packOf = (remote: string) => join(remote, 'packs', readdirSync(join(remote, 'packs')).find((f) => f.endsWith('.pack'))!);

const ATTACKS: Attack[] = [
  ['forged record, unsigned', async (r, c) => writeFileSync(recordPath(r, c.key), await sealedText({ ...(await otherMetrics(r, c)), signatures: [] }))],
  ['forged record, the trusted signature kept', async (r, c) => writeFileSync(recordPath(r, c.key), await sealedText(await otherMetrics(r, c)))],
  ['forged record, signed by the attacker', async (r, c) => writeFileSync(recordPath(r, c.key), signAs(c.attacker, { ...(await otherMetrics(r, c)), signatures: [] }))],
  ['file list leaving the folder (trusted key)', (r, c) => withManifest(r, c, [`${'../'.repeat(24)}${c.outside.slice(1)}/x`])],
  ['file list with x and x/y (trusted key)', (r, c) => withManifest(r, c, ['x', 'x/y'])],
  ['file list with an empty path (trusted key)', (r, c) => withManifest(r, c, [''])],
  ['file list with a . segment (trusted key)', (r, c) => withManifest(r, c, ['./x'])],
  ['file list with a duplicate (trusted key)', (r, c) => withManifest(r, c, ['x', 'x'])],
  ['file list with an absolute path (trusted key)', (r, c) => withManifest(r, c, [`${c.outside}/abs`])],
  ['output named ../x (trusted key)', (r, c) => {
    const outputs = c.rec.outputs as Record<string, unknown>;
    writeFileSync(recordPath(r, c.key), signAs(c.trusted, { ...c.rec, outputs: { ...outputs, '../../x': outputs.metrics } }));
  }],
  ['stage name with terminal escapes (trusted key)', (r, c) => writeFileSync(recordPath(r, c.key), signAs(c.trusted, { ...c.rec, stage: 'make[x=\u001b[2K\u001b[1A\u001b]0;owned\u0007]' }))],
  ['a flipped byte in the pack', (r) => {
    const p = packOf(r);
    const b = readFileSync(p);
    b[0] = b[0]! ^ 1;
    writeFileSync(p, b);
  }],
  ['the pack truncated', (r) => truncateSync(packOf(r), 3)],
  ['the index pointing into a garbage pack', async (r, c) => {
    const garbage = Buffer.alloc(256, 9);
    const g = await hashBytes(garbage);
    writeFileSync(join(r, 'packs', `${g}.pack`), garbage);
    const idx = JSON.parse(readFileSync(join(r, 'packs', `${c.key}.idx`), 'utf8')) as { objects: Array<[string, string, number, number]> };
    writeFileSync(join(r, 'packs', `${c.key}.idx`), JSON.stringify({ objects: idx.objects.map(([d, , off, size]) => [d, g, off, size]) }));
  }],
  ['the index damaged', (r, c) => writeFileSync(join(r, 'packs', `${c.key}.idx`), '{"objects": [[1,2]]}')],
  ['a FIFO for the record', (r, c) => {
    rmSync(recordPath(r, c.key));
    spawnSync('mkfifo', [recordPath(r, c.key)]);
  }],
  ['a FIFO for the pack', (r) => {
    const p = packOf(r);
    rmSync(p);
    spawnSync('mkfifo', [p]);
  }],
  ['the record a link to /dev/zero', (r, c) => {
    rmSync(recordPath(r, c.key));
    symlinkSync('/dev/zero', recordPath(r, c.key));
  }],
  ['the index a link to /dev/zero', (r, c) => {
    rmSync(join(r, 'packs', `${c.key}.idx`));
    symlinkSync('/dev/zero', join(r, 'packs', `${c.key}.idx`));
  }],
  ['a record of 17 MB', (r, c) => writeFileSync(recordPath(r, c.key), Buffer.alloc(17 << 20, 32))],
  ['a record that is a folder', (r, c) => {
    rmSync(recordPath(r, c.key));
    mkdirSync(recordPath(r, c.key));
  }],
];

/** Every hostile-remote attack once; returns how many were made. */
export async function hostileRemote(t: AttackTally): Promise<number> {
  const base = mkdtempSync(join(tmpdir(), 'pipeline-hostile-'));
  const note = (bucket: 'wrong' | 'escapes' | 'crashes', what: string) => {
    t[bucket]++;
    t.notes.push(`hostile remote, ${what}`);
  };
  const crashed = (r: Run) => r.code === null || r.code === 70 || /^\s+at |internal error/m.test(r.out);
  try {
    const trusted = join(base, 'cfg-teammate');
    const attacker = join(base, 'cfg-attacker');
    const victimCfg = join(base, 'cfg-victim');
    const pristine = join(base, 'remote');
    mkdirSync(pristine);
    const team = join(base, 'teammate');
    mkdirSync(team);
    writeFileSync(join(team, 'p.yaml'), SPEC);
    cli(team, trusted, ['remote', 'add', 'origin', pristine]);
    if (cli(team, trusted, ['run', 'p.yaml']).code !== 0 || cli(team, trusted, ['push', 'p.yaml']).code !== 0) throw new Error('hostile remote: the genuine push failed');
    const reference = readFileSync(join(team, 'out', 'f.txt'), 'utf8') + readFileSync(join(team, 'metrics.json'), 'utf8');
    const teammateKey = cli(team, trusted, ['remote', 'key']).out.trim();
    cli(team, attacker, ['remote', 'key']); // the attacker's own key, made
    const genuine = await onlyRecord(pristine);
    let n = 0;
    for (const [what, attack] of ATTACKS) {
      const dir = join(base, `attack-${n}`);
      const remote = join(dir, 'remote');
      const ws = join(dir, 'victim');
      const outside = join(dir, 'outside');
      mkdirSync(ws, { recursive: true });
      cpSync(pristine, remote, { recursive: true });
      writeFileSync(join(ws, 'p.yaml'), SPEC);
      cli(ws, victimCfg, ['remote', 'add', 'origin', remote]);
      if (n === 0) cli(ws, victimCfg, ['remote', 'trust', teammateKey]);
      await attack(remote, { ...genuine, trusted, attacker, outside });
      n++;
      const published = () => (existsSync(join(ws, 'out', 'f.txt')) ? readFileSync(join(ws, 'out', 'f.txt'), 'utf8') : '') + (existsSync(join(ws, 'metrics.json')) ? readFileSync(join(ws, 'metrics.json'), 'utf8') : '');
      for (const args of [['pull', 'p.yaml'], ['pull'], ['run', '--pull', 'p.yaml'], ['remote', 'verify'], ['exp', 'show', 'p.yaml'], ['status', 'p.yaml']]) {
        const r = cli(ws, victimCfg, args);
        if (crashed(r)) note('crashes', `${what}: ${args.join(' ')}: exit ${r.code}: ${r.out.slice(-300)}`);
        if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(r.out.replace(/\r\u001b\[2K/g, ''))) note('escapes', `${what}: ${args.join(' ')}: a control character reached the terminal`);
        const got = published();
        if (got && got !== reference) note('wrong', `${what}: ${args.join(' ')}: published ${JSON.stringify(got.slice(0, 80))}`);
        if (existsSync(outside)) note('escapes', `${what}: ${args.join(' ')}: wrote outside the workspace (${readdirSync(outside).join(', ')})`);
      }
      if (published() !== reference) note('wrong', `${what}: after run --pull the workspace does not hold the genuine results`);
      rmSync(dir, { recursive: true, force: true });
    }
    return n;
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
