/// The L0 flush pipeline (SPEC §5.5): parallel uploads with in-order publishes, the flush
/// retention filter (snapshots, merges, TTL), WAL replay with the WAL disabled, and the
/// sequence tracker (SPEC §4.15, §6.1).
module Slate.Properties.EngineFlushTests

open System
open System.Collections.Generic
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

/// A clock the test moves by hand.
type private ManualClock(start: DateTimeOffset) =
    inherit TimeProvider()
    member val Now = start with get, set
    override this.GetUtcNow() = this.Now

/// Counts concurrent PUTs of compacted SSTs and delays them: even-numbered uploads are slow,
/// odd-numbered fast, so that a later upload finishes before an earlier one.
type private GatedStore(inner: IObjectStore) =
    let mutable inFlight = 0
    let mutable maxInFlight = 0
    let mutable started = 0
    let finished = List<string>()

    member _.MaxInFlight = Volatile.Read(&maxInFlight)
    member _.Finished: string list = lock finished (fun () -> List.ofSeq finished)

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            if key.Contains "/compacted/" then
                task {
                    let n = Interlocked.Increment(&started)
                    let now = Interlocked.Increment(&inFlight)

                    lock finished (fun () -> maxInFlight <- max maxInFlight now)

                    try
                        do! Task.Delay((if n % 2 = 1 then 250 else 20), ct)
                        let! r = inner.PutAsync(key, data, mode, attributes, ct)
                        lock finished (fun () -> finished.Add key)
                        return r
                    finally
                        Interlocked.Decrement(&inFlight) |> ignore
                }
            else
                inner.PutAsync(key, data, mode, attributes, ct)

        member _.GetAsync(key, ct) = inner.GetAsync(key, ct)
        member _.GetRangeAsync(key, s, e, ct) = inner.GetRangeAsync(key, s, e, ct)
        member _.HeadAsync(key, ct) = inner.HeadAsync(key, ct)
        member _.ListAsync(prefix, ct) = inner.ListAsync(prefix, ct)
        member _.DeleteAsync(key, ct) = inner.DeleteAsync(key, ct)
        member _.Describe = "gated:" + inner.Describe

let private mem () = InMemoryObjectStore() :> IObjectStore

/// The test options without an embedded compactor or GC (L0 counts are asserted).
let private flushOptions: DbOptions =
    { options with
        Compactor = None
        GarbageCollector = None }

let private latest (store: IObjectStore) (path: string) : Manifest =
    (manifests store path |> List.last).Manifest

/// Every row of an SST, in file order.
let private sstRows (store: IObjectStore) (path: string) (h: SstHandle) : RowEntry list =
    let tables = TableStore(store, path, 0, 16)
    let src = SstSource(tables, h, KeyRange.all, UInt64.MaxValue, false, false)
    let acc = ResizeArray()

    while (src.MoveNextAsync ct).AsTask() |> await do
        acc.Add src.Current

    List.ofSeq acc

let private compactedCount (store: IObjectStore) (path: string) : int =
    await (Store.listParsedAsync store path Paths.CompactedDir ct)
    |> List.filter (fun (n, _) ->
        match n with
        | ObjectName.Compacted _ -> true
        | _ -> false)
    |> List.length

let private pad (n: int) (s: string) = s.PadRight(n, '.')

// ---------------------------------------------------------------------------------------------
// L0FlushParallelism
// ---------------------------------------------------------------------------------------------

