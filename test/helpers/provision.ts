// What the test suite needs beyond `npm ci`: Debian packages, each named with the tests that use
// it. `npm test` runs this first (its `pretest`): as root with apt-get it installs what is missing;
// otherwise it says loudly what to install, and those tests skip with one line each -- except
// under CI (CI=true), where a missing piece fails its test. The main job needs none of them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Need {
  /** Debian packages. */
  packages: string[];
  /** What uses them, for the messages. */
  usedBy: string;
  /** True when the machine has it (checked by the files or commands the tests use). */
  present(): boolean;
}

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

export const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
export const CHROMIUM = '/usr/bin/chromium';

export const NEEDS = {
  webgpu: {
    packages: ['mesa-vulkan-drivers', 'libvulkan-dev', 'gcc'],
    usedBy: 'the WebGPU backend test (Dawn on the lavapipe CPU Vulkan driver, through a layer it compiles)',
    present: () => existsSync(LAVAPIPE_ICD) && existsSync('/usr/include/vulkan/vulkan.h') && has('gcc'),
  },
  chromium: {
    packages: ['chromium'],
    usedBy: 'the test that opens the evaluation report in headless Chromium',
    present: () => existsSync(CHROMIUM),
  },
  zsh: {
    packages: ['zsh'],
    usedBy: 'the test that reads quoted values back through every shell (zsh expands a word starting with = into a path)',
    present: () => has('zsh'),
  },
  wasm: {
    packages: ['clang', 'lld', 'wabt'],
    usedBy: 'the test that rebuilds the log-mel WASM kernel from its C source',
    present: () => has('clang') && has('wasm-ld') && has('wasm-objdump'),
  },
} satisfies Record<string, Need>;

export type NeedName = keyof typeof NEEDS;

/**
 * Test options for a test that needs `name`: skipped with one loud line when it is missing,
 * except under CI, where the test runs (and its first assertion says what is missing).
 */
export function needs(name: NeedName): { skip: string | false } {
  const n = NEEDS[name];
  if (n.present() || process.env.CI) return { skip: false };
  const why = `needs Debian packages ${n.packages.join(' ')}: apt-get install ${n.packages.join(' ')} (or run \`npm test\` as root, which installs them)`;
  process.stderr.write(`\n*** SKIPPED: ${n.usedBy} ${why}\n\n`);
  return { skip: why };
}

/** Installs what is missing of `names` (as root with apt-get); otherwise says what to install. Returns the needs still missing. */
export function provision(out: NodeJS.WritableStream = process.stderr, names = Object.keys(NEEDS) as NeedName[]): NeedName[] {
  const missing = names.filter((k) => !NEEDS[k].present());
  if (!missing.length) return [];
  const packages = [...new Set(missing.flatMap((k) => NEEDS[k].packages))];
  const root = process.getuid?.() === 0;
  if (root && has('apt-get')) {
    out.write(`installing the Debian packages needed: ${packages.join(' ')}\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const install = update.status === 0 ? spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: 'inherit', env }) : update;
    if (install.status === 0) return names.filter((k) => !NEEDS[k].present());
    out.write(`apt-get failed (exit ${install.status})\n`);
  }
  const still = names.filter((k) => !NEEDS[k].present());
  const lines = still.map((k) => `  ${NEEDS[k].usedBy}: apt-get install ${NEEDS[k].packages.join(' ')}`);
  out.write(`\n*** pretest: missing Debian packages; ${process.env.CI ? 'under CI these tests FAIL' : 'these tests will be SKIPPED'}:\n${lines.join('\n')}\n*** (run \`npm test\` as root to have them installed)\n\n`);
  return still;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const still = provision();
  // Under CI a missing piece is a failure; the tests that need it say which.
  process.exitCode = still.length && process.env.CI ? 1 : 0;
}
