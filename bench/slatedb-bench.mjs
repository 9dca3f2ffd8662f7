#!/usr/bin/env node
// SlateDB 0.12.1 (npm @slatedb/uniffi) as a peer of bench/Slate.Bench `quick`: the same phases
// over the same keys, values and orders as the other engines, on a local-folder object store.
//
// usage: node slatedb-bench.mjs <input-dir> <store-root> <db-path>
//
// <input-dir> is written by SlateDbRunner.cs:
//   config.json   {"records", "reads", "durable", "l0_sst_size_bytes", "l0_max_ssts",
//                  "flush_interval_ms", "filter_bits_per_key", "max_unflushed_bytes",
//                  "samples": [[id, value offset], ...]}  (offsets computed by the C# side)
//   buffer.bin    the 1 MiB value buffer (values are 400-byte slices of it)
//   load.u32      load order (little-endian u32 ids), reads.u32 (point-read ids), durable.u32
// Keys: 20 bytes = big-endian u64 id + 12 ASCII '0'. Value of id: buffer[off, off + 400) with
// off = id * 2654435761 mod (1 MiB - 399) (checked against the C# side's samples first).
//
// Phases (one caller, each operation awaited before the next):
//   floor   10,000 gets of a missing key on the empty database: the binding's cost per call
//   load    put_with_options(await_durable=false) of every id of load.u32
//   flush   flush_with_options(MemTable)
//   read    get of every id of reads.u32; each value compared with what was written
//   durable put_with_options(await_durable=true) of every id of durable.u32; then every one read back
// Latency: process.hrtime.bigint() around each awaited call, so the Node <-> Rust binding crossing
// (argument copies, the promise round trip through the event loop) is part of every figure.
// RSS: process.memoryUsage.rss() of this process, sampled every 10 ms and every 1,024 operations;
// the maximum per phase. Files: files added under the database folder during the phase (each is
// one object-store PUT on the local store; GETs cannot be seen from here).
//
// Output: progress lines on stderr; one JSON object on stdout at the end:
//   {"slatedb_version", "binding_dir", "node", "settings", "block_size",
//    "phases": [{"name", "ops", "seconds", "p50_us", "p99_us", "p999_us", "errors",
//                "rss_max_bytes", "files_added"}]}
// Exit status: 0 when the run completed (wrong values are reported in "errors"), 1 on an error
// (message on stderr), 2 on bad usage.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const KEY_SIZE = 20;
const VALUE_SIZE = 400;
const BUFFER_SIZE = 1 << 20;
const OFFSET_MOD = BUFFER_SIZE - VALUE_SIZE + 1;
// 2654435761 mod OFFSET_MOD is below 2^20 and ids are below 2^31, so the product stays exact in a double.
const MULT = 2654435761 % OFFSET_MOD;
const FLOOR_OPS = 10000;

/** Finds @slatedb/uniffi: $SLATEDB_UNIFFI_DIR, else node_modules above the working directory. */
async function importBinding() {
  const dirs = [];
  if (process.env.SLATEDB_UNIFFI_DIR) dirs.push(path.resolve(process.env.SLATEDB_UNIFFI_DIR));
  for (let d = process.cwd(); ; d = path.dirname(d)) {
    dirs.push(path.join(d, "node_modules", "@slatedb", "uniffi"));
    if (path.dirname(d) === d) break;
  }
  for (const dir of dirs) {
    const manifest = path.join(dir, "package.json");
    if (!fs.existsSync(manifest)) continue;
    const pkg = JSON.parse(fs.readFileSync(manifest, "utf8"));
    if (pkg.name !== "@slatedb/uniffi") continue;
    const S = await import(pathToFileURL(path.join(dir, "index.js")).href);
    return { S, version: pkg.version, dir };
  }
  throw new Error("@slatedb/uniffi not found (set SLATEDB_UNIFFI_DIR to the package folder)");
}

const valueOffset = (id) => (id * MULT) % OFFSET_MOD;

function readIds(file, expected) {
  const b = fs.readFileSync(file);
  if (b.length !== expected * 4) throw new Error(`${file}: ${b.length} bytes, expected ${expected * 4} (${expected} u32 ids)`);
  // a copy: the Buffer may sit at an offset that is not a multiple of 4 inside its ArrayBuffer
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
  return new Uint32Array(ab);
}