let private parallelismTests =
    testList
        "parallel L0 uploads"
        [ for wal in [ true; false ] do
              for par in [ 1; 4 ] ->
                  test (sprintf "L0FlushParallelism %d (WAL %b): concurrent uploads, publishes in freeze order" par wal) {
                      let gated = GatedStore(mem ())
                      let store = gated :> IObjectStore

                      let o =
                          { flushOptions with
                              WalEnabled = wal
                              L0FlushParallelism = par }

                      let db = openDb store "par" o
                      let n = 12

                      // each batch exceeds L0SstSizeBytes: one frozen memtable per batch
                      for i in 0 .. n - 1 do
                          put db (sprintf "k%02d" i) (pad 1100 (string i)) |> ignore

                      within 30.0 "Flush(MemTable)" (db.FlushAsync(FlushKind.MemTable, ct))

                      if par = 1 then
                          Expect.equal gated.MaxInFlight 1 "one upload at a time"
                      else
                          Expect.isGreaterThanOrEqual gated.MaxInFlight 2 "several uploads in flight at once"
                          Expect.isLessThanOrEqual gated.MaxInFlight par "never more than L0FlushParallelism"

                          let finishedIds = gated.Finished

                          let l0Ids =
                              (latest store "par").L0
                              |> List.rev
                              |> List.map (fun h -> Paths.key "par" (ObjectName.Compacted h.Id))

                          Expect.notEqual
                              finishedIds
                              l0Ids
                              "some upload finished before an older one (it waited to publish)"

                      let m = latest store "par"
                      Expect.equal m.L0.Length n "one L0 per frozen memtable"

                      let order =
                          m.L0
                          |> List.rev
                          |> List.map (fun h -> sstRows store "par" h |> List.map (fun r -> str r.Key))

                      Expect.equal order [ for i in 0 .. n - 1 -> [ sprintf "k%02d" i ] ] "publish order = freeze order"

                      let seqs = manifests store "par" |> List.map (fun s -> s.Manifest.LastL0Seq)
                      Expect.equal seqs (List.sort seqs) "last_l0_seq only grows"

                      let l0Sizes = manifests store "par" |> List.map (fun s -> s.Manifest.L0.Length)

                      for a, b in List.pairwise l0Sizes do
                          Expect.isTrue (b = a || b = a + 1) "one L0 published per manifest write"

                      awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                      let db2 = openDb store "par" o

                      Expect.equal
                          (scanAll db2 readOpts)
                          [ for i in 0 .. n - 1 -> sprintf "k%02d" i, pad 1100 (string i) ]
                          "data intact after reopen"

                      awaitU (db2.CloseAsync(None, ct))
                      checkStore store "par"
                  } ]

let private l0LimitTests =
    testList
        "L0MaxSsts"
        [ test "uploads + published L0s never exceed L0MaxSsts while open; close flushes the rest" {
              let store = mem ()

              let o =
                  { flushOptions with
                      L0MaxSsts = 3
                      L0FlushParallelism = 4 }

              let db = openDb store "limit" o

              for i in 0..7 do
                  put db (sprintf "k%02d" i) (pad 1100 (string i)) |> ignore

              awaitU (db.FlushAsync(FlushKind.Wal, ct))
              Thread.Sleep 500
              Expect.equal (latest store "limit").L0.Length 3 "L0 stops at L0MaxSsts"
              Expect.equal (compactedCount store "limit") 3 "no upload beyond the limit"
              Expect.equal (scanAll db readOpts).Length 8 "frozen memtables stay readable"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              Expect.equal (latest store "limit").L0.Length 8 "close publishes every memtable"
              let db2 = openDb store "limit" { o with L0MaxSsts = 100 }
              Expect.equal (scanAll db2 readOpts).Length 8 "all rows after reopen"
              awaitU (db2.CloseAsync(None, ct))
              checkStore store "limit"
          } ]

// ---------------------------------------------------------------------------------------------
// Flush retention
// ---------------------------------------------------------------------------------------------

let private l0RowsOf (store: IObjectStore) (path: string) (key: string) : RowEntry list =
    (latest store path).L0
    |> List.collect (sstRows store path)
    |> List.filter (fun r -> str r.Key = key)

let private retentionTests =
    testList
        "flush retention"
        [ for wal in [ true; false ] ->
              test (sprintf "100 overwrites flush to one row (WAL %b)" wal) {
                  let store = mem ()

                  let o =
                      { flushOptions with
                          WalEnabled = wal
                          L0SstSizeBytes = 1L <<< 20 }

                  let db = openDb store "ow" o

                  for i in 1..100 do
                      put db "k" (string i) |> ignore

                  put db "other" "x" |> ignore
                  awaitU (db.FlushAsync(FlushKind.MemTable, ct))
                  Expect.equal (latest store "ow").L0.Length 1 "one L0 SST"
                  let rows = l0RowsOf store "ow" "k"
                  Expect.equal rows.Length 1 "one row for the key"
                  Expect.equal (valueOf rows.Head) "100" "the newest version"
                  Expect.equal (get db readOpts "k") (Some "100") "read after flush"
                  awaitU (db.CloseAsync(None, ct))
              } ]

