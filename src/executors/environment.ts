// The environment a stage process gets. Not the calling shell's as it is: a variable there that no
// key records (LC_ALL, OMP_NUM_THREADS, PYTHONHASHSEED, ...) could change a stage's numbers while
// the cache serves the old ones. A stage gets:
//  - what locates programs and libraries and identifies the user, machine and session, passed as
//    it is (PASS, PASS_PREFIXES): PATH, HOME, LD_LIBRARY_PATH, PYTHONPATH, a virtualenv or conda
//    environment, GPU selection, Slurm's job variables, proxies;
//  - a fixed locale (LANG=C.UTF-8): sorting, number formatting and character classes are the
//    same on every machine;
//  - the spec's `env:` (in the key), the variables its shell line reads ($LR, in the key), and
//    those it names under `passEnv:` (passed, not keyed: secrets, or settings the user vouches for).
// Everything else is cleared.

/** Passed as they are: where programs are and who runs them, not how they compute. */
const PASS = new Set([
  'PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR', 'TMP', 'TEMP', 'TERM', 'HOSTNAME', 'DISPLAY', 'XAUTHORITY',
  'SSH_AUTH_SOCK', 'XDG_RUNTIME_DIR', 'LD_LIBRARY_PATH', 'LD_PRELOAD', 'PYTHONPATH', 'PYTHONHOME', 'PYTHONUSERBASE',
  'VIRTUAL_ENV', 'NODE_PATH', 'NODE_OPTIONS', 'JAVA_HOME', 'CUDA_HOME', 'CUDA_PATH', 'CUDA_VISIBLE_DEVICES',
  'NVIDIA_VISIBLE_DEVICES', 'NVIDIA_DRIVER_CAPABILITIES', 'ROCR_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES',
  'http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY',
]);

/** Passed by prefix: the engine's own, Slurm's job variables, conda's activation, the Vulkan loader's. */
const PASS_PREFIXES = ['PIPELINE_', 'SLURM_', 'CONDA_', 'VK_'];

/** The locale every stage runs in, unless the spec's `env:` sets one. */
export const STAGE_LOCALE = { LANG: 'C.UTF-8' } as const;

/** True when `name` matches a `passEnv:` entry: a name, or a prefix ending in `*` (`AWS_*`). */
export function named(name: string, patterns: string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/** The environment a stage process starts with, before its own variables (spec `env:` and the engine's) are added. */
export function stageEnvironment(from: NodeJS.ProcessEnv, passEnv: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined) continue;
    if (PASS.has(name) || PASS_PREFIXES.some((p) => name.startsWith(p)) || named(name, passEnv)) out[name] = value;
  }
  return { ...out, ...STAGE_LOCALE };
}
