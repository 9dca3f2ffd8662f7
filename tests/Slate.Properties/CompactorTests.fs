/// The compactor in the engine (SPEC §5.8-§5.11): embedded and standalone compaction, fencing,
/// crash safety, output splitting, failing jobs, and model equivalence.
module Slate.Properties.CompactorTests

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

/// Fast compactor settings for tests.
let settings: CompactorSettings =
    { CompactorSettings.defaults with
        PollInterval = TimeSpan.FromMilliseconds 20.0 }

/// A writer whose manifest poller adopts compaction results quickly and whose L0 limit is real.
let compactingOptions: DbOptions =
    { options with
        L0MaxSsts = 8
        ManifestPollInterval = TimeSpan.FromMilliseconds 20.0
        MaxUnflushedBytes = 64L * 1024L }

let startCompactor (store: IObjectStore) (path: string) (s: CompactorSettings) (o: DbOptions) : Compactor =
    await (Compactor.StartAsync(store, path, s, o, None, ignore, ct))

let latest (store: IObjectStore) (path: string) : StoredManifest =
    match await (ManifestStore(store, path).ReadLatestAsync ct) with
    | Some m -> m
    | None -> failtest "no manifest"

/// Copies every object of an in-memory store into a new one.
let copyStore (src: IObjectStore) : IObjectStore =
    let dst = InMemoryObjectStore() :> IObjectStore

    for m in await (src.ListAsync("", ct)) do
        let r = await (src.GetAsync(m.Key, ct))
        awaitU (dst.PutAsync(m.Key, ReadOnlyMemory r.Data, PutMode.Overwrite, ObjectStore.noAttributes, ct))

    dst

/// Every row of an SST object.
let sstRows (store: IObjectStore) (path: string) (id: Ulid) : RowEntry list =
    let r = await (store.GetAsync(Paths.key path (ObjectName.Compacted id), ct))
    okOrFail (Sst.readAll r.Data)

let waitUntil (seconds: float) (what: string) (cond: unit -> bool) : unit =
    let sw = Diagnostics.Stopwatch.StartNew()

    while not (cond ()) do
        if sw.Elapsed.TotalSeconds > seconds then
            failtestf "%s did not happen within %.0f s" what seconds

        Thread.Sleep 20

/// Writes `n` keys (`k00000` ...) with values tagged by `round`; returns the model.
let load (db: Db) (n: int) (round: int) (model: Map<string, string>) : Map<string, string> =
    let mutable m = model

    for i in 0 .. n - 1 do
        let k = sprintf "k%05d" ((i * 7919) % n)
        let v = sprintf "v%d-%d-%s" round i (String('x', 20))
        put db k v |> ignore
        m <- Map.add k v m

    m

/// Holds the whole and ranged reads of `gated` keys until `release` completes (a job kept
/// running until a test lets it go); everything else goes straight to `inner`.
type private GatedStore(inner: IObjectStore, gated: Set<string>, release: Task) =
    let hold (key: string) =
        if gated.Contains key then
            release.WaitAsync limit
        else
            Task.CompletedTask

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            inner.PutAsync(key, data, mode, attributes, ct)

        member _.GetAsync(key, ct) =
            task {
                do! hold key
                return! inner.GetAsync(key, ct)
            }

        member _.GetRangeAsync(key, start, endExclusive, ct) =
            task {
                do! hold key
                return! inner.GetRangeAsync(key, start, endExclusive, ct)
            }

        member _.HeadAsync(key, ct) = inner.HeadAsync(key, ct)
        member _.ListAsync(prefix, ct) = inner.ListAsync(prefix, ct)
        member _.DeleteAsync(key, ct) = inner.DeleteAsync(key, ct)
        member _.Describe = inner.Describe

/// Writes `l0s` L0 SSTs of `rows` fresh keys each (prefix `tag`); returns the model.
let private writeL0s (db: Db) (tag: string) (l0s: int) (rows: int) (model: Map<string, string>) =
    let mutable m = model

    for i in 0 .. l0s - 1 do
        for r in 0 .. rows - 1 do
            let k = sprintf "%s-%d-%04d" tag i r
            let v = sprintf "v-%s" (String('y', 30))
            put db k v |> ignore
            m <- Map.add k v m

        awaitU (db.FlushAsync(FlushKind.MemTable, ct))

    m