let private snapshotRetentionTests =
    testList
        "flush retention with snapshots"
        [ test "a snapshot keeps the version it reads through the flush; released snapshots do not" {
              let store = mem ()
              let db = openDb store "snap" flushOptions
              put db "k" "v1" |> ignore
              let s1 = db.RegisterSnapshot()
              put db "k" "v2" |> ignore
              put db "k" "v3" |> ignore
              let s2 = db.RegisterSnapshot()
              let gone = db.RegisterSnapshot()
              put db "k" "v4" |> ignore
              put db "k" "v5" |> ignore
              del db "k" |> ignore
              db.ReleaseSnapshot gone // s2 is still held at the same seq
              let s3 = db.RegisterSnapshot()
              db.ReleaseSnapshot s3
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              let rows = l0RowsOf store "snap" "k"

              Expect.equal
                  (rows |> List.map (fun r -> r.Value))
                  [ RowValue.Tombstone; RowValue.Value(utf8 "v3"); RowValue.Value(utf8 "v1") ]
                  "newest + one version per held snapshot"

              let at s =
                  await (db.GetAtAsync(utf8 "k", readOpts, s, ct)) |> Option.map valueOf

              Expect.equal (at s1) (Some "v1") "snapshot 1 reads its value after the flush"
              Expect.equal (at s2) (Some "v3") "snapshot 2 reads its value after the flush"
              Expect.equal (get db readOpts "k") None "latest reads the delete"
              db.ReleaseSnapshot s1
              db.ReleaseSnapshot s2
              awaitU (db.CloseAsync(None, ct))
          }

          test "merge operands collapse with the operator, never across a held snapshot" {
              let store = mem ()

              let o =
                  { flushOptions with
                      MergeOperator = Some concat }

              let db = openDb store "merge" o

              let merge k v =
                  await (db.WriteAsync([ WriteOp.Merge(utf8 k, utf8 v, Ttl.Default) ], ct))
                  |> ignore

              for v in [ "a"; "b"; "c" ] do
                  merge "m" v

              put db "p" "x" |> ignore
              merge "p" "1"
              let s = db.RegisterSnapshot()
              merge "p" "2"
              merge "p" "3"
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))

              Expect.equal
                  (l0RowsOf store "merge" "m" |> List.map (fun r -> r.Value))
                  [ RowValue.Merge(utf8 "abc") ]
                  "operands without a base fold into one merge row"

              Expect.equal
                  (l0RowsOf store "merge" "p" |> List.map (fun r -> r.Value))
                  [ RowValue.Merge(utf8 "23"); RowValue.Value(utf8 "x1") ]
                  "folded on each side of the snapshot"

              Expect.equal (get db readOpts "m") (Some "abc") "m"
              Expect.equal (get db readOpts "p") (Some "x123") "p"

              Expect.equal
                  (await (db.GetAtAsync(utf8 "p", readOpts, s, ct)) |> Option.map valueOf)
                  (Some "x1")
                  "the snapshot reads its value"

              db.ReleaseSnapshot s
              awaitU (db.CloseAsync(None, ct))
          } ]

/// One key's versions, newest first, and snapshot seqs, for the pure filter property.
let private versionsGen: Gen<RowEntry list * uint64 list> =
    gen {
        let! n = Gen.choose (1, 12)
        let! gaps = Gen.listOfLength n (Gen.choose (1, 3))
        let seqs = gaps |> List.scan (+) 0 |> List.tail |> List.map uint64

        let! values =
            Gen.listOfLength
                n
                (Gen.frequency
                    [ 3, Gen.elements [ "a"; "b"; "c" ] |> Gen.map (fun s -> RowValue.Value(utf8 s))
                      1, Gen.constant RowValue.Tombstone
                      3, Gen.elements [ "x"; "y"; "z" ] |> Gen.map (fun s -> RowValue.Merge(utf8 s)) ])

        let rows =
            List.zip seqs values
            |> List.map (fun (s, v) ->
                { Key = utf8 "k"
                  Value = v
                  Seq = s
                  CreateTs = Some(int64 s)
                  ExpireTs = None })
            |> List.rev

        let top = List.last seqs
        let! snaps = Gen.listOf (Gen.choose (0, int top + 1) |> Gen.map uint64)
        return rows, snaps
    }

let private resolveAt (rows: RowEntry list) (s: uint64) =
    match Merge.resolveVersions (Some concat) (rows |> List.filter (fun r -> r.Seq <= s)) with
    | Ok r -> r |> Option.map (fun r -> r.Value)
    | Error e -> failtestf "resolve: %A" e

