#!/usr/bin/env node
// ort_bench.js - times an ONNX model's forward pass with ONNX Runtime
// (npm package onnxruntime-node, CPU execution provider), for bench/peers.py.
//
// usage: node bench/ort_bench.js MODEL.onnx INPUT.f32 N C H W THREADS RUNS [WARMUP [PROFILE]]
//   INPUT.f32   N*C*H*W little-endian float32 values (the model's only input)
//   THREADS     intraOpNumThreads (interOpNumThreads is 1, sequential execution)
//   PROFILE     a path prefix: ONNX Runtime's profiler on (per-node times of
//               every pass, warm-up included), its trace written to
//               PROFILE_<date>.json, whose path the JSON line gives as
//               "profile" (bench/ort_layers.py)
// Prints one JSON line: {"ort_version", "threads", "runs", "warmup", "times_ms",
// "min_ms", "median_ms", "logits_head" (first 8 outputs), "argmax" (of image 0)}.
//
// onnxruntime-node is found the usual Node way: bench/node_modules (install
// it there with `cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm install
// onnxruntime-node`; the CPU library ships inside the package) or NODE_PATH.
// Exit status 3 when the package is missing, 1 on any other error.
'use strict';

const fs = require('fs');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  process.stderr.write('ort_bench: onnxruntime-node is not installed (' + e.code + ')\n');
  process.exit(3);
}

function version() {
  try {
    return require('onnxruntime-node/package.json').version;
  } catch (e) {
    return (ort.env && ort.env.versions && ort.env.versions.node) || 'unknown';
  }
}

async function main() {
  const a = process.argv.slice(2);
  if (a.length < 8) {
    process.stderr.write('usage: ort_bench.js MODEL.onnx INPUT.f32 N C H W THREADS RUNS [WARMUP [PROFILE]]\n');
    process.exit(2);
  }
  const [model, inputPath] = a;
  const dims = a.slice(2, 6).map(Number);
  const threads = Number(a[6]), runs = Number(a[7]);
  const warmup = a.length > 8 ? Number(a[8]) : 1;
  const profile = a.length > 9 ? a[9] : null;
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
    ...(profile ? {enableProfiling: true, profileFilePrefix: profile} : {}),
  });
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', data, dims);
  let out;
  for (let r = 0; r < warmup; r++) out = await session.run(feeds);
  const times = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    out = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  let profilePath = null;
  if (profile) {
    session.endProfiling();
    const path = require('path'), dir = path.dirname(profile), base = path.basename(profile);
    const files = fs.readdirSync(dir).filter((f) => f.startsWith(base) && f.endsWith('.json'));
    if (files.length !== 1) throw new Error('expected one profile ' + profile + '*.json');
    profilePath = path.join(dir, files[0]);
  }
  const logits = out[session.outputNames[0]].data;
  // image 0's logits (the output is N x classes)
  const per = logits.length / dims[0];
  let best = 0;
  for (let i = 1; i < per; i++) if (logits[i] > logits[best]) best = i;
  const s = times.slice().sort((x, y) => x - y);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  process.stdout.write(JSON.stringify({
    ort_version: version(), threads, runs, warmup,
    times_ms: times.map((t) => Math.round(t * 1000) / 1000),
    min_ms: s[0], median_ms: median,
    logits_head: Array.from(logits.slice(0, 8)), argmax: best,
    ...(profilePath ? {profile: profilePath} : {}),
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write('ort_bench: ' + (e && e.message ? e.message : e) + '\n');
  process.exit(1);
});
