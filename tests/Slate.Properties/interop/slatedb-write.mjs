#!/usr/bin/env node
// Applies a list of writes to a database with the real SlateDB (@slatedb/uniffi), opened as the
// writer, in place. Used by Slate's interop tests (InteropTests.fs) to make SlateDB continue a
// database Slate wrote.
//
// usage: node slatedb-write.mjs <store-root|store-url> <db-path> [<plan.json>]   (plan on stdin when omitted)
//
// plan: {
//   "merge": "concat" | null,            install the concat merge operator
//   "settings": { "<name>": <json> },     extra Settings overrides (values are JSON)
//   "steps": [
//     {"op": "put", "key": "<hex>", "value": "<hex>", "ttl_ms": <n>|null},
//     {"op": "delete", "key": "<hex>"},
//     {"op": "merge", "key": "<hex>", "value": "<hex>"},
//     {"op": "batch", "ops": [ put | delete | merge ... ]},
//     {"op": "flush", "kind": "wal" | "memtable"}
//   ]
// }
//
// Always set: flush_interval null, compactor_options null, garbage_collector_options null.
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
    const overrides = {
      flush_interval: null,
      compactor_options: null,
      garbage_collector_options: null,
      ...(plan.settings ?? {}),
    };
    for (const [k, v] of Object.entries(overrides)) settings.set(k, JSON.stringify(v));
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