let private filterProps =
    testList
        "filter"
        [ testProp "every snapshot and the latest read the same after the filter; no merges ⇒ one row per stripe"
          <| Prop.forAll (Arb.fromGen versionsGen) (fun (rows, snaps) ->
              let hasMerge =
                  rows
                  |> List.exists (fun r ->
                      match r.Value with
                      | RowValue.Merge _ -> true
                      | _ -> false)

              let op = if hasMerge then Some concat else None
              let out = FlushFilter.applyVersions snaps Int64.MinValue op rows

              for s in UInt64.MaxValue :: snaps do
                  Expect.equal (resolveAt out s) (resolveAt rows s) (sprintf "read at %d" s)

              Expect.equal
                  (out |> List.map (fun r -> r.Seq))
                  (out |> List.map (fun r -> r.Seq) |> List.sortDescending)
                  "order"

              if not hasMerge then
                  let stripeOf (r: RowEntry) =
                      snaps |> List.filter (fun s -> s >= r.Seq) |> List.sort |> List.tryHead

                  let stripes = rows |> List.map stripeOf |> List.distinct
                  Expect.equal out.Length stripes.Length "one row per non-empty snapshot stripe")

          test "TTL: an expired value becomes a tombstone, an expired operand is dropped" {
              let row s v e =
                  { Key = utf8 "k"
                    Value = v
                    Seq = s
                    CreateTs = Some 0L
                    ExpireTs = e }

              let rows =
                  [ row 3UL (RowValue.Merge(utf8 "m")) (Some 5L)
                    row 2UL (RowValue.Value(utf8 "v")) (Some 5L)
                    row 1UL (RowValue.Value(utf8 "old")) None ]

              Expect.equal
                  (FlushFilter.applyVersions [] 10L None rows
                   |> List.map (fun r -> r.Seq, r.Value, r.ExpireTs))
                  [ 2UL, RowValue.Tombstone, None ]
                  "expired at the clock"

              Expect.equal
                  (FlushFilter.applyVersions [] 4L (Some concat) rows
                   |> List.map (fun r -> r.Seq, r.Value))
                  [ 3UL, RowValue.Value(utf8 "vm") ]
                  "not yet expired: folded onto the base"
          } ]

// model-based: random writes and snapshots, flush, every snapshot reads as the model
type private MOp =
    | MPut of int * string
    | MDel of int
    | MMerge of int * string
    | MSnap
    | MRelease of int

let private mopGen =
    Gen.frequency
        [ 4, Gen.map2 (fun k v -> MPut(k, v)) (Gen.choose (0, 3)) (Gen.elements [ "a"; "b"; "c" ])
          1, Gen.map MDel (Gen.choose (0, 3))
          3, Gen.map2 (fun k v -> MMerge(k, v)) (Gen.choose (0, 3)) (Gen.elements [ "x"; "y" ])
          2, Gen.constant MSnap
          1, Gen.map MRelease (Gen.choose (0, 5)) ]

let private runFlushModel (wal: bool, cmds: MOp list) : unit =
    let store = mem ()

    let o =
        { flushOptions with
            WalEnabled = wal
            MergeOperator = Some concat }

    let db = openDb store "fm" o
    let mutable model: Map<string, string> = Map.empty
    let held = ResizeArray<uint64 * Map<string, string>>()
    let key i = sprintf "k%d" i

    let write op =
        await (db.WriteAsync([ op ], ct)) |> ignore

    for c in cmds do
        match c with
        | MPut(k, v) ->
            write (WriteOp.Put(utf8 (key k), utf8 v, Ttl.Default))
            model <- Map.add (key k) v model
        | MDel k ->
            write (WriteOp.Delete(utf8 (key k)))
            model <- Map.remove (key k) model
        | MMerge(k, v) ->
            write (WriteOp.Merge(utf8 (key k), utf8 v, Ttl.Default))

            model <-
                Map.add
                    (key k)
                    (match Map.tryFind (key k) model with
                     | Some e -> e + v
                     | None -> v)
                    model
        | MSnap -> held.Add(db.RegisterSnapshot(), model)
        | MRelease i when i < held.Count ->
            db.ReleaseSnapshot(fst held[i])
            held.RemoveAt i
        | MRelease _ -> ()

    awaitU (db.FlushAsync(FlushKind.MemTable, ct))

    let check (snap: uint64 option) (m: Map<string, string>) =
        let what = sprintf "snapshot %A" snap

        for k in 0..3 do
            let got =
                await (db.GetAtAsync(utf8 (key k), readOpts, defaultArg snap UInt64.MaxValue, ct))
                |> Option.map valueOf

            Expect.equal got (Map.tryFind (key k) m) (sprintf "%s: get %s" what (key k))

        Expect.equal (drain (iterator db readOpts KeyRange.all false snap)) (Map.toList m) (what + ": scan")

    for s, m in held do
        check (Some s) m

    check None model
    awaitU (db.CloseAsync(None, ct))