function writeKey(key, id) {
  key.writeUInt32BE(Math.floor(id / 0x100000000), 0);
  key.writeUInt32BE(id >>> 0, 4);
}

function countFiles(dir) {
  let n = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(path.join(dir, e.name));
    else n++;
  }
  return n;
}

/** Round half to even, as .NET's Math.Round (the C# runners' percentile index). */
function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

let rssMax = 0;
function sampleRss() {
  const r = process.memoryUsage.rss();
  if (r > rssMax) rssMax = r;
}

class Phase {
  constructor(name, ops, dbDir) {
    this.name = name;
    this.lat = new Float64Array(ops);
    this.lat.fill(0); // touch the pages before the clock starts
    this.dbDir = dbDir;
  }
  start() {
    this.files0 = countFiles(this.dbDir);
    rssMax = 0;
    sampleRss();
    this.t0 = process.hrtime.bigint();
  }
  stop(ops, errors) {
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    sampleRss();
    const n = Math.min(ops, this.lat.length);
    const sorted = this.lat.slice(0, n).sort();
    const q = (p) => (n === 0 ? 0 : sorted[roundHalfEven(p * (n - 1))] / 1000);
    const r = {
      name: this.name,
      ops,
      seconds,
      p50_us: q(0.5),
      p99_us: q(0.99),
      p999_us: q(0.999),
      errors,
      rss_max_bytes: rssMax,
      files_added: countFiles(this.dbDir) - this.files0,
    };
    process.stderr.write(
      `[slatedb-bench] ${r.name}: ${ops} ops in ${seconds.toFixed(2)} s, p50 ${r.p50_us.toFixed(1)} µs, ` +
        `p99 ${r.p99_us.toFixed(1)} µs, ${errors} errors, RSS max ${(rssMax / 1048576).toFixed(0)} MiB\n`,
    );
    return r;
  }
}

