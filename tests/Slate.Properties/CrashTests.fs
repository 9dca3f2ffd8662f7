/// Fencing between writers (SPEC §5.3, invariants 18, 20), corrupt persisted data (SPEC §8 `Data`)
/// and crash recovery with a fault-injecting store (invariants 21, 22).
module Slate.Properties.CrashTests

open System
open System.Collections.Concurrent
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.EngineTests.Eng

/// Forwards everything and records the keys of successful puts (one per writer, so a test can tell
/// which writer created what).
type private RecordingStore(inner: IObjectStore) =
    let created = ConcurrentQueue<string>()

    member _.Created: string list = List.ofSeq created

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            task {
                let! r = inner.PutAsync(key, data, mode, attributes, ct)
                created.Enqueue key
                return r
            }

        member _.GetAsync(key, ct) = inner.GetAsync(key, ct)
        member _.GetRangeAsync(key, s, e, ct) = inner.GetRangeAsync(key, s, e, ct)
        member _.HeadAsync(key, ct) = inner.HeadAsync(key, ct)
        member _.ListAsync(prefix, ct) = inner.ListAsync(prefix, ct)
        member _.DeleteAsync(key, ct) = inner.DeleteAsync(key, ct)
        member _.Describe = inner.Describe

let private isMeta (path: string) (key: string) =
    key.StartsWith(Paths.dirPrefix path Paths.WalDir, StringComparison.Ordinal)
    || key.StartsWith(Paths.dirPrefix path Paths.ManifestDir, StringComparison.Ordinal)