let private modelTests =
    testList
        "model"
        [ testPropN 40 "random writes + snapshots, flush: every held snapshot and the latest read as a map model"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements [ true; false ]) (Gen.listOf mopGen))) runFlushModel ]

// ---------------------------------------------------------------------------------------------
// WAL replay with the WAL disabled
// ---------------------------------------------------------------------------------------------

let private walDisabledReplayTests =
    testList
        "WalEnabled = false replay"
        [ test "WAL SSTs after replay_after_wal_id are replayed and published to L0 when reopened without WAL" {
              let store = mem ()
              let db = openDb store "rw" flushOptions
              put db "a" "1" |> ignore
              let b = put db "b" "2"
              awaitU (db.CloseAsync(Some FlushKind.Wal, ct)) // in WAL SSTs only
              Expect.isLessThan (latest store "rw").LastL0Seq b.Seq "not in L0 yet"
              let noWal = { flushOptions with WalEnabled = false }
              let db2 = openDb store "rw" noWal
              Expect.equal (scanAll db2 readOpts) [ "a", "1"; "b", "2" ] "replayed"
              Expect.equal (get db2 remote "b") (Some "2") "replayed rows are durable"
              let c = put db2 "c" "3"
              Expect.equal c.Seq (b.Seq + 1UL) "seqs continue above the replayed rows"

              let deadline = DateTime.UtcNow.AddSeconds 10.0

              while (latest store "rw").LastL0Seq < b.Seq && DateTime.UtcNow < deadline do
                  Thread.Sleep 20

              let m = latest store "rw"
              Expect.isGreaterThanOrEqual m.LastL0Seq b.Seq "replayed rows published to L0 without a flush call"
              Expect.isGreaterThan m.ReplayAfterWalId 0UL "replay_after_wal_id moved past the replayed WAL SSTs"
              // crash db2 (never closed): c is lost, a and b are in L0
              let db3 = openDb store "rw" noWal
              swallow (fun () -> db2.CloseAsync(None, ct))
              Expect.equal (scanAll db3 readOpts) [ "a", "1"; "b", "2" ] "the replayed rows survive a crash"
              awaitU (db3.CloseAsync(Some FlushKind.MemTable, ct))
              let db4 = openDb store "rw" flushOptions
              Expect.equal (scanAll db4 readOpts) [ "a", "1"; "b", "2" ] "each row once with the WAL enabled again"
              awaitU (db4.CloseAsync(None, ct))
              checkStore store "rw"
          } ]

// ---------------------------------------------------------------------------------------------
// Sequence tracker
// ---------------------------------------------------------------------------------------------

let private trackerOf (store: IObjectStore) (path: string) : SequenceTracker =
    SequenceTracker.decode (latest store path).SequenceTracker |> okOrFail

let private trackerTests =
    testList
        "sequence tracker"
        [ test "commits record (seq, seconds) pairs 60 s apart; L0 publishes merge them into the manifest" {
              let store = mem ()
              let t0 = DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero)
              let clock = ManualClock(t0)

              let o =
                  { flushOptions with
                      TimeProvider = clock }

              let db = openDb store "trk" o
              let secs (d: DateTimeOffset) = d.ToUnixTimeSeconds()
              let w1 = put db "a" "1"
              clock.Now <- t0.AddSeconds 30.0
              put db "b" "2" |> ignore // < 60 s after the last kept pair: not kept
              clock.Now <- t0.AddSeconds 90.0
              let w3 = put db "c" "3"
              Expect.equal (trackerOf store "trk").Seqs [||] "nothing in the manifest before a publish"
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              let t = trackerOf store "trk"
              Expect.equal (Array.toList t.Seqs) [ w1.Seq; w3.Seq ] "sampled seqs"
              Expect.equal (Array.toList t.Times) [ secs t0; secs t0 + 90L ] "their seconds"
              clock.Now <- t0.AddSeconds 100.0
              put db "d" "4" |> ignore
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              Expect.equal (trackerOf store "trk").Seqs.Length 2 "10 s later: not kept"
              // a new writer's tracker keeps its first pair
              clock.Now <- t0.AddSeconds 110.0
              let db2 = openDb store "trk" o
              let w5 = put db2 "e" "5"
              awaitU (db2.CloseAsync(Some FlushKind.MemTable, ct))
              let t = trackerOf store "trk"
              Expect.equal (Array.toList t.Seqs) [ w1.Seq; w3.Seq; w5.Seq ] "first pair after open kept"

              Expect.equal
                  (SequenceTracker.seqOfTime TrackerRounding.Down (secs t0 + 95L) t)
                  (Some w3.Seq)
                  "time lookup"
          } ]

