#!/usr/bin/env node
// Applies a list of writes to a database with the real SlateDB (@slatedb/uniffi), opened as the
// writer, in place. Used by Slate's interop tests (InteropTests.fs, CompactionInteropTests.fs) to
// make SlateDB continue (and, with its compactor on, compact) a database Slate wrote.
//
// usage: node slatedb-write.mjs <store-root|store-url> <db-path> [<plan.json>]   (plan on stdin when omitted)
//
// plan: {
//   "merge": "concat" | null,            install the concat merge operator
//   "settings": { "<name>": <json> },     extra Settings overrides (values are JSON), applied in
//                                         order with Settings.set; dotted names reach nested fields
//                                         ("compactor_options.poll_interval": "100ms")
//   "steps": [
//     {"op": "put", "key": "<hex>", "value": "<hex>", "ttl_ms": <n>|null},
//     {"op": "delete", "key": "<hex>"},
//     {"op": "merge", "key": "<hex>", "value": "<hex>"},
//     {"op": "batch", "ops": [ put | delete | merge ... ]},
//     {"op": "flush", "kind": "wal" | "memtable"},
//     {"op": "wait_file", "path": "<local file>", "timeout_ms": <n>}
//   ]
// }
//
// wait_file polls (every 50 ms) until the file exists, so that a test can hold SlateDB open (e.g.
// while its compactor works) until it has seen what it waits for; no file within timeout_ms
// (default 60000) is an error (exit 1, "wait_file: ... did not appear within ... ms").
//
// Defaults, set first: flush_interval null, compactor_options null, garbage_collector_options
// null. A default is left out when plan.settings names it or one of its fields ("compactor_options"
// or "compactor_options.<field>"): then SlateDB's own defaults apply to the rest, e.g. the
// in-process compactor runs with its default options plus the overridden fields.
// Writes do not wait for durability; the database is shut down at the end (which flushes the
// WAL). Prints one JSON line per write step: {"step": i, "seq": n, "create_ts": n}.
// Exit status: 0 on success, 1 on error (message on stderr), 2 on bad usage.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

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
    if (JSON.parse(fs.readFileSync(manifest, "utf8")).name !== "@slatedb/uniffi") continue;
    return import(pathToFileURL(path.join(dir, "index.js")).href);
  }
  throw new Error("@slatedb/uniffi not found (set SLATEDB_UNIFFI_DIR to the package folder)");
}

const num = (v) => {
  const b = BigInt(v);
  return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString();
};

const bytes = (h) => Buffer.from(h ?? "", "hex");

const concat = {
  merge(_key, existing, operand) {
    return Buffer.concat([Buffer.from(existing ?? new Uint8Array(0)), Buffer.from(operand)]);
  },
};

async function main() {
  const [root, dbPath, planFile] = process.argv.slice(2);
  if (!root || !dbPath) {
    console.error("usage: node slatedb-write.mjs <store-root> <db-path> [<plan.json>]");
    process.exit(2);
  }
  const plan = JSON.parse(fs.readFileSync(planFile ?? 0, "utf8"));
  const S = await importBinding();
  // a URL (s3://bucket, az://container) is passed through; object_store reads its settings from
  // the environment (AWS_ENDPOINT, AWS_ALLOW_HTTP, ...)
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(root) ? root : "file://" + path.resolve(root).split(path.sep).join("/");
  const store = S.ObjectStore.resolve(url);
  const settings = S.Settings.default();
  const builder = new S.DbBuilder(dbPath, store);
  let db = null;
  const out = [];
  try {
    const extra = Object.entries(plan.settings ?? {});
    const named = (d) => extra.some(([k]) => k === d || k.startsWith(d + "."));
    const defaults = ["flush_interval", "compactor_options", "garbage_collector_options"].filter((d) => !named(d));
    for (const d of defaults) settings.set(d, "null");
    for (const [k, v] of extra) {
      try {
        settings.set(k, JSON.stringify(v));
      } catch (e) {
        throw new Error(`setting ${k} = ${JSON.stringify(v)}: ${e?.message ?? e}`);
      }
    }
    builder.with_settings(settings);
    if (plan.merge === "concat") builder.with_merge_operator(concat);
    db = await builder.build();

    const noWait = { await_durable: false };
    const ttlOf = (o) => (o.ttl_ms == null ? S.Ttl.NoExpiry() : S.Ttl.ExpireAfterTicks(BigInt(o.ttl_ms)));
    for (const [i, step] of (plan.steps ?? []).entries()) {
      let h = null;
      switch (step.op) {
        case "put":
          h = await db.put_with_options(bytes(step.key), bytes(step.value), { ttl: ttlOf(step) }, noWait);
          break;
        case "delete":
          h = await db.delete_with_options(bytes(step.key), noWait);
          break;
        case "merge":
          h = await db.merge_with_options(bytes(step.key), bytes(step.value), { ttl: S.Ttl.NoExpiry() }, noWait);
          break;
        case "batch": {
          const b = new S.WriteBatch();
          try {
            for (const o of step.ops) {
              if (o.op === "put") b.put_with_options(bytes(o.key), bytes(o.value), { ttl: ttlOf(o) });
              else if (o.op === "delete") b.delete(bytes(o.key));
              else if (o.op === "merge") b.merge(bytes(o.key), bytes(o.value));
              else throw new Error(`step ${i}: unknown batch op ${o.op}`);
            }
            h = await db.write_with_options(b, noWait);
          } finally {
            b.dispose();
          }
          break;
        }
        case "flush":
          await db.flush_with_options({ flush_type: step.kind === "memtable" ? S.FlushType.MemTable : S.FlushType.Wal });
          break;
        case "wait_file": {
          const timeout = step.timeout_ms ?? 60000;
          const t0 = Date.now();
          while (!fs.existsSync(step.path)) {
            if (Date.now() - t0 > timeout) throw new Error(`step ${i}: wait_file: ${step.path} did not appear within ${timeout} ms`);
            await new Promise((res) => setTimeout(res, 50));
          }
          break;
        }
        default:
          throw new Error(`step ${i}: unknown op ${step.op}`);
      }
      if (h) out.push(JSON.stringify({ step: i, seq: num(h.seqnum), create_ts: num(h.create_ts) }));
    }
    await db.shutdown();
  } finally {
    if (db) db.dispose();
    builder.dispose();
    settings.dispose();
    store.dispose();
  }
  if (out.length) await new Promise((res, rej) => process.stdout.write(out.join("\n") + "\n", (e) => (e ? rej(e) : res())));
}

main().catch((e) => {
  console.error(`[slatedb-write] error: ${e?.stack ?? e}`);
  process.exitCode = 1;
});