let private fencingTests =
    testList
        "fencing"
        [ test "the older writer is fenced on its next durable write and flush; the newer loses nothing" {
              let store = InMemoryObjectStore() :> IObjectStore
              let path = "fence"
              let ra = RecordingStore(store)
              let rb = RecordingStore(store)
              let a = openDb ra path options
              let x1 = put a "x1" "a"
              awaitU (a.AwaitDurableAsync(x1.Seq, ct))
              let b = openDb rb path options
              Expect.isGreaterThan b.WriterEpoch a.WriterEpoch "newer epoch"
              let before = ra.Created.Length
              let x2 = put a "x2" "a" // accepted into A's memtable ...
              expectClosed CloseReason.Fenced "A AwaitDurable" (fun () -> a.AwaitDurableAsync(x2.Seq, ct))
              expectClosed CloseReason.Fenced "A Flush(Wal)" (fun () -> a.FlushAsync(FlushKind.Wal, ct))
              expectClosed CloseReason.Fenced "A Flush(MemTable)" (fun () -> a.FlushAsync(FlushKind.MemTable, ct))
              expectClosed CloseReason.Fenced "A write" (fun () -> a.WriteAsync([ WriteOp.Delete(utf8 "x1") ], ct))
              expectClosed CloseReason.Fenced "A get" (fun () -> a.GetAsync(utf8 "x1", readOpts, ct))
              expectClosed CloseReason.Fenced "A close" (fun () -> a.CloseAsync(Some FlushKind.MemTable, ct))
              Expect.equal a.CloseReason (Some CloseReason.Fenced) "A's close reason"

              let aFenced = ra.Created |> List.skip before |> List.filter (isMeta path)
              Expect.equal aFenced [] "A created no WAL SST and no manifest after B opened"

              for i in 1..20 do
                  let w = put b (sprintf "b%02d" i) (string i)
                  awaitU (b.AwaitDurableAsync(w.Seq, ct))

                  if i % 7 = 0 then
                      awaitU (b.FlushAsync(FlushKind.MemTable, ct))

              swallow (fun () -> b.CloseAsync(None, ct)) // acknowledged writes only
              let c = openDb store path options

              Expect.equal
                  (scanAll c readOpts)
                  (("x1", "a") :: [ for i in 1..20 -> sprintf "b%02d" i, string i ] |> List.sort)
                  "every acknowledged write survives; A's fenced write does not"

              awaitU (c.CloseAsync(None, ct))
              checkStore store path
              let wals = (ra.Created @ rb.Created) |> List.filter (fun k -> k.Contains "/wal/")
              Expect.equal (List.distinct wals) wals "each WAL id was created once"
          }

          test "WAL disabled: the manifest epoch fences the older writer's L0 publish" {
              let store = InMemoryObjectStore() :> IObjectStore
              let o = { options with WalEnabled = false }
              let ra = RecordingStore(store)
              let a = openDb ra "fence2" o
              put a "a" "1" |> ignore
              let b = openDb store "fence2" o
              let before = ra.Created.Length
              expectClosed CloseReason.Fenced "A Flush(MemTable)" (fun () -> a.FlushAsync(FlushKind.MemTable, ct))
              let aMeta = ra.Created |> List.skip before |> List.filter (isMeta "fence2")
              Expect.equal aMeta [] "A wrote no manifest"
              Expect.equal (scanAll b readOpts) [] "A's unpublished write is not visible to B"
              awaitU (b.CloseAsync(Some FlushKind.MemTable, ct))
              checkStore store "fence2"
          }

          test "an idle older writer learns it is fenced from the manifest poll" {
              let store = InMemoryObjectStore() :> IObjectStore

              let o =
                  { options with
                      ManifestPollInterval = TimeSpan.FromMilliseconds 20.0 }

              let a = openDb store "fence3" o
              let b = openDb store "fence3" o
              let deadline = DateTime.UtcNow.AddSeconds 10.0

              while a.CloseReason.IsNone && DateTime.UtcNow < deadline do
                  Threading.Thread.Sleep 10

              Expect.equal a.CloseReason (Some CloseReason.Fenced) "fenced by the poller"

              let e =
                  expectSlate SlateErrorKind.Closed "A write" (fun () -> a.WriteAsync([ WriteOp.Delete(utf8 "k") ], ct))

              Expect.stringContains e.Message "detected newer DB client" "message"
              awaitU (b.CloseAsync(None, ct))
          }

          test "concurrent writers: every durably acknowledged write of either survives" {
              let store = InMemoryObjectStore() :> IObjectStore

              let o =
                  { options with
                      FlushInterval = Some(TimeSpan.FromMilliseconds 2.0) }

              let a = openDb store "race" o
              let ackedA = ConcurrentBag<string>()

              let writerA =
                  Task.Run(fun () ->
                      let mutable go = true
                      let mutable i = 0

                      while go do
                          i <- i + 1

                          try
                              let k = sprintf "a%04d" i
                              let w = put a k "a"
                              awaitU (a.AwaitDurableAsync(w.Seq, ct))
                              ackedA.Add k
                          with :? SlateException ->
                              go <- false)

              Threading.Thread.Sleep 20
              let b = openDb store "race" o
              let ackedB = ResizeArray<string>()

              for i in 1..50 do
                  let k = sprintf "b%04d" i
                  let w = put b k "b"
                  awaitU (b.AwaitDurableAsync(w.Seq, ct))
                  ackedB.Add k

              within 20.0 "writer A stops once fenced" writerA
              Expect.equal a.CloseReason (Some CloseReason.Fenced) "A is fenced"
              swallow (fun () -> b.CloseAsync(None, ct))
              let c = openDb store "race" o
              let keys = scanAll c readOpts |> List.map fst |> Set.ofList

              for k in Seq.append ackedA ackedB do
                  Expect.isTrue (keys.Contains k) (sprintf "acknowledged %s survives" k)

              awaitU (c.CloseAsync(None, ct))
              checkStore store "race"
          } ]

// ---------------------------------------------------------------------------------------------
// Corrupt persisted data
// ---------------------------------------------------------------------------------------------

let private objects (s: InMemoryObjectStore) : Map<string, byte[]> =
    let st = s :> IObjectStore
    s.Keys |> Seq.map (fun k -> k, (await (st.GetAsync(k, ct))).Data) |> Map.ofSeq