// ---------------------------------------------------------------------------------------------
// Scan read-ahead
// ---------------------------------------------------------------------------------------------

/// Counts range GETs of compacted SSTs (and the most in flight at once); each takes 5 ms.
type private RangeCountingStore(inner: IObjectStore) =
    let mutable gets = 0
    let mutable inFlight = 0
    let mutable maxInFlight = 0
    let gate = obj ()

    member _.Gets = Volatile.Read(&gets)
    member _.MaxInFlight = Volatile.Read(&maxInFlight)

    member _.Reset() =
        lock gate (fun () ->
            gets <- 0
            maxInFlight <- 0)

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            inner.PutAsync(key, data, mode, attributes, ct)

        member _.GetAsync(key, ct) = inner.GetAsync(key, ct)

        member _.GetRangeAsync(key, s, e, ct) =
            if key.Contains "/compacted/" then
                task {
                    lock gate (fun () ->
                        gets <- gets + 1
                        inFlight <- inFlight + 1
                        maxInFlight <- max maxInFlight inFlight)

                    try
                        do! Task.Delay(5, ct)
                        return! inner.GetRangeAsync(key, s, e, ct)
                    finally
                        lock gate (fun () -> inFlight <- inFlight - 1)
                }
            else
                inner.GetRangeAsync(key, s, e, ct)

        member _.HeadAsync(key, ct) = inner.HeadAsync(key, ct)
        member _.ListAsync(prefix, ct) = inner.ListAsync(prefix, ct)
        member _.DeleteAsync(key, ct) = inner.DeleteAsync(key, ct)
        member _.Describe = "counting:" + inner.Describe

let private readAheadTests =
    testList
        "read-ahead"
        [ test
              "ReadAheadBytes / MaxFetchTasks: fewer, larger and concurrent GETs, identical results; CacheBlocks honoured" {
              let counting = RangeCountingStore(mem ())
              let store = counting :> IObjectStore

              let o =
                  { flushOptions with
                      BlockSize = 1024
                      L0SstSizeBytes = 1L <<< 20 }

              let db = openDb store "ra" o

              for i in 0..299 do
                  put db (sprintf "k%03d" i) (pad 100 (string i)) |> ignore

              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              Expect.equal (latest store "ra").L0.Length 1 "one L0 SST"

              let scan (ra: ReadAhead) (cache: bool) (range: KeyRange) (desc: bool) =
                  let view, maxSeq = db.ScanView(readOpts, None)
                  drain (DbIterator(db.Tables, view, range, maxSeq, desc, cache, db.MergeOperator, db.CheckOpen, ra))

              let counted ra cache range desc =
                  counting.Reset()
                  let rows = scan ra cache range desc
                  rows, counting.Gets, counting.MaxInFlight

              scan ReadAhead.none false KeyRange.all false |> ignore // opens the SST (index cached)
              let expected, baseGets, baseMax = counted ReadAhead.none false KeyRange.all false
              Expect.equal expected.Length 300 "all rows"
              Expect.isGreaterThanOrEqual baseGets 30 "one GET per block without read-ahead"
              Expect.equal baseMax 1 "sequential without read-ahead"

              let big = { Bytes = 64L * 1024L; FetchTasks = 1 }
              let rows, gets, _ = counted big false KeyRange.all false
              Expect.equal rows expected "identical results with read-ahead"
              Expect.isLessThanOrEqual gets 2 "64 KiB read-ahead fetches the SST in one or two GETs"

              let par = { Bytes = 8L * 1024L; FetchTasks = 4 }
              let rows, gets, maxIn = counted par false KeyRange.all false
              Expect.equal rows expected "identical results with concurrent fetches"
              Expect.isGreaterThanOrEqual maxIn 2 "several range GETs in flight"
              Expect.isLessThanOrEqual maxIn 4 "at most MaxFetchTasks in flight"
              Expect.isLessThan gets baseGets "fewer GETs (2 KiB chunks)"

              let ranges =
                  [ KeyRange.all
                    { Start = KeyBound.Included(utf8 "k050")
                      End = KeyBound.Excluded(utf8 "k120") }
                    { Start = KeyBound.Excluded(utf8 "k200")
                      End = KeyBound.Included(utf8 "k299") }
                    { Start = KeyBound.Unbounded
                      End = KeyBound.Included(utf8 "k007") } ]

              for range in ranges do
                  for desc in [ false; true ] do
                      let want = scan ReadAhead.none false range desc

                      for ra in [ big; par; { Bytes = 1L; FetchTasks = 3 }; { Bytes = 3000L; FetchTasks = 1 } ] do
                          Expect.equal (scan ra false range desc) want (sprintf "%A desc=%b %A" range desc ra)

              // CacheBlocks = false leaves the block cache empty; true fills it
              scan big false KeyRange.all false |> ignore
              let _, gets, _ = counted ReadAhead.none false KeyRange.all false
              Expect.isGreaterThanOrEqual gets 30 "not cached by a CacheBlocks=false scan"
              scan big true KeyRange.all false |> ignore
              let rows, gets, _ = counted par false KeyRange.all true
              Expect.equal rows (List.rev expected) "descending from the cache"
              Expect.equal gets 0 "every block cached by the CacheBlocks=true read-ahead scan"

              for bad in [ { Bytes = 0L; FetchTasks = 1 }; { Bytes = 1L; FetchTasks = 0 } ] do
                  expectSlate SlateErrorKind.Invalid (sprintf "%A" bad) (fun () ->
                      scan bad false KeyRange.all false |> ignore
                      Task.CompletedTask)
                  |> ignore

              awaitU (db.CloseAsync(None, ct))
          } ]

