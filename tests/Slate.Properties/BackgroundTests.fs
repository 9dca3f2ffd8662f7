/// Background jobs: logging of the writer, compactor and GC (a capturing logger factory), the
/// back-off of failing compactions (pure planner and bookkeeping properties, and a compactor
/// driven tick by tick), close cutting background work short over a dead store, and the merge
/// operator of the standalone C# compactor.
module Slate.Properties.BackgroundTests

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Microsoft.Extensions.Logging
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

// ---------------------------------------------------------------- capturing logs

/// One captured log entry.
[<NoComparison; NoEquality>]
type Captured =
    { Category: string
      Level: LogLevel
      Message: string
      Error: exn option }

/// A logger factory (and provider) that records every entry of every level.
type CapturingLogs() =
    let entries = ConcurrentQueue<Captured>()

    let logger (category: string) =
        { new ILogger with
            member _.BeginScope(_state) =
                { new IDisposable with
                    member _.Dispose() = () }

            member _.IsEnabled _ = true

            member _.Log(level, _eventId, state, error, formatter) =
                entries.Enqueue
                    { Category = category
                      Level = level
                      Message = formatter.Invoke(state, error)
                      Error = Option.ofObj error } }

    /// Everything logged so far, in order.
    member _.Entries: Captured list = List.ofSeq entries

    /// Entries of one category at one level.
    member this.Of(category: string, level: LogLevel) : Captured list =
        this.Entries |> List.filter (fun e -> e.Category = category && e.Level = level)

    interface ILoggerProvider with
        member _.CreateLogger category = logger category

    interface ILoggerFactory with
        member _.CreateLogger category = logger category
        member _.AddProvider _ = ()

    interface IDisposable with
        member _.Dispose() = ()

let private containing (text: string) (es: Captured list) =
    es |> List.filter (fun e -> e.Message.Contains(text, StringComparison.Ordinal))

// ---------------------------------------------------------------- fixtures

let private poll = TimeSpan.FromMilliseconds 20.0

/// Writes `n` L0 SSTs of `rows` rows each: puts of `prefix` keys, or merges when `merge`.
let private writeL0s (db: Db) (prefix: string) (merge: bool) (n: int) (rows: int) : unit =
    for s in 0 .. n - 1 do
        for i in 0 .. rows - 1 do
            let k = utf8 (sprintf "%s%03d" prefix i)
            let v = utf8 (sprintf "%d" s)

            let op =
                if merge then
                    WriteOp.Merge(k, v, Ttl.Default)
                else
                    WriteOp.Put(k, v, Ttl.Default)

            awaitU (db.WriteAsync([ op ], ct))

        awaitU (db.FlushAsync(FlushKind.MemTable, ct))

let private latestOf (store: IObjectStore) (path: string) : Manifest =
    match await (ManifestStore(store, path).ReadLatestAsync ct) with
    | Some m -> m.Manifest
    | None -> failtest "no manifest"

/// The expected value of a merged key after `n` merges "0", "1", ...
let private merged (n: int) =
    String.Join("", [ for s in 0 .. n - 1 -> string s ])

// ---------------------------------------------------------------- pure properties

let private planArb =
    Arb.fromGen (
        gen {
            let! m = SizeTieredProps.manifestGen
            let! minS = Gen.choose (2, 4)
            let! conc = Gen.choose (1, 4)

            let opts =
                { SizeTiered.defaultOptions with
                    MinSources = minS
                    MaxSources = minS + 2
                    MaxConcurrent = conc }

            let all = SizeTiered.propose opts m [] |> List.map SizeTiered.sourcesOf
            let! keep = Gen.listOfLength all.Length (Gen.elements [ true; false ])

            let excluded = List.zip all keep |> List.filter snd |> List.map fst |> Set.ofList

            return m, opts, excluded
        }
    )