let private overwrite (s: InMemoryObjectStore) (key: string) (f: byte[] -> unit) : unit =
    let st = s :> IObjectStore
    let bytes = (await (st.GetAsync(key, ct))).Data
    f bytes

    await (st.PutAsync(key, ReadOnlyMemory bytes, PutMode.Overwrite, ObjectStore.noAttributes, ct))
    |> ignore

/// Every object present before is still present with the same bytes.
let private unchanged (before: Map<string, byte[]>) (s: InMemoryObjectStore) : unit =
    let after = objects s

    for KeyValue(k, v) in before do
        match Map.tryFind k after with
        | Some v2 -> Expect.isTrue (v = v2) (sprintf "%s was rewritten" k)
        | None -> failtestf "%s was deleted" k

let private expectDataNaming (key: string) (what: string) (f: unit -> Task) : unit =
    let e = expectSlate SlateErrorKind.Data what f
    Expect.stringContains e.Message key (sprintf "%s: the message names the object" what)

let private corruptionTests =
    testList
        "corruption"
        [ test "a flipped byte in an L0 SST: reads fail with Data naming it; nothing is rewritten" {
              let s = InMemoryObjectStore()
              let db = openDb s "bad" options

              for i in 0..9 do
                  put db (sprintf "k%d" i) "value" |> ignore

              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              let sst = s.Keys |> Seq.find (fun k -> k.Contains "/compacted/")
              overwrite s sst (fun b -> b[10] <- b[10] ^^^ 0xFFuy)
              let db2 = openDb s "bad" options
              let before = objects s
              expectDataNaming sst "get" (fun () -> db2.GetAsync(utf8 "k0", readOpts, ct))

              expectDataNaming sst "scan" (fun () -> (iterator db2 readOpts KeyRange.all false None).NextAsync ct)

              let it = iterator db2 readOpts KeyRange.all false None
              expectDataNaming sst "scan" (fun () -> it.NextAsync ct)
              expectDataNaming sst "the scan's error is sticky" (fun () -> it.NextAsync ct)
              unchanged before s
              awaitU (db2.CloseAsync(None, ct))
              unchanged before s
          }

          test "a flipped byte in a WAL SST inside the replay range: open fails with Data naming it" {
              let s = InMemoryObjectStore()
              let db = openDb s "badwal" options
              put db "a" "1" |> ignore
              awaitU (db.FlushAsync(FlushKind.Wal, ct))
              awaitU (db.CloseAsync(None, ct))
              let wal = Paths.key "badwal" (ObjectName.Wal 2UL)
              Expect.contains s.Keys wal "the data WAL exists"
              overwrite s wal (fun b -> b[5] <- b[5] ^^^ 0xFFuy)
              let before = objects s
              expectDataNaming wal "open" (fun () -> Db.OpenAsync(s, "badwal", options, ct))
              expectDataNaming wal "open again" (fun () -> Db.OpenAsync(s, "badwal", options, ct))
              unchanged before s
          }

          testList
              "manifest"
              [ for name, f in
                    [ "version byte", (fun (b: byte[]) -> b[1] <- b[1] ^^^ 0xFFuy)
                      "FlatBuffer root offset",
                      (fun (b: byte[]) ->
                          for i in 2..5 do
                              b[i] <- 0xFFuy) ] ->
                    test (sprintf "a corrupt %s in the latest manifest: open fails with Data naming it" name) {
                        let s = InMemoryObjectStore()
                        let db = openDb s "badman" options
                        put db "a" "1" |> ignore
                        awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                        let latest = (manifests s "badman" |> List.last).Id
                        let key = Paths.key "badman" (ObjectName.Manifest latest)
                        overwrite s key f
                        let before = objects s
                        expectDataNaming key "open" (fun () -> Db.OpenAsync(s, "badman", options, ct))

                        Expect.equal
                            (objects s |> Map.keys |> List.ofSeq)
                            (before |> Map.keys |> List.ofSeq)
                            "no new objects"

                        unchanged before s
                    } ] ]

