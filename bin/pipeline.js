#!/usr/bin/env node
// Entry point. Runs the engine from dist/ (one bundled ESM file per entry): a bundle starts in
// ~0.1 s, where loading the TypeScript sources through a loader hook would add ~0.3 s to every
// command. In a checkout (tsconfig.json beside src/) dist/ is rebuilt first whenever a file under
// src/ or schemas/ is newer than the build; an installed package ships dist/ prebuilt (npm pack
// builds it) and never writes into its own folder, which may be read-only.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const stamp = join(dist, 'BUILD');

/** @param {string} dir */
function newestSource(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return t;
}

function builtAt() {
  try {
    return statSync(stamp).mtimeMs;
  } catch {
    return -1;
  }
}

const checkout = existsSync(join(root, 'tsconfig.json'));
if (checkout && builtAt() < Math.max(newestSource(join(root, 'src')), newestSource(join(root, 'schemas')), statSync(join(root, 'package.json')).mtimeMs)) {
  const { buildEngine } = await import('../src/bundle.js');
  await buildEngine(root);
}
if (!existsSync(join(dist, 'cli.mjs'))) {
  process.stderr.write(`pipeline: this installation has no engine build (${join(dist, 'cli.mjs')} is missing): reinstall the package, or run \`npm run build\` in its folder\n`);
  process.exit(70);
}

const { main } = await import(pathToFileURL(join(dist, 'cli.mjs')).href);
const code = await main(process.argv.slice(2));
// Exit explicitly once the output is flushed: work an inline stage left behind (a timer, a stage
// abandoned after it ignored a stop) must not keep the pipeline alive.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((r) => s.write('', r))));
if (code === 130) {
  // Interrupted: end as the signal would have (a shell sees 130). process.exit joins the thread
  // pool first, and a thread an abandoned stage left blocked in a read would hold it forever.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeAllListeners(sig);
  process.kill(process.pid, 'SIGINT');
} else process.exit(code);
