#!/usr/bin/env node
// ort_profile.js - ONNX Runtime's own per-node timings of a model's forward
// pass (onnxruntime-node, CPU provider, the session options of
// bench/ort_bench.js plus enableProfiling), for bench/ort_layers.py.
//
// usage: node bench/ort_profile.js MODEL.onnx INPUT.f32 N C H W THREADS RUNS PREFIX
// Runs one warm-up and RUNS timed passes and writes ONNX Runtime's profile
// (Chrome trace JSON) to PREFIX_<date>.json; prints its path. Exit status 3
// when onnxruntime-node is missing (see bench/ort_bench.js), 1 on errors.
'use strict';

const fs = require('fs');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  process.stderr.write('ort_profile: onnxruntime-node is not installed (' + e.code + ')\n');
  process.exit(3);
}

async function main() {
  const a = process.argv.slice(2);
  if (a.length !== 9) {
    process.stderr.write('usage: ort_profile.js MODEL.onnx INPUT.f32 N C H W THREADS RUNS PREFIX\n');
    process.exit(2);
  }
  const [model, inputPath] = a;
  const dims = a.slice(2, 6).map(Number);
  const threads = Number(a[6]), runs = Number(a[7]), prefix = a[8];
  const buf = fs.readFileSync(inputPath);
  const count = dims.reduce((p, d) => p * d, 1);
  if (buf.length !== 4 * count) throw new Error(inputPath + ': expected ' + 4 * count + ' bytes');
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(4 * i);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', data, dims);
  for (let i = 0; i < runs + 1; i++) await session.run(feeds);
  session.endProfiling();
  const dir = require('path').dirname(prefix), base = require('path').basename(prefix);
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(base) && f.endsWith('.json'));
  if (files.length !== 1) throw new Error('expected one profile file ' + prefix + '*.json');
  process.stdout.write(require('path').join(dir, files[0]) + '\n');
}

main().catch((e) => {
  process.stderr.write('ort_profile: ' + (e && e.message ? e.message : e) + '\n');
  process.exit(1);
});