let private pureTests =
    testList
        "pure"
        [ testProp "proposeExcluding never proposes an excluded source set and equals propose without exclusions"
          <| Prop.forAll planArb (fun (m, opts, excluded) ->
              let out = SizeTiered.proposeExcluding opts m [] excluded

              (out |> List.forall (fun p -> not (excluded.Contains(SizeTiered.sourcesOf p))))
              && SizeTiered.proposeExcluding opts m [] Set.empty = SizeTiered.propose opts m [])

          testProp "excluding the first proposal still proposes when there was a second one"
          <| Prop.forAll planArb (fun (m, opts, _) ->
              match SizeTiered.propose opts m [] with
              | first :: _ :: _ ->
                  let out =
                      SizeTiered.proposeExcluding opts m [] (Set.singleton (SizeTiered.sourcesOf first))

                  not out.IsEmpty
                  && out
                     |> List.forall (fun p -> SizeTiered.sourcesOf p <> SizeTiered.sourcesOf first)
              | _ -> true)

          testProp "the back-off doubles from 2 polls, is capped at 5 minutes and never below one poll"
          <| fun (ms: PositiveInt) (NonNegativeInt n) ->
              let p = TimeSpan.FromMilliseconds(float (ms.Get % 100_000))
              let d = CompactionBackoff.delay p n
              let d1 = CompactionBackoff.delay p (n + 1)

              d >= p
              && d
                 <= (if p > CompactionBackoff.maxDelay then
                         p
                     else
                         CompactionBackoff.maxDelay)
              && d1 >= d
              && (d1 = CompactionBackoff.maxDelay
                  || p > CompactionBackoff.maxDelay
                  || abs ((d1 - d - d).TotalMilliseconds) < 1.0)

          testProp
              "a failed set is excluded until its retry time, counts repeated failures and is pruned with its sources"
          <| Prop.forAll planArb (fun (m, opts, _) ->
              match SizeTiered.propose opts m [] with
              | [] -> true
              | p :: _ ->
                  let s = SizeTiered.sourcesOf p
                  let b1 = CompactionBackoff.recordFailure poll 1000L s CompactionBackoff.empty
                  let b2 = CompactionBackoff.recordFailure poll 2000L s b1
                  let e1 = b1[s]
                  let e2 = b2[s]
                  let gone = { m with L0 = []; Compacted = [] }

                  e1.Failures = 1
                  && e1.RetryAtMs = 1000L + 40L
                  && e2.Failures = 2
                  && e2.RetryAtMs = 2000L + 80L
                  && (CompactionBackoff.excluded 1039L b1).Contains s
                  && not ((CompactionBackoff.excluded 1040L b1).Contains s)
                  && CompactionBackoff.prune m b2 = b2
                  && (CompactionBackoff.prune gone b2).IsEmpty) ]

// ---------------------------------------------------------------- compactor back-off

let private backoffTests =
    testList
        "backoff"
        [ test "a job over merge rows without an operator is retried only after a growing back-off; other jobs run" {
              let store = InMemoryObjectStore() :> IObjectStore

              let withOp =
                  { options with
                      MergeOperator = Some concat }

              let db = openDb store "bo" withOp
              // three sorted runs of puts (four L0s each, compacted while the tree has fewer than
              // four runs), then four L0s holding merge rows
              let setup =
                  { CompactorSettings.defaults with
                      PollInterval = poll }

              for r in 0..2 do
                  writeL0s db (sprintf "p%d-" r) false 4 8
                  let c = await (Compactor.StartAsync(store, "bo", setup, withOp, None, ignore, ct))
                  awaitU (c.DrainAsync ct)

              Expect.equal (latestOf store "bo").Compacted.Length 3 "three sorted runs"
              writeL0s db "m" true 4 8
              let before = latestOf store "bo"
              Expect.equal before.L0.Length 4 "four L0s with merge rows"

              let clock = GcFixtures.ManualClock(DateTimeOffset.UtcNow)
              let logs = new CapturingLogs()
              let reports = ConcurrentQueue<CompactionReport>()

              let s =
                  { setup with
                      MinCompactionSources = 3
                      MaxCompactionSources = 4 }

              let o =
                  { options with
                      TimeProvider = clock
                      LoggerFactory = logs }

              let c = await (Compactor.StartAsync(store, "bo", s, o, None, reports.Enqueue, ct))
              let ticks = 64

              for _ in 1..ticks do
                  awaitU (c.TickAsync ct)
                  awaitU (c.WaitRunningAsync())
                  clock.Advance poll

              awaitU (c.TickAsync ct)
              let failures = reports |> Seq.filter (fun r -> r.Error.IsSome) |> List.ofSeq
              let successes = reports |> Seq.filter (fun r -> r.Error.IsNone) |> List.ofSeq
              let l0Ids = before.L0 |> List.map (fun h -> h.Id)

              for f in failures do
                  Expect.equal f.L0Sources l0Ids "only the merge L0s fail"
                  Expect.stringContains f.Error.Value "merge operator" "the cause"

              // failures at ticks ~1, 3, 7, 15, 31, 63 (2, 4, 8, ... polls apart): about log2(ticks)
              Expect.isGreaterThanOrEqual failures.Length 3 "retried after the back-off passes"

              Expect.isLessThanOrEqual failures.Length (2 + int (Math.Log2(float ticks))) "not retried every poll"

              Expect.isNonEmpty successes "the sorted-run job ran beside the failing one"
              let after = latestOf store "bo"
              Expect.equal (after.L0 |> List.map (fun h -> h.Id)) l0Ids "L0 untouched"
              Expect.equal after.Compacted.Length 1 "the three runs were merged"

              Expect.isTrue
                  (c.Backoff.ContainsKey { SourceL0 = l0Ids; SourceRuns = [] })
                  "the failing sources are backed off"

              let warnings =
                  logs.Of(Logging.CompactorCategory, LogLevel.Warning) |> containing "failed"

              Expect.equal warnings.Length failures.Length "one warning per failed job"
              Expect.stringContains warnings.Head.Message (Ulid.toString l0Ids.Head) "the warning names the sources"

              let finished =
                  logs.Of(Logging.CompactorCategory, LogLevel.Information)
                  |> containing "finished"

              Expect.equal finished.Length successes.Length "one entry per finished job"
              Expect.stringContains finished.Head.Message "bytes in" "with the sizes"

              for r in 0..2 do
                  for i in 0..7 do
                      Expect.equal (get db readOpts (sprintf "p%d-%03d" r i)) (Some "3") "put value"

              for i in 0..7 do
                  Expect.equal (get db readOpts (sprintf "m%03d" i)) (Some(merged 4)) "merged value"

              awaitU (db.CloseAsync(None, ct))
              let db2 = openDb store "bo" withOp

              for i in 0..7 do
                  Expect.equal (get db2 readOpts (sprintf "m%03d" i)) (Some(merged 4)) "after reopen"

              awaitU (db2.CloseAsync(None, ct))
          } ]

