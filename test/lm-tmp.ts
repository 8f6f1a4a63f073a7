import { LogMel } from '../stages/lib/logmel.ts';
const lm = await LogMel.create();
const sig = new Float32Array(16000 * 2); for (let i = 0; i < sig.length; i++) sig[i] = Math.sin(i * 0.05) * 0.3 + (Math.random() - 0.5) * 0.01;
const out = lm.compute(sig);
let t0 = performance.now(); let secs = 0;
while (performance.now() - t0 < 3000) { lm.compute(sig, out); secs += 2; }
let dt = (performance.now() - t0) / 1000;
console.log('full realtime x', (secs / dt).toFixed(0));