// ---------------------------------------------------------------------------------------------
// Crash recovery
// ---------------------------------------------------------------------------------------------

type private Step =
    | Batch of (string * string option) list // key, value (None = delete)
    | Await
    | Flush of FlushKind

[<NoComparison; NoEquality>]
type private Workload =
    { Options: DbOptions; Steps: Step list }

let private workload (rng: Random) (wal: bool) : Workload =
    let keys = [| "a"; "b"; "c"; "d"; "e"; "f" |]
    let mutable n = 0

    let step () =
        match rng.Next 10 with
        | 0
        | 1 -> if wal then Await else Flush FlushKind.MemTable
        | 2 -> Flush(if wal then FlushKind.Wal else FlushKind.MemTable)
        | 3 -> Flush FlushKind.MemTable
        | _ ->
            Batch
                [ for _ in 0 .. rng.Next 3 do
                      n <- n + 1
                      let k = keys[rng.Next keys.Length]

                      if rng.Next 5 = 0 then
                          k, None
                      else
                          k, Some((sprintf "%d:" n).PadRight(rng.Next(1, 300), '~')) ]

    { Options =
        { options with
            WalEnabled = wal
            FlushInterval =
                (if rng.Next 4 = 0 then
                     Some(TimeSpan.FromMilliseconds 3.0)
                 else
                     None) }
      Steps = List.init (rng.Next(5, 30)) (fun _ -> step ()) }

/// Runs the workload until it ends or the store fails; returns the submitted batches (seq, ops)
/// and the highest durably acknowledged seq.
let private execute (store: IObjectStore) (w: Workload) : (uint64 * (string * string option) list) list * uint64 =
    let submitted = ResizeArray()
    let mutable acked = 0UL
    let mutable last = 0UL
    let mutable db: Db option = None

    try
        try
            let d = openDb store "crash" w.Options
            db <- Some d

            for s in w.Steps do
                match s with
                | Batch ops ->
                    let wops =
                        ops
                        |> List.map (fun (k, v) ->
                            match v with
                            | Some v -> WriteOp.Put(utf8 k, utf8 v, Ttl.Default)
                            | None -> WriteOp.Delete(utf8 k))

                    let r = await (d.WriteAsync(wops, ct))
                    submitted.Add(r.Seq, ops)
                    last <- r.Seq
                | Await ->
                    awaitU (d.AwaitDurableAsync(last, ct))
                    acked <- max acked last
                | Flush k ->
                    let target = last
                    awaitU (d.FlushAsync(k, ct))
                    acked <- max acked target

            let target = last
            awaitU (d.CloseAsync(Some FlushKind.MemTable, ct))
            acked <- max acked target
        with
        | :? StoreCrashedException
        | :? SlateException -> ()
    finally
        match db with
        | Some d -> swallow (fun () -> d.CloseAsync(None, ct))
        | None -> ()

    List.ofSeq submitted, acked

let private stateAfter (batches: (uint64 * (string * string option) list) list) (s: uint64) : (string * string) list =
    batches
    |> List.filter (fun (q, _) -> q <= s)
    |> List.sortBy fst
    |> List.fold
        (fun m (_, ops) ->
            ops
            |> List.fold
                (fun m (k, v) ->
                    match v with
                    | Some v -> Map.add k v m
                    | None -> Map.remove k m)
                m)
        Map.empty
    |> Map.toList

