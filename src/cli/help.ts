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
  remote add NAME URL     a remote cache: s3://bucket/prefix (--endpoint URL) or a shared folder
  push [spec [stage...]]  send runs to the remote: the spec's current ones, or the whole cache
  pull [spec [stage...]]  fetch from the remote what the spec needs (or everything it holds)
  init [dir]              start a new project (a spec, a TypeScript stage, a command stage)
  help <command>          the options of a command
  --version               the installed version

Run \`pipeline help <command>\` (or \`pipeline <command> --help\`) for its options.
Exit codes: 0 success, 1 a stage failed (or a remote lacked, refused or could not be reached), 2 bad spec or usage, 70 internal error, 77 no permission to
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
      --pull            a stage the cache lacks is fetched from the remote when it has it (checked
                        on arrival), computed otherwise
  -r, --remote NAME     the remote --pull fetches from (default: the default remote)
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
  exp: `Usage: pipeline exp show <spec> [--json|--csv|--md] [--sort-by METRIC] [--only-changed] [--live]
       pipeline exp diff <spec> A B [--json]
       pipeline exp save NAME <spec>
       pipeline exp forget NAME
       pipeline exp push [NAME...] [--remote R]
       pipeline exp pull [NAME...] [--remote R]

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
push: sends named experiments (every saved one when none is named) with their runs to the remote
(\`pipeline remote add\`); pull: fetches them (every one the remote holds when none is named), each
run checked on arrival, the name saved here once all its runs are in: then \`exp show\` lists them.

      --json | --csv | --md   output format (default: an aligned table)
      --sort-by METRIC        best first by METRIC
      --only-changed          leave out metrics that are the same in every row
      --live                  with the stages running now (in any run on this cache): their
                              metrics so far, and the last row of each declared series
${COMMON_HELP}`,
  remote: `Usage: pipeline remote add NAME URL [--endpoint URL] [--region R] [--default] [--cache]
       pipeline remote list
       pipeline remote remove NAME [--cache]
       pipeline remote key                   this user's public key (results you push are signed with it)
       pipeline remote trust NAME:KEY        accept results signed by that key (a teammate's, a CI's)
       pipeline remote untrust NAME[:KEY]    stop accepting them
       pipeline remote verify [--remote NAME] [--repair]
                                             check every run on the remote as a pull would;
                                             --repair removes what is bad and sends good copies again

A remote cache shares results between machines (a GPU box and a laptop): \`push\` sends runs,
\`pull\` and \`run --pull\` fetch them. URL is s3://bucket/prefix (AWS S3, or any S3-compatible
server with --endpoint http://host:port) or a folder (an NFS mount). Kept in
.pipeline/remotes.json in the workspace (or, with --cache, remotes.json in the cache folder, for
every workspace sharing it); never in a spec. Credentials come from the AWS environment
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws/credentials, instance roles)
and are never written anywhere.

Results on a remote are signed: a pull accepts a run only when it is signed by your own key or a
key you trust (kept in ~/.config/rrtn-pipeline/, never in a workspace, cache or remote). Anyone who
can write the bucket can delete or damage what is there, never make you accept a result.

      --endpoint URL    an S3-compatible server (MinIO, Ceph, s3rver); path-style addressing
      --region R        the bucket's region (default: AWS_REGION, else us-east-1)
      --default         make it the remote push and pull use when none is named
      --cache           configure it for the cache folder rather than this workspace
${COMMON_HELP}`,
  push: `Usage: pipeline push [spec [stage...]] [--remote NAME] [--jobs N]

Sends runs to the remote: with a spec, the runs it is served from now (its cached stages, or the
named ones with what they need); without one, every run in the local cache. Only what the remote
lacks is sent (one listing settles a push with nothing new), N transfers at once: objects up to
1 MiB in packs of up to 32 MiB (one request for many small files), larger ones alone, in parts from
16 MiB; each object rehashed before it goes; each run's record goes last, after everything it
names, so a push cut short is never visible as a run. Two machines may push at once.

  -r, --remote NAME     the remote (default: the default one, or the only one)
  -j, --jobs N          files sent at once (default 16)
${COMMON_HELP}`,
  pull: `Usage: pipeline pull [spec [stage...]] [--remote NAME] [--jobs N]

With a spec: fetches from the remote each stage the local cache lacks, in dependency order (a
stage's key is known once its upstream outputs are), and puts declared outs into the workspace, as
a run would; computes nothing (\`pipeline run --pull\` computes what the remote lacks). Without a
spec: fetches every run the remote holds. Every record, file list and object is checked on arrival
against its digest: a damaged one is refused and named, never served.

  -r, --remote NAME     the remote (default: the default one, or the only one)
  -j, --jobs N          with a spec: stages fetched at once (8); without: transfers at once (16)
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
