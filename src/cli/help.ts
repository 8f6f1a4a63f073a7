// The help text of the tool and of each command (`pipeline help <command>`, `<command> --help`).
import { availableParallelism } from 'node:os';

export const COMMON_HELP = `  -C, --workspace DIR   workspace root (default: the current folder)
      --cache-dir DIR   cache folder (default: <workspace>/cache, or $PIPELINE_CACHE_DIR)
      --set KEY=VALUE   override a parameter: \`lr=0.001\` sets params.lr;
                        \`stages.train.params.epochs=3\` sets a stage's param (repeatable)
  -h, --help            this help`;

export const HELP: Record<string, string> = {
  main: `pipeline — run machine-learning experiments written as YAML pipelines, with a content-hash cache.

Usage: pipeline <command> [options]

Commands:
  run <spec> [stage...]   run the pipeline (or the named stages and what they need)
  status <spec>           say for each stage whether it is cached or would rerun, and why
  validate <spec>         check the spec and every stage's params; run nothing
  dag <spec>              print the stage graph (Mermaid or dot)
  gc                      remove cache entries no spec's latest run uses
  verify                  rehash the cache's contents and drop what is corrupt
  exp show <spec>         every run of the stages with metrics, side by side (variants and past runs)
  exp diff <spec> A B     params and metrics of two runs, with deltas
  exp save NAME <spec>    keep the spec's current runs under NAME, past gc (exp forget NAME)
  plots show <spec>       the runs' declared series overlaid in one HTML page (plots diff A B: two)
  init [dir]              start a new project (a spec, a TypeScript stage, a command stage)
  help <command>          the options of a command
  --version               the installed version

Run \`pipeline help <command>\` (or \`pipeline <command> --help\`) for its options.
Exit codes: 0 success, 1 a stage failed, 2 bad spec or usage, 70 internal error, 77 no permission to
write the cache or workspace, 130 interrupted.`,
  run: `Usage: pipeline run <spec> [stage...] [options]

Runs every stage whose fingerprint (code, params, inputs, upstream outputs) has no cached run.
Named stages run with everything they need; a sweep's name runs all its variants.

  -j, --jobs N          stages run at once (default: number of cores, ${availableParallelism()})
      --force STAGE     rerun STAGE even if cached (repeatable)
      --force-all       rerun every stage
  -k, --keep-going      after a failure, finish the stages that do not depend on it
  -n, --dry-run         say what would run, run nothing
      --verify          rehash every cached output before trusting it (see \`pipeline verify\`)
      --json            print one JSON summary on stdout (stage states, keys, errors); the rest on stderr
      --name NAME       save this run's results as experiment NAME (kept past gc; see \`exp save\`)
  -w, --watch           stay up: run again when the spec, a stage's code or an input changes
      --executor NAME   run every stage there: inline, process or slurm (default: what the spec says)
      --detach          with Slurm: submit every stale stage and return (\`pipeline status\` follows the jobs)
${COMMON_HELP}`,
  verify: `Usage: pipeline verify

Rehashes every object in the cache and removes each whose content no longer matches its digest
(a disk fault, an edit through a hardlink). Stages whose outputs used one rerun on the next run.
Every cache hit already checks each object's kind, size and write stamp; this checks the bytes.
${COMMON_HELP}`,
  status: `Usage: pipeline status <spec> [--json]

For each stage: cached, or stale with every reason (param lr 0.001 -> 0.0003; file stages/logmel.ts
changed; input data/x.wav changed; upstream features changed).

      --json            machine-readable output
${COMMON_HELP}`,
  validate: `Usage: pipeline validate <spec> [--json]

Checks the spec against schemas/pipeline.schema.json and each stage's params against its module's
schema; prints every problem as file:line:col: path: message.
      --json            the result as JSON: { valid, stages, diagnostics: [{ file, line, col, path, message }] }
${COMMON_HELP}`,
  dag: `Usage: pipeline dag <spec> [--format mermaid|dot]

      --format F        mermaid (default) or dot
${COMMON_HELP}`,
  exp: `Usage: pipeline exp show <spec> [--json|--csv|--md] [--sort-by METRIC] [--only-changed]
       pipeline exp diff <spec> A B [--json]
       pipeline exp save NAME <spec>
       pipeline exp forget NAME

show: one row per recorded run of each stage that declares \`metrics:\` (every variant of a sweep,
and earlier runs still in the cache, marked past, with what changed since), columns = where its
params came from (\`spec\`, or the --set values it ran with), the git commit it ran at (dirty:
tracked files had uncommitted changes), the params that differ between rows and the numbers of the
metrics files; * marks the best of each metric (as the spec's \`metrics:\` declares, else guessed
from the name: lower for loss, error, p, ...). Current = the run the spec, with this command's
--set values, is served from now. Reads run records only: nothing reruns.
diff: A and B are run ids from \`exp show\` (key prefixes) or stage variants (their current run).
save: keeps the spec's current runs under NAME: gc leaves them, \`exp show\` labels them
(\`run --name NAME\` does the same for the runs it makes). forget: lets them go again.

      --json | --csv | --md   output format (default: an aligned table)
      --sort-by METRIC        best first by METRIC
      --only-changed          leave out metrics that are the same in every row
${COMMON_HELP}`,
  init: `Usage: pipeline init [dir]

Writes a new project into dir (default: the current folder), ready to run: pipeline.yaml (built-in
RRTN stages by package name, then your own), stages/summary.ts (a TypeScript stage importing the
stage API from 'rrtn-pipeline'), scripts/report.sh (a command stage). Never replaces a file.
  -h, --help            this help`,
  plots: `Usage: pipeline plots show <spec> [--out FILE] [--live | --watch]
       pipeline plots diff <spec> A B [--out FILE]

Overlays the series stages declare with \`plots:\` (JSON lists, JSON Lines, CSV) across recorded
runs in one self-contained HTML page (charts rendered to SVG: no script, no network): a chart per
series file, a panel per numeric column, a line per run, against epoch/step/iteration/x or the row
number. show: every run \`exp show\` lists; diff: runs A and B (run ids or stage variants).

  -o, --out FILE        the page, inside the workspace (default plots.html)
      --live            with the stages running now (in any run on this cache): their series so far
  -w, --watch           --live, redrawn every 5 s until Ctrl-C (the page reloads itself as often)
${COMMON_HELP}`,
  gc: `Usage: pipeline gc [--dry-run] [--max-size SIZE] [--forget-after DURATION]

Removes cached runs and objects that no latest run of any workspace using this cache needs (a cache
can be shared: each workspace registers when it runs). A workspace whose folder has been gone for
--forget-after (default 14d) is forgotten, saying so, and the runs only it used become removable.
      --max-size SIZE   count every byte the cache holds (objects, checkpoints, compiled modules,
                        logs, memos) and remove unused entries, oldest first, only until it is
                        under SIZE (e.g. 20G): unused runs, then checkpoints, then compiled modules
      --forget-after D  how long a workspace may be gone before it is forgotten (14d, 12h, 0)
  -n, --dry-run         list what would be removed and why; remove nothing
${COMMON_HELP}`,
};

export function help(command: string): number {
  process.stdout.write(`${HELP[command]}\n`);
  return 0;
}