/// One crashing phase on `inner`, then a fault-free recovery check. `kept` are the batches
/// recovered by earlier phases (all durable now). Returns the batches recovered after this phase,
/// whether the store crashed, whether it crashed after an acknowledgement, and whether batches
/// beyond the acknowledged ones were recovered.
let private crashPhase
    (rng: Random)
    (where: string)
    (inner: IObjectStore)
    (wal: bool)
    (kept: (uint64 * (string * string option) list) list)
    : (uint64 * (string * string option) list) list * bool * bool * bool =
    let w = workload rng wal
    // a fault-free run over a copy of the state measures how many requests the workload makes
    let copy = InMemoryObjectStore()

    for o in await (inner.ListAsync("", ct)) do
        let data = (await (inner.GetAsync(o.Key, ct))).Data

        await (
            (copy :> IObjectStore).PutAsync(o.Key, ReadOnlyMemory data, PutMode.Overwrite, ObjectStore.noAttributes, ct)
        )
        |> ignore

    let dry = FaultInjectingObjectStore(copy)
    execute dry w |> ignore
    let total = max 1L dry.RequestCount
    let faulty = FaultInjectingObjectStore(inner)
    let n = int64 (rng.Next(1, int total + 1))
    let before = rng.Next 2 = 0
    faulty.CrashAt(n, before)
    let submitted, acked = execute faulty w
    let floor = kept |> List.fold (fun m (q, _) -> max m q) 0UL
    let acked = max acked floor
    let all = kept @ submitted

    let where =
        sprintf "%s, crash at request %d of %d (before effect %b)" where n total before

    let db = openDb inner "crash" w.Options
    let s = db.LastCommittedSeq

    if not (isNull (Environment.GetEnvironmentVariable "SLATE_CRASH_DEBUG")) then
        printfn "%s: floor %d acked %d submitted %A -> recovered %d" where floor acked (List.map fst submitted) s
        let tables = TableStore(inner, "crash", 0, 16)

        for m in manifests inner "crash" do
            let x = m.Manifest

            printfn
                "  manifest %d: epoch %d replay_after %d wal_last_seen %d last_l0_seq %d l0 %A"
                m.Id
                x.WriterEpoch
                x.ReplayAfterWalId
                x.WalIdLastSeen
                x.LastL0Seq
                (x.L0 |> List.map (fun h -> string h.Id))

        for id in walIds inner "crash" do
            let rows = await (tables.TryReadWalAsync(id, ct)) |> Option.defaultValue []
            printfn "  wal %d: seqs %A" id (rows |> List.map (fun r -> r.Seq) |> List.distinct)

    Expect.isTrue
        (s = floor || List.contains s (List.map fst submitted))
        (sprintf "%s: recovered seq %d is a batch boundary" where s)

    Expect.isGreaterThanOrEqual s acked (sprintf "%s: every acknowledged batch is recovered" where)
    Expect.equal (scanAll db readOpts) (stateAfter all s) (sprintf "%s: recovered state = prefix %d" where s)
    awaitU (db.CloseAsync(None, ct))
    checkStore inner "crash"
    all |> List.filter (fun (q, _) -> q <= s), faulty.Crashed, faulty.Crashed && acked > floor, s > acked

/// What one seed exercised on a fresh store: (the store crashed, batches acknowledged before,
/// recovered beyond them). Public: the emulator tests run it on S3 and Azure stores.
let crashOnce (fresh: unit -> IObjectStore) (seed: int) : bool * bool * bool =
    let rng = Random(seed)
    let inner = fresh ()
    let phases = 1 + rng.Next 3
    // one WAL mode per database (reopening with the WAL off replays and republishes the WAL; EngineFlush tests that)
    let wal = rng.Next 4 > 0
    let mutable kept = []
    let mutable stats = (false, false, false)

    for p in 1..phases do
        let k, c, a, b = crashPhase rng (sprintf "seed %d phase %d" seed p) inner wal kept
        kept <- k
        let c0, a0, b0 = stats
        stats <- (c0 || c, a0 || a, b0 || b)

    // the recovered database keeps working
    let o = { options with WalEnabled = wal }
    let db = openDb inner "crash" o
    let s = db.LastCommittedSeq
    let z = put db "z" "after"
    Expect.isGreaterThan z.Seq s (sprintf "seed %d: seqs continue above the recovered maximum" seed)
    awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
    let db2 = openDb inner "crash" o

    Expect.equal
        (scanAll db2 readOpts)
        (stateAfter ((z.Seq, [ "z", Some "after" ]) :: kept) z.Seq)
        (sprintf "seed %d: state after recovery and another reopen" seed)

    awaitU (db2.CloseAsync(None, ct))
    checkStore inner "crash"
    stats