// ---------------------------------------------------------------------------------------------
// Point-read GETs
// ---------------------------------------------------------------------------------------------

let private pointReadGetTests =
    testList
        "point-read GETs"
        [ test "a scan positions its SST sources concurrently: the first row waits for one GET round, not one per SST" {
              let counting = RangeCountingStore(mem ())
              let store = counting :> IObjectStore

              let o =
                  { flushOptions with
                      BlockSize = 1024
                      L0SstSizeBytes = 1L <<< 20 }

              let db = openDb store "ps" o
              // four L0 SSTs, each spanning the whole key range
              for part in 0..3 do
                  for i in 0..49 do
                      let k = i * 4 + part
                      put db (sprintf "k%04d" k) (pad 100 (string k)) |> ignore

                  awaitU (db.FlushAsync(FlushKind.MemTable, ct))

              Expect.equal (latest store "ps").L0.Length 4 "four L0 SSTs"

              let firstRows (n: int) (from: string) =
                  let view, maxSeq = db.ScanView(readOpts, None)

                  let range =
                      { Start = KeyBound.Included(utf8 from)
                        End = KeyBound.Unbounded }

                  let it =
                      DbIterator(
                          db.Tables,
                          view,
                          range,
                          maxSeq,
                          false,
                          false,
                          db.MergeOperator,
                          db.CheckOpen,
                          ReadAhead.none
                      )

                  [ for _ in 1..n do
                        match await (it.NextAsync ct) with
                        | Some r -> yield str r.Key, valueOf r
                        | None -> () ]

              firstRows 1 "k0000" |> ignore // opens the four SSTs (metadata cached)
              counting.Reset()
              let rows = firstRows 10 "k0100"

              Expect.equal
                  rows
                  [ for k in 100..109 -> sprintf "k%04d" k, pad 100 (string k) ]
                  "rows in order from every SST"

              Expect.isGreaterThanOrEqual counting.MaxInFlight 4 "the four first-block GETs run at once"
              awaitU (db.CloseAsync(None, ct))
          }
          // Keys longer than their block separators (as in BENCHMARKS.md: a block's index key is the
          // shortest prefix above the previous block's last key), so the index names each key's block.
          test
              "an uncached point read costs exactly one range GET once the SST is open, also for the last key of a block" {
              let metered = MeteredObjectStore(mem ())
              let store = metered :> IObjectStore

              let o =
                  { flushOptions with
                      BlockSize = 1024
                      L0SstSizeBytes = 1L <<< 20 }

              let db = openDb store "pr" o
              let n = 400

              for i in 0 .. n - 1 do
                  put db (sprintf "k%04d-000000000000" i) (pad 100 (string i)) |> ignore

              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              let l0 = (latest store "pr").L0
              Expect.equal l0.Length 1 "one L0 SST"
              let uncached = { readOpts with CacheBlocks = false }
              // opens the SST: index and filter enter the metadata cache
              Expect.equal (get db uncached "k0000-000000000000") (Some(pad 100 "0")) "first key"
              let open' = db.Tables.TryGetOpen l0.Head
              Expect.isSome open' "the SST is open"
              let blocks = open'.Value.Meta.Index.Length
              Expect.isGreaterThan blocks 20 "many blocks (about 9 rows each)"
              let mutable lastOfBlock = 0

              for i in 0 .. n - 1 do
                  let key = sprintf "k%04d-000000000000" i
                  let before = metered.Snapshot()
                  Expect.equal (get db uncached key) (Some(pad 100 (string i))) key
                  let d = StoreMetrics.diff (metered.Snapshot()) before
                  Expect.equal (d.Gets + d.GetRanges) 1L (sprintf "one GET for %s" key)

                  let next = sprintf "k%04d-000000000000" (i + 1)
                  let b = Sst.candidateBlock open'.Value.Meta.Index (ReadOnlySpan(utf8 key))
                  let nb = Sst.candidateBlock open'.Value.Meta.Index (ReadOnlySpan(utf8 next))

                  if i < n - 1 && b <> nb then
                      lastOfBlock <- lastOfBlock + 1

              Expect.isGreaterThanOrEqual lastOfBlock (blocks - 2) "the loop met the last key of (nearly) every block"

              // a key whose versions straddle blocks is still read completely (snapshots keep them)
              let snaps =
                  [ for v in 1..40 do
                        put db "m" (pad 100 (sprintf "m%d" v)) |> ignore
                        yield v, db.RegisterSnapshot() ]

              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              Expect.equal (l0RowsOf store "pr" "m").Length 40 "every version kept"

              for v, s in snaps do
                  let r = await (db.GetAtAsync(utf8 "m", uncached, s, ct)) |> Option.map valueOf

                  Expect.equal r (Some(pad 100 (sprintf "m%d" v))) (sprintf "version %d" v)
                  db.ReleaseSnapshot s

              awaitU (db.CloseAsync(None, ct))
          } ]