// ---------------------------------------------------------------- logging

let private loggingTests =
    testList
        "logging"
        [ test "writer open and close, GC pass summary and failed deletes are logged at their levels" {
              let inner = InMemoryObjectStore() :> IObjectStore
              let recording = GcFixtures.RecordingStore(inner)
              // no retries: the failing delete surfaces in the pass report at once
              let store =
                  RetryingObjectStore(
                      recording,
                      { RetryOptions.defaults with
                          MaxRetries = Some 0 },
                      TimeProvider.System,
                      Random 3
                  )
                  :> IObjectStore

              let logs = new CapturingLogs()
              let o = { options with LoggerFactory = logs }
              let db = openDb store "lg" o

              for i in 0..4 do
                  put db (sprintf "k%d" i) "v" |> ignore
                  awaitU (db.FlushAsync(FlushKind.MemTable, ct))

              awaitU (db.CloseAsync(None, ct))
              let dbInfo = logs.Of(Logging.DbCategory, LogLevel.Information)
              Expect.equal (dbInfo |> containing "opened" |> List.length) 1 "open logged"
              Expect.equal (dbInfo |> containing "closed" |> List.length) 1 "close logged"
              let ms = ManifestStore(store, "lg")
              let ids = await (ms.ListIdsAsync ct)
              let victim = Paths.key "lg" (ObjectName.Manifest(List.head ids))
              recording.FailDeletes <- Set.singleton victim
              let admin = Admin.Create(store, "lg", TimeProvider.System, Some 1, logs)

              let gc =
                  { GcSettings.defaults with
                      MinAge = TimeSpan.Zero }

              let report = await (admin.RunGarbageCollectionOnceAsync(gc, ct))
              let deleted = (GcReport.directory Paths.ManifestDir report).Deleted
              Expect.isNonEmpty deleted "old manifests deleted"
              Expect.equal (GcReport.failures report |> List.map fst) [ victim ] "the victim failed"
              let summary = logs.Of(Logging.GcCategory, LogLevel.Information)
              Expect.equal summary.Length 1 "one pass summary"

              Expect.stringContains
                  summary.Head.Message
                  (sprintf "%d manifests" deleted.Length)
                  "deleted manifests counted"

              Expect.stringContains summary.Head.Message "1 deletes failed" "failures counted"
              let warn = logs.Of(Logging.GcCategory, LogLevel.Warning)
              Expect.equal warn.Length 1 "one warning"
              Expect.stringContains warn.Head.Message victim "naming the key"
              Expect.isEmpty (logs.Entries |> List.filter (fun e -> e.Level >= LogLevel.Error)) "no errors"
          }

          test "a failed GC pass is logged as an error" {
              let store = InMemoryObjectStore() :> IObjectStore
              let logs = new CapturingLogs()
              let admin = Admin.Create(store, "none", TimeProvider.System, Some 1, logs)

              expectSlate SlateErrorKind.Data "no database" (fun () ->
                  admin.RunGarbageCollectionOnceAsync(GcSettings.defaults, ct))
              |> ignore

              let errors = logs.Of(Logging.GcCategory, LogLevel.Error)
              Expect.equal errors.Length 1 "one error"
              Expect.stringContains errors.Head.Message "failed to find latest manifest" "the cause"
              Expect.isSome errors.Head.Error "with the exception"
          } ]