let private seeds () =
    match Environment.GetEnvironmentVariable "SLATE_CRASH_SEEDS" with
    | null
    | "" -> 400
    | n -> int n

/// Random transient faults (half of them lost responses) behind a retrying store with no back-off:
/// every call succeeds and nothing is lost or duplicated (no false `Fenced` from a lost create).
let transientOnce (fresh: unit -> IObjectStore) (seed: int) : int64 =
    let rng = Random(seed)
    let w = workload rng true
    let inner = fresh ()
    let faulty = FaultInjectingObjectStore(inner)
    faulty.FailRandomly(0.15, 0.5, seed)

    let retrying =
        RetryingObjectStore(
            faulty,
            { RetryOptions.defaults with
                InitialDelay = TimeSpan.Zero
                MaxDelay = TimeSpan.Zero },
            TimeProvider.System,
            Random(seed)
        )

    let where = sprintf "seed %d" seed
    let db = openDb retrying "crash" w.Options
    let submitted = ResizeArray()
    let mutable last = 0UL

    for step in w.Steps do
        match step with
        | Batch ops ->
            let wops =
                ops
                |> List.map (fun (k, v) ->
                    match v with
                    | Some v -> WriteOp.Put(utf8 k, utf8 v, Ttl.Default)
                    | None -> WriteOp.Delete(utf8 k))

            let r = await (db.WriteAsync(wops, ct))
            submitted.Add(r.Seq, ops)
            last <- r.Seq
        | Await -> awaitU (db.AwaitDurableAsync(last, ct))
        | Flush k -> awaitU (db.FlushAsync(k, ct))

    let all = List.ofSeq submitted
    Expect.equal (scanAll db readOpts) (stateAfter all last) (sprintf "%s: state under faults" where)
    awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
    let db2 = openDb inner "crash" w.Options
    Expect.equal db2.LastCommittedSeq last (sprintf "%s: every batch recovered" where)
    Expect.equal (scanAll db2 readOpts) (stateAfter all last) (sprintf "%s: state after reopen" where)
    awaitU (db2.CloseAsync(None, ct))
    checkStore inner "crash"
    faulty.FaultCount

let private memory () = InMemoryObjectStore() :> IObjectStore

let private crashTests =
    testList
        "crash"
        [ test "recovery after a crash at a random request equals a prefix with every acknowledged batch" {
              let first =
                  match Environment.GetEnvironmentVariable "SLATE_CRASH_FIRST" with
                  | null
                  | "" -> 1
                  | n -> int n

              let runs = [ for seed in first .. first + seeds () - 1 -> crashOnce memory seed ]
              let count f = runs |> List.filter f |> List.length
              let crashed = count (fun (c, _, _) -> c)
              let ackedThenCrashed = count (fun (c, a, _) -> c && a)
              let beyond = count (fun (c, _, b) -> c && b)

              printfn
                  "crash: %d runs, %d crashed, %d after an acknowledgement, %d recovered unacknowledged batches"
                  runs.Length
                  crashed
                  ackedThenCrashed
                  beyond

              Expect.isGreaterThan (crashed * 10) (runs.Length * 8) "at least 80%% of the runs crash"
              Expect.isGreaterThan ackedThenCrashed (runs.Length / 4) "many crash after an acknowledgement"
          }

          test "transient faults and lost responses behind the retrying store change nothing" {
              let faults =
                  [ for seed in 1 .. seeds () / 4 -> transientOnce memory seed ] |> List.sum

              Expect.isGreaterThan faults (int64 (seeds ())) "many faults were injected"
          } ]

let allTests = testList "Crash" [ fencingTests; corruptionTests; crashTests ]