let private embeddedTests =
    testList
        "embedded"
        [ test "a bulk load with a small L0 compacts into sorted runs and every key reads its latest value" {
              let store = InMemoryObjectStore() :> IObjectStore

              let o =
                  { compactingOptions with
                      Compactor = Some settings }

              let db = openDb store "bulk" o
              let mutable model = load db 3000 1 Map.empty
              model <- load db 1500 2 model
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))

              waitUntil 20.0 "compaction into a sorted run" (fun () ->
                  let m = (latest store "bulk").Manifest
                  not m.Compacted.IsEmpty && m.L0.Length < o.L0MaxSsts)

              for KeyValue(k, v) in model do
                  Expect.equal (get db readOpts k) (Some v) (sprintf "latest value of %s" k)

              Expect.equal (scanAll db readOpts) (Map.toList model) "scan equals the model"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let m = (latest store "bulk").Manifest
              Expect.isGreaterThan m.CompactorEpoch 0UL "the embedded compactor fenced the manifest"
              Expect.isNonEmpty m.Checkpoints "each commit adds a 15-minute checkpoint"

              for cp in m.Checkpoints do
                  Expect.equal (cp.ExpireTimeS |> Option.map (fun e -> e - cp.CreateTimeS)) (Some 900u) "lifetime"

              let db2 = openDb store "bulk" options
              Expect.equal (scanAll db2 readOpts) (Map.toList model) "after reopen"
              awaitU (db2.CloseAsync(None, ct))
          }

          test "a snapshot reads the same values before and after compaction" {
              let store = InMemoryObjectStore() :> IObjectStore
              let db = openDb store "snap" options
              let before = load db 400 1 Map.empty
              let snap = db.RegisterSnapshot()
              let after = load db 400 2 before
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              let c = startCompactor store "snap" settings options
              awaitU (c.DrainAsync ct)
              Expect.isGreaterThan c.CompletedCount 0 "compactions ran"
              let db2 = db // the writer adopts the results through its poller

              waitUntil 10.0 "the writer adopts the sorted run" (fun () ->
                  not (fst (db2.ScanView(readOpts, None))).Compacted.IsEmpty)

              for KeyValue(k, v) in before do
                  let r = await (db.GetAtAsync(utf8 k, readOpts, snap, ct)) |> Option.map valueOf
                  Expect.equal r (Some v) (sprintf "snapshot value of %s" k)

              for KeyValue(k, v) in after do
                  Expect.equal (get db readOpts k) (Some v) (sprintf "latest value of %s" k)

              db.ReleaseSnapshot snap
              awaitU (db.CloseAsync(None, ct))
          } ]