// ---------------------------------------------------------------- close

let private closeTests =
    testList
        "close"
        [ test "close with embedded GC and compactor over a store failing every request completes; data survives" {
              let inner = InMemoryObjectStore() :> IObjectStore
              let faulty = FaultInjectingObjectStore(inner)
              let logs = new CapturingLogs()

              let o =
                  { options with
                      LoggerFactory = logs
                      Compactor =
                          Some
                              { CompactorSettings.defaults with
                                  PollInterval = poll }
                      GarbageCollector =
                          Some
                              { GcSettings.defaults with
                                  Interval = TimeSpan.FromMilliseconds 30.0
                                  MinAge = TimeSpan.Zero } }

              let db = openDb faulty "cl" o
              writeL0s db "a" false 3 10

              for i in 0..9 do
                  put db (sprintf "w%02d" i) "durable" |> ignore

              awaitU (db.FlushAsync(FlushKind.Wal, ct))
              // let the background jobs start passes and ticks, then fail everything
              Thread.Sleep 200
              faulty.SetSchedule(Func<FaultRequest, FaultAction>(fun _ -> FaultAction.FailBeforeEffect))
              let failedBefore = faulty.FaultCount
              Thread.Sleep 300
              Expect.isGreaterThan faulty.FaultCount failedBefore "background work meets the failing store"

              within 30.0 "CloseAsync(None) over a failing store" (db.CloseAsync(None, ct))
              faulty.Heal()

              Expect.isEmpty
                  (logs.Entries |> List.filter (fun e -> e.Level >= LogLevel.Error))
                  "being cut short by close is not an error"

              let db2 = openDb inner "cl" options

              for i in 0..9 do
                  Expect.equal (get db2 readOpts (sprintf "a%03d" i)) (Some "2") "flushed value"

              for i in 0..9 do
                  Expect.equal (get db2 readOpts (sprintf "w%02d" i)) (Some "durable") "WAL-durable value"

              awaitU (db2.CloseAsync(None, ct))
          } ]

// ---------------------------------------------------------------- C# standalone compactor

let private concatOp =
    { new IMergeOperator with
        member _.Merge(_key, existing, hasExisting, operand) =
            if hasExisting then
                Array.append (existing.ToArray()) (operand.ToArray())
            else
                operand.ToArray() }

/// A database of six L0s of merges ("0" ... "5" on keys m00 ... m09) written through the facade.
let private mergeDb (store: ObjectStore) : Task =
    task {
        let o =
            SlateOptions(
                FlushInterval = Nullable(),
                Compactor = null,
                GarbageCollector = null,
                MergeOperator = concatOp
            )

        let! (client: SlateClient) = SlateClient.OpenAsync("db", store, o)

        for s in 0..5 do
            for i in 0..9 do
                let! _ = client.MergeAsync(sprintf "m%02d" i, string s)
                ()

            do! client.FlushAsync(FlushType.MemTable)

        do! client.CloseAsync()
    }

let private readAll (store: ObjectStore) : Task<string list> =
    task {
        let o =
            SlateOptions(
                FlushInterval = Nullable(),
                Compactor = null,
                GarbageCollector = null,
                MergeOperator = concatOp
            )

        let! (client: SlateClient) = SlateClient.OpenAsync("db", store, o)
        let acc = ResizeArray()

        for i in 0..9 do
            let! (v: string) = client.GetStringAsync(sprintf "m%02d" i)
            acc.Add v

        do! client.CloseAsync()
        return List.ofSeq acc
    }