// ---------------------------------------------------------------------------------------------
// TTL (moved from EngineTests)
// ---------------------------------------------------------------------------------------------

let private ttlTests =
    testList
        "ttl"
        [ test "reads return expired rows; a memtable flush turns them into tombstones at the memtable's clock" {
              let store = mem ()
              let clock = ManualClock(DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero))

              let o =
                  { options with
                      TimeProvider = clock
                      MergeOperator = Some concat }

              let db = openDb store "ttl" o
              let ttl = Ttl.ExpireAfter(TimeSpan.FromSeconds 1.0)

              let w =
                  await (db.WriteAsync([ WriteOp.Put(utf8 "a", utf8 "old", Ttl.Default) ], ct))

              await (db.WriteAsync([ WriteOp.Put(utf8 "a", utf8 "1", ttl) ], ct)) |> ignore
              await (db.WriteAsync([ WriteOp.Put(utf8 "b", utf8 "2", ttl) ], ct)) |> ignore
              await (db.WriteAsync([ WriteOp.Merge(utf8 "m", utf8 "x", ttl) ], ct)) |> ignore
              let r = await (db.GetAsync(utf8 "a", readOpts, ct))
              Expect.equal (r |> Option.bind (fun r -> r.ExpireTs)) (Some(w.CreateTs + 1000L)) "expire_ts"
              clock.Now <- clock.Now.AddSeconds 5.0
              Expect.equal (get db readOpts "a") (Some "1") "an expired row is still returned before a flush"
              // the memtable's clock is its last create_ts: only a write after expiry advances it
              put db "c" "3" |> ignore
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              Expect.equal (scanAll db readOpts) [ "c", "3" ] "expired rows are gone after the flush"
              Expect.equal (get db readOpts "a") None "an expired newest version reads as deleted, not older"
              // not expired at the memtable's clock: kept, although the wall clock is far ahead
              let clock2 = clock.Now
              put db "d" "4" |> ignore
              await (db.WriteAsync([ WriteOp.Put(utf8 "e", utf8 "5", ttl) ], ct)) |> ignore
              clock.Now <- clock2.AddHours 1.0
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              Expect.equal (get db readOpts "e") (Some "5") "judged against the memtable clock, not the wall clock"
              awaitU (db.CloseAsync(None, ct))
          } ]

let allTests =
    testList
        "EngineFlush"
        [ parallelismTests
          l0LimitTests
          retentionTests
          snapshotRetentionTests
          filterProps
          modelTests
          walDisabledReplayTests
          trackerTests
          readAheadTests
          pointReadGetTests
          ttlTests ]