let private semanticsTests =
    testList
        "semantics"
        [ test "DrainAsync goes on after a failed job: another job still commits, the failure is reported" {
              let store = InMemoryObjectStore() :> IObjectStore

              let o =
                  { options with
                      L0SstSizeBytes = 1L <<< 20 }

              let db = openDb store "drain" o
              // SR ids grow with age reversed in size: SR 0 (2 x 200 rows) is larger than SR 1
              // (2 x 100 rows), so a SizeRatio of 1 never merges them
              let builder =
                  { settings with
                      MinCompactionSources = 2
                      SizeRatio = 1.0 }

              let mutable model = writeL0s db "a" 2 200 Map.empty
              awaitU ((startCompactor store "drain" builder o).DrainAsync ct)
              model <- writeL0s db "b" 2 100 model
              awaitU ((startCompactor store "drain" builder o).DrainAsync ct)
              model <- writeL0s db "c" 2 20 model
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let before = (latest store "drain").Manifest
              Expect.equal before.Compacted.Length 2 "two sorted runs to start with"
              Expect.equal before.L0.Length 2 "two L0 SSTs to start with"
              // the SR job reads the oldest run: one of its SSTs fails every read
              let bad =
                  Paths.key "drain" (ObjectName.Compacted (List.last before.Compacted).Ssts.Head.Id)

              let l0Keys =
                  before.L0
                  |> List.map (fun h -> Paths.key "drain" (ObjectName.Compacted h.Id))
                  |> Set.ofList

              let faulty = FaultInjectingObjectStore(store)

              faulty.SetSchedule(
                  Func<FaultRequest, FaultAction>(fun r ->
                      if r.Key = bad then
                          FaultAction.FailBeforeEffect
                      else
                          FaultAction.Pass)
              )

              // the L0 job is held until a failure has been reported, so it is still running then
              let failedOnce = TaskCompletionSource()
              let gated = GatedStore(faulty, l0Keys, failedOnce.Task) :> IObjectStore
              let reports = ConcurrentQueue<CompactionReport>()

              let observe (r: CompactionReport) =
                  reports.Enqueue r

                  if r.Error.IsSome then
                      failedOnce.TrySetResult() |> ignore

              let s =
                  { settings with
                      MinCompactionSources = 2
                      MaxCompactionSources = 3
                      SizeRatio = 4.0
                      MaxConcurrentCompactions = 2 }

              let c = await (Compactor.StartAsync(gated, "drain", s, o, None, observe, ct))
              awaitU (c.DrainAsync ct)
              Expect.isTrue failedOnce.Task.IsCompleted "a job failed"
              Expect.isGreaterThan c.FailedCount 0 "FailedCount counts it"
              Expect.isGreaterThanOrEqual c.CompletedCount 1 "the L0 job committed in the same drain"
              Expect.equal c.RunningCount 0 "nothing left running"
              let failures = c.DrainFailures
              Expect.isNonEmpty failures "DrainFailures lists the failures"

              for f in failures do
                  Expect.contains f.SortedRunSources (List.last before.Compacted).Id "only jobs over the bad run failed"
                  Expect.stringContains f.Error.Value "injected" "the failure names its cause"

              Expect.isTrue
                  (reports |> Seq.exists (fun r -> r.Error.IsNone && not r.L0Sources.IsEmpty))
                  "the observer saw the L0 job finish"

              let after = (latest store "drain").Manifest
              Expect.isEmpty after.L0 "the L0 SSTs were compacted"
              let db2 = openDb store "drain" o
              Expect.equal (scanAll db2 readOpts) (Map.toList model) "content unchanged"
              awaitU (db2.CloseAsync(None, ct))
          }

          test "tombstones vanish in the last sorted run and deleted keys stay deleted" {
              let store = InMemoryObjectStore() :> IObjectStore
              let db = openDb store "tomb" options
              let mutable model = load db 600 1 Map.empty

              for i in 0..2..599 do
                  let k = sprintf "k%05d" i
                  del db k |> ignore
                  model <- Map.remove k model

              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let l0 = (latest store "tomb").Manifest.L0

              Expect.isTrue
                  (l0
                   |> List.exists (fun h ->
                       sstRows store "tomb" h.Id |> List.exists (fun r -> r.Value = RowValue.Tombstone)))
                  "L0 holds tombstones before compaction"

              // one job over every L0: its destination is the last run
              let s =
                  { settings with
                      MinCompactionSources = 2
                      MaxCompactionSources = 10_000 }

              let c = startCompactor store "tomb" s options
              awaitU (c.DrainAsync ct)
              let m = (latest store "tomb").Manifest
              Expect.isEmpty m.L0 "L0 drained"
              Expect.equal m.Compacted.Length 1 "one (last) sorted run"

              let rows =
                  m.Compacted.Head.Ssts |> List.collect (fun h -> sstRows store "tomb" h.Id)

              Expect.isFalse
                  (rows |> List.exists (fun r -> r.Value = RowValue.Tombstone))
                  "no tombstone in the last run"

              Expect.equal (rows.Length) model.Count "one row per live key"
              let db2 = openDb store "tomb" options
              Expect.equal (scanAll db2 readOpts) (Map.toList model) "content"
              awaitU (db2.CloseAsync(None, ct))
          }

          test "output SSTs are closed once completed data blocks exceed MaxSstSize" {
              let store = InMemoryObjectStore() :> IObjectStore
              let o = { options with BlockSize = 1024 }
              let db = openDb store "split" o
              let model = load db 2000 1 Map.empty
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let max = 4096L
              let c = startCompactor store "split" { settings with MaxSstSize = max } o
              awaitU (c.DrainAsync ct)
              let m = (latest store "split").Manifest
              let ssts = m.Compacted |> List.collect (fun sr -> sr.Ssts)
              Expect.isGreaterThan ssts.Length 4 "several output SSTs"

              for sr in m.Compacted do
                  let closed = sr.Ssts |> List.take (sr.Ssts.Length - 1)

                  for h in closed do
                      let r = await (store.GetAsync(Paths.key "split" (ObjectName.Compacted h.Id), ct))
                      let meta = okOrFail (Sst.openBytes r.Data)
                      let idx = meta.Index
                      let dataEnd = h.Info.FilterOffset
                      let lastStart = idx[idx.Length - 1].Offset
                      Expect.isGreaterThan (int64 lastStart) max "completed blocks exceed MaxSstSize"

                      if idx.Length >= 2 then
                          Expect.isLessThanOrEqual
                              (int64 idx[idx.Length - 2].Offset)
                              max
                              "closed at the first block that crossed the limit"

                      let lastBlock: RowEntry[] =
                          okOrFail (
                              Sst.decodeBlock
                                  meta
                                  (idx.Length - 1)
                                  (ReadOnlySpan(r.Data, int lastStart, int (dataEnd - lastStart)))
                          )

                      Expect.equal lastBlock.Length 1 "ends with a one-row block"

                  let keys =
                      sr.Ssts
                      |> List.collect (fun h -> sstRows store "split" h.Id |> List.map (fun r -> r.Key))

                  Expect.isTrue
                      (keys |> List.pairwise |> List.forall (fun (a, b) -> Bytes.compare a b < 0))
                      "run is key-ordered"

              let db2 = openDb store "split" o
              Expect.equal (scanAll db2 readOpts) (Map.toList model) "content"
              awaitU (db2.CloseAsync(None, ct))
          }

          test "a merge row without a merge operator fails the job and harms nothing" {
              let store = InMemoryObjectStore() :> IObjectStore

              let withOp =
                  { options with
                      MergeOperator = Some concat }

              let db = openDb store "merge" withOp
              let mutable model = Map.empty

              for i in 0..799 do
                  let k = sprintf "m%03d" (i % 100)
                  awaitU (db.WriteAsync([ WriteOp.Merge(utf8 k, utf8 (string (i % 10)), Ttl.Default) ], ct))
                  model <- Map.add k ((Map.tryFind k model |> Option.defaultValue "") + string (i % 10)) model

              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let before = (latest store "merge").Manifest
              let reports = ConcurrentQueue<CompactionReport>()

              let c =
                  await (Compactor.StartAsync(store, "merge", settings, options, None, reports.Enqueue, ct))

              awaitU (c.TickAsync ct)
              Expect.isGreaterThan c.RunningCount 0 "a job started"
              awaitU (c.WaitRunningAsync())
              awaitU (c.TickAsync ct)
              Expect.equal c.CompletedCount 0 "nothing committed"
              Expect.isGreaterThan c.FailedCount 0 "the job failed"
              let r = reports |> Seq.find (fun r -> r.Error.IsSome)
              Expect.stringContains r.Error.Value "merge operator" "failure names the cause"
              let _, st = c.State

              Expect.isTrue
                  (st.Compactions |> List.exists (fun j -> j.Status = CompactionStatus.Failed))
                  "the state records the job Failed"

              let after = (latest store "merge").Manifest
              Expect.equal after.L0 before.L0 "L0 untouched"
              Expect.equal after.Compacted before.Compacted "no sorted run"
              let db2 = openDb store "merge" withOp
              Expect.equal (scanAll db2 readOpts) (Map.toList model) "content unchanged"
              awaitU (db2.CloseAsync(None, ct))
          } ]