let private facadeTests =
    testList
        "facade"
        [ testTask "SlateAdmin.RunCompactorAsync combines merge rows with CompactorOptions.MergeOperator" {
              let store = ObjectStore.InMemory()
              do! mergeDb store
              let logs = new CapturingLogs()
              let admin = SlateAdmin.Create("db", store, logs)
              let cts = new CancellationTokenSource()

              let running =
                  admin.RunCompactorAsync(CompactorOptions(PollInterval = poll, MergeOperator = concatOp), cts.Token)

              let deadline = DateTime.UtcNow.AddSeconds 60.0
              let! (m0: ManifestInfo) = admin.ReadManifestAsync()
              let mutable latest = m0

              while (latest.L0.Count > 0 || latest.SortedRuns.Count = 0)
                    && DateTime.UtcNow < deadline do
                  do! Task.Delay 20
                  let! (m: ManifestInfo) = admin.ReadManifestAsync()
                  latest <- m

              cts.Cancel()
              do! running
              cts.Dispose()
              Expect.equal latest.L0.Count 0 "L0 compacted away"
              Expect.equal latest.SortedRuns.Count 1 "into one sorted run"
              let! values = readAll store
              Expect.equal values (List.replicate 10 (merged 6)) "merged values"
              let info = logs.Of(Logging.CompactorCategory, LogLevel.Information)
              Expect.isNonEmpty (info |> containing "planned") "planning logged"
              Expect.isNonEmpty (info |> containing "finished") "the job logged"
              Expect.isNonEmpty (info |> containing "stopped") "stop logged"
              Expect.isEmpty (logs.Of(Logging.CompactorCategory, LogLevel.Warning)) "no failure"
          }

          testTask "without CompactorOptions.MergeOperator the job fails, is logged and backed off; data stays readable" {
              let store = ObjectStore.InMemory()
              do! mergeDb store
              let logs = new CapturingLogs()
              let admin = SlateAdmin.Create("db", store, logs)
              let! (before: ManifestInfo) = admin.ReadManifestAsync()
              let cts = new CancellationTokenSource()

              let running =
                  admin.RunCompactorAsync(CompactorOptions(PollInterval = poll), cts.Token)
              // 50 polls: without the back-off about one attempt per poll or two
              do! Task.Delay(TimeSpan.FromMilliseconds(50.0 * poll.TotalMilliseconds))
              cts.Cancel()
              do! running
              cts.Dispose()
              let warnings = logs.Of(Logging.CompactorCategory, LogLevel.Warning)
              Expect.isNonEmpty warnings "the failure is logged"
              Expect.stringContains warnings.Head.Message "merge operator" "naming the cause"
              Expect.isLessThanOrEqual warnings.Length 8 "backed off, not retried every poll"
              let! (after: ManifestInfo) = admin.ReadManifestAsync()
              Expect.equal after.L0.Count before.L0.Count "L0 untouched"
              Expect.equal after.SortedRuns.Count 0 "no sorted run"
              let! values = readAll store
              Expect.equal values (List.replicate 10 (merged 6)) "values readable"
          }

          testTask "an embedded CompactorOptions.MergeOperator other than SlateOptions.MergeOperator is Invalid at open" {
              let store = ObjectStore.InMemory()

              let other =
                  { new IMergeOperator with
                      member _.Merge(_, _, _, o) = o.ToArray() }

              let bad =
                  SlateOptions(MergeOperator = concatOp, Compactor = CompactorOptions(MergeOperator = other))

              let! (caught: SlateException option) =
                  task {
                      try
                          let! (c: SlateClient) = SlateClient.OpenAsync("db", store, bad)
                          do! c.CloseAsync()
                          return None
                      with :? SlateException as e ->
                          return Some e
                  }

              match caught with
              | None -> failtest "open succeeded"
              | Some e ->
                  Expect.equal e.Kind SlateErrorKind.Invalid "kind"
                  Expect.stringContains e.Message "MergeOperator" "names the option"

              Expect.isEmpty (await (store.Inner.ListAsync("db/", ct))) "nothing written"

              // the same operator is fine; SlateOptions.LoggerFactory reaches the writer and its compactor
              let logs = new CapturingLogs()

              let same =
                  SlateOptions(
                      MergeOperator = concatOp,
                      Compactor = CompactorOptions(MergeOperator = concatOp),
                      LoggerFactory = logs
                  )

              let! (c: SlateClient) = SlateClient.OpenAsync("db", store, same)
              let deadline = DateTime.UtcNow.AddSeconds 20.0

              let started () =
                  not (logs.Of(Logging.CompactorCategory, LogLevel.Information) |> containing "started").IsEmpty

              while not (started ()) && DateTime.UtcNow < deadline do
                  do! Task.Delay 10

              do! c.CloseAsync()
              let dbInfo = logs.Of(Logging.DbCategory, LogLevel.Information)
              Expect.isNonEmpty (dbInfo |> containing "opened") "open logged"
              Expect.isNonEmpty (dbInfo |> containing "closed") "close logged"

              Expect.isNonEmpty
                  (logs.Of(Logging.CompactorCategory, LogLevel.Information) |> containing "started")
                  "the embedded compactor logs its start"
          } ]

let allTests =
    testList "Background" [ pureTests; backoffTests; loggingTests; closeTests; facadeTests ]
