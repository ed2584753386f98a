#!/usr/bin/env node
// ONNX Runtime side of the benchmark: the same measurement medinfer-bench makes.
// usage: node ort_bench.js MODEL [--shape 1x3x224x224] [--threads N] [--runs N] [--warmup N] [--flush MB] [--lockstep]
// --flush MB writes that much memory before each run (weights out of the caches), as medinfer-bench's.
// --lockstep: as medinfer-bench's: 'ready' after the warmup, then a run per line of standard input
// ('t' timed, at most --runs; else untimed), 'ms TIME' after each, until the input ends.
// Prints human-readable lines, then one machine-readable line starting with "RESULT".
'use strict';

// Node's own footprint, taken before ONNX Runtime is loaded: ORT's peak RSS
// below includes it, so it is reported for the reader to judge.
const baseRss = process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB

const ort = require('onnxruntime-node');

const usage = 'usage: node ort_bench.js MODEL [--shape 1x3x224x224] [--threads N] [--runs N] [--warmup N] [--flush MB] [--lockstep]';

function parseArgs(argv) {
  const a = { model: null, shape: null, threads: 2, runs: 10, warmup: 2, flush: 0, lockstep: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--shape' && v) { a.shape = v.split(/[x,]/).map(Number); i++; }
    else if (k === '--threads' && v) { a.threads = Number(v); i++; }
    else if (k === '--runs' && v) { a.runs = Number(v); i++; }
    else if (k === '--warmup' && v) { a.warmup = Number(v); i++; }
    else if (k === '--flush' && v) { a.flush = Number(v); i++; }
    else if (k === '--lockstep') a.lockstep = true;
    else if (k.startsWith('-') || a.model) { console.error(`ort_bench: unexpected argument '${k}'\n${usage}`); process.exit(2); }
    else a.model = k;
  }
  if (!a.model || !(a.runs >= 1) || !(a.threads >= 1) || !(a.flush >= 0 && a.flush <= 65536) || (a.shape && a.shape.some((d) => !(d >= 0)))) {
    console.error(usage);
    process.exit(2);
  }
  return a;
}

// Deterministic uniform [-1, 1) input, like medinfer-bench's; values do not affect timing
// except through denormals, which random inputs avoid.
function randomInput(n) {
  const data = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = (s / 4294967296) * 2 - 1;
  }
  return data;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads, // the engine's thread pool = the thread budget under test
    interOpNumThreads: 1,
    executionMode: 'sequential', // one node at a time, like medinfer
    graphOptimizationLevel: 'all',
  };
  let t0 = performance.now();
  const session = await ort.InferenceSession.create(a.model, opts);
  const loadMs = performance.now() - t0;
  if (session.inputNames.length !== 1) throw new Error(`expected one input, model has ${session.inputNames.length}`);
  if (!a.shape) throw new Error('give --shape');
  const n = a.shape.reduce((x, y) => x * y, 1);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', randomInput(n), a.shape) };

  const times = [];
  const flush = new Float32Array(a.flush * 262144);
  const once = async () => {
    for (let i = 0; i < flush.length; i += 16) flush[i] += 1;
    t0 = performance.now();
    const out = await session.run(feeds);
    const ms = performance.now() - t0;
    for (const k of Object.keys(out)) if (out[k].dispose) out[k].dispose();
    return ms;
  };
  for (let r = -a.warmup; r < (a.lockstep ? 0 : a.runs); r++) {
    const ms = await once();
    if (r >= 0) times.push(ms);
  }
  if (a.lockstep) {
    process.stdout.write('ready\n');
    const lines = require('readline').createInterface({ input: process.stdin, terminal: false });
    for await (const line of lines) {
      const ms = await once();
      if (line.startsWith('t') && times.length < a.runs) times.push(ms);
      process.stdout.write(`ms ${ms.toFixed(3)}\n`);
    }
    if (!times.length) throw new Error('no timed run (lockstep input ended first)');
  }
  const runs = times.length;
  times.sort((x, y) => x - y);
  const median = times[Math.floor(runs / 2)]; // same convention as medinfer-bench
  const peak = process.resourceUsage().maxRSS / 1024;
  await session.release();
  console.log(`model: ${a.model}\nload: ${loadMs.toFixed(1)} ms\nmedian: ${median.toFixed(3)} ms\n` +
              `min: ${times[0].toFixed(3)} ms\nruns: ${runs}\npeak_rss: ${peak.toFixed(1)} MB\n` +
              `node_base_rss: ${baseRss.toFixed(1)} MB`);
  console.log(`RESULT engine=ort version=${ort.env.versions.common} threads=${a.threads} runs=${runs} ` +
              `median_ms=${median.toFixed(3)} min_ms=${times[0].toFixed(3)} load_ms=${loadMs.toFixed(1)} ` +
              `peak_rss_mb=${peak.toFixed(1)} node_base_rss_mb=${baseRss.toFixed(1)}`);
}

main().catch((e) => {
  console.error(`ort_bench: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