let private fencingTests =
    testList
        "fencing"
        [ test "a second compactor fences the first on both namespaces" {
              let store = InMemoryObjectStore() :> IObjectStore
              let db = openDb store "fence" options
              load db 800 1 Map.empty |> ignore
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let a = startCompactor store "fence" settings options
              let b = startCompactor store "fence" settings options
              Expect.isGreaterThan b.Epoch a.Epoch "newer epoch"

              let ids () =
                  await (CompactorStateStore(store, "fence").ListIdsAsync ct)

              let before = ids ()
              expectClosed CloseReason.Fenced "older compactor tick" (fun () -> a.TickAsync ct)
              Expect.equal (ids ()) before "the fenced compactor wrote no state file"
              awaitU (b.DrainAsync ct)
              Expect.isGreaterThan b.CompletedCount 0 "the newer compactor works"
              let _, st = b.State
              Expect.equal st.CompactorEpoch b.Epoch "state carries the newer epoch"
          }

          test "a standalone compactor completes normally when cancelled" {
              let store = InMemoryObjectStore() :> IObjectStore
              let db = openDb store "standalone" options
              let model = load db 1200 1 Map.empty
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              use cts = new CancellationTokenSource()
              let run = CompactorRunner.runAsync store "standalone" settings options cts.Token

              waitUntil 20.0 "the writer sees a sorted run" (fun () ->
                  not (fst (db.ScanView(readOpts, None))).Compacted.IsEmpty)

              cts.Cancel()
              within 10.0 "standalone compactor stop" run
              Expect.isTrue run.IsCompletedSuccessfully "completes normally"
              Expect.equal (scanAll db readOpts) (Map.toList model) "content"
              awaitU (db.CloseAsync(None, ct))
          } ]