async function main() {
  const [inputDir, root, dbPath] = process.argv.slice(2);
  if (!inputDir || !root || !dbPath) {
    console.error("usage: node slatedb-bench.mjs <input-dir> <store-root> <db-path>");
    process.exit(2);
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(inputDir, "config.json"), "utf8"));
  const buffer = fs.readFileSync(path.join(inputDir, "buffer.bin"));
  if (buffer.length !== BUFFER_SIZE) throw new Error(`buffer.bin: ${buffer.length} bytes, expected ${BUFFER_SIZE}`);
  for (const [id, off] of cfg.samples ?? []) {
    if (valueOffset(id) !== off) throw new Error(`value offset of id ${id}: ${valueOffset(id)} here, ${off} on the C# side`);
  }
  const loadOrder = readIds(path.join(inputDir, "load.u32"), cfg.records);
  const readOrder = readIds(path.join(inputDir, "reads.u32"), cfg.reads);
  const durableOrder = readIds(path.join(inputDir, "durable.u32"), cfg.durable);
  const valueOf = (id) => {
    const off = valueOffset(id);
    return buffer.subarray(off, off + VALUE_SIZE);
  };

  const { S, version, dir } = await importBinding();
  const url = "file://" + path.resolve(root).split(path.sep).join("/");
  const dbDir = path.join(path.resolve(root), dbPath);
  const store = S.ObjectStore.resolve(url);
  const settings = S.Settings.default();
  const builder = new S.DbBuilder(dbPath, store);
  let db = null;
  const timer = setInterval(sampleRss, 10);
  timer.unref();
  const phases = [];
  try {
    const set = (k, v) => settings.set(k, JSON.stringify(v));
    set("flush_interval", `${cfg.flush_interval_ms}ms`);
    set("compression_codec", null);
    set("filter_bits_per_key", cfg.filter_bits_per_key);
    set("l0_sst_size_bytes", cfg.l0_sst_size_bytes);
    set("l0_max_ssts", cfg.l0_max_ssts);
    set("max_unflushed_bytes", cfg.max_unflushed_bytes);
    set("compactor_options", null);
    set("garbage_collector_options", null);
    builder.with_settings(settings);
    builder.with_sst_block_size(S.SstBlockSize.Block4Kib);
    const effective = JSON.parse(settings.to_json_string());
    db = await builder.build();

    const key = Buffer.alloc(KEY_SIZE, "0".charCodeAt(0));
    const putOpts = { ttl: S.Ttl.Default() };
    const noWait = { await_durable: false };
    const wait = { await_durable: true };

    // 0. the binding's floor: gets of a missing key on the empty database (memtable only, no SST,
    // no I/O), so almost all of each figure is the Node <-> Rust crossing and the promise round trip
    let ph = new Phase("floor", FLOOR_OPS, dbDir);
    let lat = ph.lat;
    let errors = 0;
    writeKey(key, 0xffffffff);
    ph.start();
    for (let i = 0; i < FLOOR_OPS; i++) {
      const t0 = process.hrtime.bigint();
      const v = await db.get(key);
      lat[i] = Number(process.hrtime.bigint() - t0);
      if (v !== undefined) errors++;
    }
    phases.push(ph.stop(FLOOR_OPS, errors));

    // 1. load, not durable
    ph = new Phase("load", loadOrder.length, dbDir);
    lat = ph.lat;
    ph.start();
    for (let i = 0; i < loadOrder.length; i++) {
      const id = loadOrder[i];
      writeKey(key, id);
      const v = valueOf(id);
      const t0 = process.hrtime.bigint();
      await db.put_with_options(key, v, putOpts, noWait);
      lat[i] = Number(process.hrtime.bigint() - t0);
      if ((i & 1023) === 0) sampleRss();
    }
    phases.push(ph.stop(loadOrder.length, 0));

    // flush
    ph = new Phase("flush", 1, dbDir);
    ph.start();
    {
      const t0 = process.hrtime.bigint();
      await db.flush_with_options({ flush_type: S.FlushType.MemTable });
      ph.lat[0] = Number(process.hrtime.bigint() - t0);
    }
    phases.push(ph.stop(1, 0));

    // 2. point reads, every value checked
    ph = new Phase("read", readOrder.length, dbDir);
    lat = ph.lat;
    errors = 0;
    ph.start();
    for (let i = 0; i < readOrder.length; i++) {
      const id = readOrder[i];
      writeKey(key, id);
      const t0 = process.hrtime.bigint();
      const v = await db.get(key);
      lat[i] = Number(process.hrtime.bigint() - t0);
      if (v === undefined || Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.byteLength), valueOf(id)) !== 0) errors++;
      if ((i & 1023) === 0) sampleRss();
    }
    phases.push(ph.stop(readOrder.length, errors));

    // 3. durable puts, one writer; then every acknowledged write must read back
    ph = new Phase("durable", durableOrder.length, dbDir);
    lat = ph.lat;
    ph.start();
    for (let i = 0; i < durableOrder.length; i++) {
      const id = durableOrder[i];
      writeKey(key, id);
      const v = valueOf(id);
      const t0 = process.hrtime.bigint();
      await db.put_with_options(key, v, putOpts, wait);
      lat[i] = Number(process.hrtime.bigint() - t0);
      if ((i & 1023) === 0) sampleRss();
    }
    const durable = ph.stop(durableOrder.length, 0);
    let missing = 0;
    for (const id of durableOrder) {
      writeKey(key, id);
      const v = await db.get(key);
      if (v === undefined || Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.byteLength), valueOf(id)) !== 0) missing++;
    }
    durable.errors = missing;
    phases.push(durable);

    await db.shutdown();
    const out = JSON.stringify({
      slatedb_version: version,
      binding_dir: dir,
      node: process.version,
      settings: effective,
      block_size: "Block4Kib",
      phases,
    });
    await new Promise((res, rej) => process.stdout.write(out + "\n", (e) => (e ? rej(e) : res())));
  } finally {
    clearInterval(timer);
    if (db) db.dispose();
    builder.dispose();
    settings.dispose();
    store.dispose();
  }
}

main().catch((e) => {
  console.error(`[slatedb-bench] error: ${e?.stack ?? e}`);
  process.exitCode = 1;
});