/// A database with many L0 SSTs, deletes and overwrites, closed cleanly; and its model.
let private crashBase =
    lazy
        (let store = InMemoryObjectStore() :> IObjectStore
         let db = openDb store "crash" options
         let mutable model = load db 700 1 Map.empty
         model <- load db 300 2 model

         for i in 0..5..299 do
             let k = sprintf "k%05d" i
             del db k |> ignore
             model <- Map.remove k model

         awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
         store, model)

let private crashTests =
    testList
        "crash"
        [ test "a crash at any point of a compaction leaves a database equal to the model (50 seeds)" {
              let baseStore, model = crashBase.Force()

              let s =
                  { settings with
                      MinCompactionSources = 2 }
              // how many mutations a full drain makes
              let probe = FaultInjectingObjectStore(copyStore baseStore)
              let c = startCompactor probe "crash" s options
              awaitU (c.DrainAsync ct)
              let total = probe.MutationCount
              Expect.isGreaterThan total 5L "the drain writes objects"
              let rnd = Random 4242
              let mutable crashed = 0

              for seed in 1..50 do
                  let inner = copyStore baseStore
                  let f = FaultInjectingObjectStore(inner)
                  let at = int64 (rnd.Next(1, int total + 1))
                  f.CrashAtMutation(at, rnd.Next 2 = 0)

                  let outcome =
                      try
                          let c = await (Compactor.StartAsync(f, "crash", s, options, None, ignore, ct))
                          awaitU (c.DrainAsync ct)
                          None
                      with e ->
                          Some e

                  // job scheduling varies with timing, so a late crash point may not be reached
                  if outcome.IsSome then
                      crashed <- crashed + 1

                  let db = openDb inner "crash" options
                  Expect.equal (scanAll db readOpts) (Map.toList model) (sprintf "seed %d: after the crash" seed)
                  awaitU (db.CloseAsync(None, ct))
                  let c2 = startCompactor inner "crash" s options
                  awaitU (c2.DrainAsync ct)
                  let m = (latest inner "crash").Manifest
                  Expect.isNonEmpty m.Compacted (sprintf "seed %d: a restarted compactor finishes" seed)
                  let db = openDb inner "crash" options
                  Expect.equal (scanAll db readOpts) (Map.toList model) (sprintf "seed %d: after recompaction" seed)
                  awaitU (db.CloseAsync(None, ct))

              Expect.isGreaterThanOrEqual crashed 40 "most seeds crashed mid-compaction"
          } ]

type private Op =
    | Put of int * int
    | Delete of int
    | Flush
    | Compact
    | Reopen

let private genOp: Gen<Op> =
    Gen.frequency
        [ 10, Gen.map2 (fun k v -> Put(k, v)) (Gen.choose (0, 60)) (Gen.choose (0, 999))
          3, Gen.map Delete (Gen.choose (0, 60))
          2, Gen.constant Flush
          2, Gen.constant Compact
          1, Gen.constant Reopen ]

let private modelTests =
    testList
        "model"
        [ testPropN 12 "random writes, flushes, compactions and reopens equal a map model"
          <| Prop.forAll (Arb.fromGen (Gen.listOfLength 120 genOp)) (fun ops ->
              let store = InMemoryObjectStore() :> IObjectStore

              let s =
                  { settings with
                      MinCompactionSources = 2 }

              let mutable db = openDb store "model" options
              let mutable model = Map.empty
              let mutable compactor = startCompactor store "model" s options

              for op in ops do
                  match op with
                  | Put(k, v) ->
                      let key = sprintf "key%03d" k
                      put db key (sprintf "val%04d" v) |> ignore
                      model <- Map.add key (sprintf "val%04d" v) model
                  | Delete k ->
                      let key = sprintf "key%03d" k
                      del db key |> ignore
                      model <- Map.remove key model
                  | Flush -> awaitU (db.FlushAsync(FlushKind.MemTable, ct))
                  | Compact -> awaitU (compactor.DrainAsync ct)
                  | Reopen ->
                      awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                      db <- openDb store "model" options
                      compactor <- startCompactor store "model" s options

                  for KeyValue(k, v) in model |> Seq.truncate 3 do
                      Expect.equal (get db readOpts k) (Some v) "get"

              Expect.equal (scanAll db readOpts) (Map.toList model) "scan"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              awaitU (compactor.DrainAsync ct)
              let db2 = openDb store "model" options
              Expect.equal (scanAll db2 readOpts) (Map.toList model) "after reopen and compaction"
              awaitU (db2.CloseAsync(None, ct))) ]

let allTests =
    testList "Compactor" [ embeddedTests; semanticsTests; fencingTests; crashTests; modelTests ]
