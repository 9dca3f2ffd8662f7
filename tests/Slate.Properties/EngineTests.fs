/// The writer against a sorted-map model (SPEC §9 invariants 12, 13, 14, 20, 23) and example
/// tests of durability levels, group commit, WAL-less mode, backpressure and close (SPEC §5.4-§5.7).
module Slate.Properties.EngineTests

open System
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil

/// Helpers shared by the engine, crash and facade tests.
module Eng =
    let utf8 (s: string) : byte[] = Encoding.UTF8.GetBytes s
    let str (b: byte[]) : string = Encoding.UTF8.GetString b
    let ct = CancellationToken.None
    /// Every wait in these tests is bounded: a hang fails the test instead of the run.
    let limit = TimeSpan.FromSeconds 20.0

    let await (t: Task<'a>) : 'a =
        try
            t.WaitAsync(limit).GetAwaiter().GetResult()
        with :? TimeoutException ->
            failtestf "an engine call did not complete within %O" limit

    let awaitU (t: Task) : unit =
        try
            t.WaitAsync(limit).GetAwaiter().GetResult()
        with :? TimeoutException ->
            failtestf "an engine call did not complete within %O" limit

    /// Waits for a task, failing (instead of hanging) after `seconds`.
    let within (seconds: float) (what: string) (t: Task) : unit =
        try
            t.WaitAsync(TimeSpan.FromSeconds seconds).GetAwaiter().GetResult()
        with :? TimeoutException ->
            failtestf "%s did not complete within %.0f s" what seconds

    /// Concatenating merge operator.
    let concat: MergeOperator =
        fun _ existing operand ->
            match existing with
            | Some e -> Array.append e operand
            | None -> operand

    /// Small, deterministic engine settings: 1 KiB L0 SSTs, manual flushes only, small caches.
    /// L0MaxSsts is raised because no compactor drains L0 yet (the limit is tested in InteropTests).
    let options: DbOptions =
        { DbOptions.foreground with
            FlushInterval = None
            L0SstSizeBytes = 1024L
            L0MaxSsts = 100_000
            RandomSeed = Some 7
            BlockCacheBytes = 1L <<< 20
            MetaCacheBytes = 1L <<< 20 }

    let readOpts: ReadOpts =
        { Durability = Durability.Memory
          Dirty = false
          CacheBlocks = true }

    let remote: ReadOpts =
        { readOpts with
            Durability = Durability.Remote }

    let openDb (store: IObjectStore) (path: string) (o: DbOptions) : Db =
        await (Db.OpenAsync(store, path, o, ct))

    let put (db: Db) (k: string) (v: string) : WriteResult =
        await (db.WriteAsync([ WriteOp.Put(utf8 k, utf8 v, Ttl.Default) ], ct))

    let del (db: Db) (k: string) : WriteResult =
        await (db.WriteAsync([ WriteOp.Delete(utf8 k) ], ct))

    let valueOf (r: RowEntry) : string =
        match r.Value with
        | RowValue.Value v -> str v
        | other -> failtestf "read returned a non-value row %A" other

    let get (db: Db) (o: ReadOpts) (k: string) : string option =
        await (db.GetAsync(utf8 k, o, ct)) |> Option.map valueOf

    let iterator (db: Db) (o: ReadOpts) (range: KeyRange) (desc: bool) (snap: uint64 option) : DbIterator =
        let view, maxSeq = db.ScanView(o, snap)
        DbIterator(db.Tables, view, range, maxSeq, desc, false, db.MergeOperator, db.CheckOpen)

    let drain (it: DbIterator) : (string * string) list =
        let acc = ResizeArray()
        let mutable go = true

        while go do
            match await (it.NextAsync ct) with
            | Some r -> acc.Add(str r.Key, valueOf r)
            | None -> go <- false

        List.ofSeq acc

    let scanAll (db: Db) (o: ReadOpts) : (string * string) list =
        drain (iterator db o KeyRange.all false None)

    /// Runs `f` (a call and its task) and returns the SlateException it raises, checking its kind.
    let expectSlate (kind: SlateErrorKind) (what: string) (f: unit -> Task) : SlateException =
        let caught =
            try
                awaitU (f ())
                None
            with :? SlateException as e ->
                Some e

        match caught with
        | None -> failtestf "%s: expected SlateException(%A) but it succeeded" what kind
        | Some e ->
            Expect.equal e.Kind kind (sprintf "%s: kind (message: %s)" what e.Message)
            e

    let expectClosed (reason: CloseReason) (what: string) (f: unit -> Task) : unit =
        let e = expectSlate SlateErrorKind.Closed what f
        Expect.equal e.CloseReason (Nullable reason) (sprintf "%s: close reason (%s)" what e.Message)

    let swallow (f: unit -> Task) : unit =
        try
            awaitU (f ())
        with _ ->
            ()

    let walIds (store: IObjectStore) (path: string) : uint64 list =
        await (Store.listParsedAsync store path Paths.WalDir ct)
        |> List.choose (fun (n, _) ->
            match n with
            | ObjectName.Wal id -> Some id
            | _ -> None)
        |> List.sort

    let manifests (store: IObjectStore) (path: string) : StoredManifest list =
        let ms = ManifestStore(store, path)

        await (ms.ListIdsAsync ct)
        |> List.map (fun id ->
            match await (ms.ReadAsync(id, ct)) with
            | Some m -> m
            | None -> failtestf "manifest %d vanished" id)

    /// SPEC §9 invariants 14, 15 (scalars), 20 (WAL ids contiguous from 1) and 24 over the whole store.
    let checkStore (store: IObjectStore) (path: string) : unit =
        let wal = walIds store path
        Expect.equal wal [ 1UL .. uint64 wal.Length ] "WAL ids are contiguous from 1"
        let ms = manifests store path
        Expect.equal (ms |> List.map (fun m -> m.Id)) [ 1UL .. uint64 ms.Length ] "manifest ids are contiguous from 1"

        for m in ms do
            let x = m.Manifest

            Expect.isLessThanOrEqual
                x.ReplayAfterWalId
                x.WalIdLastSeen
                (sprintf "manifest %d: replay_after_wal_id <= wal_id_last_seen" m.Id)

            Expect.isLessThanOrEqual
                x.RecentSnapshotMinSeq
                x.LastL0Seq
                (sprintf "manifest %d: recent_snapshot_min_seq <= last_l0_seq" m.Id)

            let ts = x.L0 |> List.map (fun h -> Ulid.timestampMs h.Id)
            Expect.equal ts (List.sortDescending ts) (sprintf "manifest %d: l0 newest first" m.Id)

        for a, b in List.pairwise ms do
            let a, b = a.Manifest, b.Manifest

            let mono name (f: Manifest -> 'v) =
                Expect.isLessThanOrEqual (f a) (f b) (name + " never decreases")

            mono "writer_epoch" (fun m -> m.WriterEpoch)
            mono "compactor_epoch" (fun m -> m.CompactorEpoch)
            mono "replay_after_wal_id" (fun m -> m.ReplayAfterWalId)
            mono "wal_id_last_seen" (fun m -> m.WalIdLastSeen)
            mono "last_l0_seq" (fun m -> m.LastL0Seq)
            mono "last_l0_clock_tick" (fun m -> m.LastL0ClockTick)

        match List.tryLast ms with
        | None -> ()
        | Some latest ->
            let tables = TableStore(store, path, 0, 16)

            // invariant 15: every row of every referenced SST has seq <= last_l0_seq
            for h in
                latest.Manifest.L0
                @ (latest.Manifest.Compacted |> List.collect (fun r -> r.Ssts)) do
                let src = SstSource(tables, h, KeyRange.all, UInt64.MaxValue, false, false)

                while (src.MoveNextAsync ct).AsTask() |> await do
                    Expect.isLessThanOrEqual
                        src.Current.Seq
                        latest.Manifest.LastL0Seq
                        (sprintf "SST %O holds only seq <= last_l0_seq" h.Id)

            for id in wal do
                if id <= latest.Manifest.ReplayAfterWalId then
                    match await (tables.TryReadWalAsync(id, ct)) with
                    | Some rows ->
                        for r in rows do
                            Expect.isLessThanOrEqual
                                r.Seq
                                latest.Manifest.LastL0Seq
                                (sprintf "WAL %d below replay_after_wal_id holds only seq <= last_l0_seq" id)
                    | None -> failtestf "WAL %d vanished" id

// ---------------------------------------------------------------------------------------------
// Model-based test
// ---------------------------------------------------------------------------------------------

open Eng

type Op =
    | P of key: string * len: int
    | D of key: string
    | M of key: string

type ScanSpec =
    {
        Lo: (string * bool) option
        Hi: (string * bool) option
        Desc: bool
        /// Read n entries, then seek to the key; the rest is drained at the end.
        Steps: (int * string) list
    }

type Cmd =
    | Write of Op list
    | AwaitLast
    | Get of string
    | Scan of ScanSpec
    | FlushWal
    | FlushMem
    | Snap
    | SnapRead of int * string * ScanSpec
    | Release of int
    | Reopen
    | Crash

type Case =
    { WalEnabled: bool
      Interval: int option
      Cmds: Cmd list }

let private keys =
    [| "a"; "a\000"; "aa"; "ab"; "b"; "ba"; "bb"; "c"; "ca"; "d"; "e"; "ÿ" |]

let private keyGen = Gen.elements keys

let private opGen =
    Gen.frequency
        [ 5, Gen.map2 (fun k n -> P(k, n)) keyGen (Gen.frequency [ 1, Gen.constant 0; 6, Gen.choose (1, 120) ])
          2, Gen.map D keyGen
          2, Gen.map M keyGen ]

let private keyOf op =
    match op with
    | P(k, _)
    | D k
    | M k -> k

let private writeGen =
    Gen.frequency
        [ 3, Gen.map List.singleton opGen
          1,
          gen {
              let! n = Gen.choose (2, 5)
              let! ops = Gen.listOfLength n opGen
              let! again = Gen.elements (ops |> List.map keyOf)
              let! last = Gen.elements [ P(again, 7); D again; M again ]
              return ops @ [ last ]
          } ]

let private boundGen =
    Gen.frequency
        [ 1, Gen.constant None
          3, Gen.map2 (fun k i -> Some(k, i)) keyGen (Gen.elements [ true; false ]) ]

let private scanGen =
    gen {
        let! lo = boundGen
        let! hi = boundGen
        let! desc = Gen.elements [ false; true ]
        let! nSteps = Gen.frequency [ 2, Gen.constant 0; 2, Gen.constant 1; 1, Gen.constant 2 ]
        let! steps = Gen.listOfLength nSteps (Gen.map2 (fun n k -> n, k) (Gen.choose (0, 4)) keyGen)

        return
            { Lo = lo
              Hi = hi
              Desc = desc
              Steps = steps }
    }

let private cmdGen =
    Gen.frequency
        [ 12, Gen.map Write writeGen
          1, Gen.constant AwaitLast
          4, Gen.map Get keyGen
          3, Gen.map Scan scanGen
          1, Gen.constant FlushWal
          1, Gen.constant FlushMem
          1, Gen.constant Snap
          2, Gen.map3 (fun i k s -> SnapRead(i, k, s)) (Gen.choose (0, 9)) keyGen scanGen
          1, Gen.map Release (Gen.choose (0, 9))
          1, Gen.constant Reopen
          1, Gen.constant Crash ]

let private caseGen =
    gen {
        let! wal = Gen.frequency [ 3, Gen.constant true; 1, Gen.constant false ]
        let! interval = Gen.frequency [ 2, Gen.constant None; 1, Gen.constant (Some 5) ]
        let! n = Gen.choose (5, 60)
        let! cmds = Gen.listOfLength n cmdGen

        return
            { WalEnabled = wal
              Interval = interval
              Cmds = cmds }
    }

/// Shrinks by dropping one command at a time.
let private shrinkCase (c: Case) : Case seq =
    seq {
        for i in 0 .. c.Cmds.Length - 1 do
            yield { c with Cmds = List.removeAt i c.Cmds }
    }

let private rangeOf (s: ScanSpec) : KeyRange =
    let bound b =
        match b with
        | None -> KeyBound.Unbounded
        | Some(k, true) -> KeyBound.Included(utf8 k)
        | Some(k, false) -> KeyBound.Excluded(utf8 k)

    match KeyRange.ofBounds (bound s.Lo) (bound s.Hi) with
    | Ok r -> r
    | Error _ -> KeyRange.all

type private Model = Map<string, string>

/// Runs one scan against the model, with seeks; checks order, bounds, no duplicates.
let private checkScan (db: Db) (snap: uint64 option) (model: Model) (s: ScanSpec) : unit =
    let range = rangeOf s
    let inRange k = KeyRange.contains range (utf8 k)
    let all = model |> Map.toList |> List.filter (fst >> inRange)
    let all = if s.Desc then List.rev all else all
    let it = iterator db readOpts range s.Desc snap
    let mutable expected = all
    let mutable last: string option = None
    let got = ResizeArray<string * string>()

    let beyond (k: string) (l: string) =
        if s.Desc then
            String.CompareOrdinal(k, l) < 0
        else
            String.CompareOrdinal(k, l) > 0

    for n, seekKey in s.Steps do
        let batch =
            await (it.NextBatchAsync(n, ct)) |> List.map (fun r -> str r.Key, valueOf r)

        let want = List.truncate n expected
        Expect.equal batch want (sprintf "scan %A: batch of %d" s n)
        got.AddRange batch
        expected <- List.skip want.Length expected

        if not batch.IsEmpty then
            last <- Some(fst (List.last batch))

        let valid =
            inRange seekKey
            && (match last with
                | Some l -> beyond seekKey l
                | None -> true)

        if valid then
            awaitU (it.SeekAsync(utf8 seekKey, ct))

            // relative to the last returned key, not to an earlier seek target
            expected <-
                all
                |> List.filter (fun (k, _) ->
                    if s.Desc then
                        String.CompareOrdinal(k, seekKey) <= 0
                    else
                        String.CompareOrdinal(k, seekKey) >= 0)
        else
            expectSlate SlateErrorKind.Invalid (sprintf "seek to %A in %A" seekKey s) (fun () ->
                it.SeekAsync(utf8 seekKey, ct))
            |> ignore

    let rest = drain it
    Expect.equal rest expected (sprintf "scan %A (snapshot %A): rest" s snap)
    got.AddRange rest
    let ks = got |> Seq.map fst |> List.ofSeq
    let sorted = if s.Desc then List.sortDescending ks else List.sort ks
    Expect.equal ks sorted "scan is sorted"
    Expect.equal (List.distinct ks) ks "scan has no duplicates"
    Expect.isTrue (ks |> List.forall inRange) "scan stays within its range"

let private runCaseOn (fresh: unit -> IObjectStore) (c: Case) : unit =
    let store = fresh ()
    let path = "model/db"

    let o =
        { options with
            WalEnabled = c.WalEnabled
            MergeOperator = Some concat
            FlushInterval = c.Interval |> Option.map (fun ms -> TimeSpan.FromMilliseconds(float ms)) }

    let mutable db = openDb store path o
    let mutable model: Model = Map.empty
    let mutable lastSeq = 0UL
    let mutable counter = 0
    // (seq, state after that seq), newest first; the entry for seq 0 is the empty state
    let mutable history: (uint64 * Model) list = [ 0UL, Map.empty ]
    let snaps = ResizeArray<uint64 * Model>()

    let stateAt (s: uint64) =
        history |> List.find (fun (q, _) -> q <= s) |> snd

    let checkAll () =
        Expect.equal (scanAll db readOpts) (Map.toList model) "full scan equals the model"

    let apply (m: Model) (op: Op) : Model * WriteOp =
        counter <- counter + 1

        match op with
        | P(k, 0) -> Map.add k "" m, WriteOp.Put(utf8 k, [||], Ttl.Default)
        | P(k, n) ->
            let v = (sprintf "%d|" counter).PadRight(n, 'x')
            Map.add k v m, WriteOp.Put(utf8 k, utf8 v, Ttl.Default)
        | D k -> Map.remove k m, WriteOp.Delete(utf8 k)
        | M k ->
            let operand = sprintf "<%d>" counter

            let v =
                match Map.tryFind k m with
                | Some e -> e + operand
                | None -> operand

            Map.add k v m, WriteOp.Merge(utf8 k, utf8 operand, Ttl.Default)

    try
        for cmd in c.Cmds do
            match cmd with
            | Write ops ->
                let wops, m =
                    ops
                    |> List.mapFold
                        (fun m op ->
                            let m2, w = apply m op
                            w, m2)
                        model

                let r = await (db.WriteAsync(wops, ct))
                Expect.equal r.Seq (lastSeq + 1UL) "seqs increase by one per batch"
                lastSeq <- r.Seq
                model <- m
                history <- (r.Seq, m) :: history
            | AwaitLast when c.WalEnabled ->
                within 10.0 "AwaitDurable" (db.AwaitDurableAsync(lastSeq, ct))
                Expect.isGreaterThanOrEqual db.DurableSeq lastSeq "durable after AwaitDurable"
            | AwaitLast -> ()
            | Get k ->
                Expect.equal (get db readOpts k) (Map.tryFind k model) (sprintf "get %A" k)
                // visibility (invariant 13): a Remote read sees a state between durable seqs d1 and d2
                let d1 = db.DurableSeq
                let r = get db remote k
                let d2 = db.DurableSeq

                let candidates =
                    (stateAt d1
                     :: (history |> List.filter (fun (q, _) -> q > d1 && q <= d2) |> List.map snd))
                    |> List.map (Map.tryFind k)

                Expect.contains candidates r (sprintf "remote get %A (durable %d..%d)" k d1 d2)
            | Scan s -> checkScan db None model s
            | FlushWal when c.WalEnabled ->
                awaitU (db.FlushAsync(FlushKind.Wal, ct))
                Expect.isGreaterThanOrEqual db.DurableSeq lastSeq "durable after Flush(Wal)"
            | FlushWal ->
                expectSlate SlateErrorKind.Invalid "Flush(Wal) without WAL" (fun () -> db.FlushAsync(FlushKind.Wal, ct))
                |> ignore
            | FlushMem ->
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))
                Expect.isGreaterThanOrEqual db.DurableSeq lastSeq "durable after Flush(MemTable)"
            | Snap ->
                let s = db.RegisterSnapshot()
                Expect.equal s lastSeq "a snapshot takes the last committed seq"
                snaps.Add(s, model)
            | SnapRead(i, k, spec) when snaps.Count > 0 ->
                let s, m = snaps[i % snaps.Count]
                let r = await (db.GetAtAsync(utf8 k, readOpts, s, ct)) |> Option.map valueOf
                Expect.equal r (Map.tryFind k m) (sprintf "get %A at snapshot %d" k s)
                checkScan db (Some s) m spec
            | SnapRead _ -> ()
            | Release i when snaps.Count > 0 ->
                let s, _ = snaps[i % snaps.Count]
                db.ReleaseSnapshot s
                snaps.RemoveAt(i % snaps.Count)
            | Release _ -> ()
            | Reopen ->
                awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                snaps.Clear()
                db <- openDb store path o
                Expect.equal db.LastCommittedSeq lastSeq "a clean reopen recovers every committed batch"
                checkAll ()
            | Crash ->
                let old = db
                let durable = old.DurableSeq
                db <- openDb store path o
                swallow (fun () -> old.CloseAsync(None, ct))
                snaps.Clear()
                let s = db.LastCommittedSeq

                Expect.isTrue
                    (durable <= s && s <= lastSeq)
                    (sprintf "recovered seq %d within [durable %d, last %d]" s durable lastSeq)

                match history |> List.tryFind (fun (q, _) -> q = s) with
                | Some(_, m) ->
                    model <- m
                    lastSeq <- s
                    history <- history |> List.filter (fun (q, _) -> q <= s)
                | None -> failtestf "recovered seq %d is not a batch boundary" s

                checkAll ()

        checkAll ()
        awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
        checkStore store path
    finally
        swallow (fun () -> db.CloseAsync(None, ct))

/// Number of model cases (`SLATE_ENGINE_CASES` overrides the CI default of 100 for soak runs).
let private cases () =
    match Environment.GetEnvironmentVariable "SLATE_ENGINE_CASES" with
    | null
    | "" -> 100
    | n -> int n

/// The model test with `n` cases, each on a store from `fresh` (the cloud tests run it on moto and
/// Azurite with reduced counts).
let modelTestOn (n: int) (name: string) (fresh: unit -> IObjectStore) : Test =
    testPropN n name
    <| Prop.forAll (Arb.fromGenShrink (caseGen, shrinkCase)) (runCaseOn fresh)

let private modelTests =
    testList
        "model"
        [ modelTestOn
              (cases ())
              "random commands equal a sorted-map model (gets, scans, snapshots, reopen, crash)"
              (fun () -> InMemoryObjectStore() :> IObjectStore) ]

// ---------------------------------------------------------------------------------------------
// Example tests
// ---------------------------------------------------------------------------------------------

/// A clock the test moves by hand.
type private ManualClock(start: DateTimeOffset) =
    inherit TimeProvider()
    member val Now = start with get, set
    override this.GetUtcNow() = this.Now

let private mem () = InMemoryObjectStore() :> IObjectStore

let private latestManifest (store: IObjectStore) (path: string) : Manifest =
    (manifests store path |> List.last).Manifest

let private pad (n: int) (s: string) = s.PadRight(n, '.')

let private shapeTests =
    testList
        "shape"
        [ test "1 KiB L0 SSTs: many WAL SSTs and L0 SSTs appear, every row stays readable" {
              let store = mem ()
              let db = openDb store "shape" options

              for i in 0..199 do
                  put db (sprintf "k%03d" i) (pad 100 (string i)) |> ignore

                  if i % 25 = 24 then
                      awaitU (db.FlushAsync(FlushKind.Wal, ct))

              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              let m = latestManifest store "shape"
              Expect.isGreaterThanOrEqual m.L0.Length 5 "several L0 SSTs"
              Expect.isGreaterThanOrEqual (walIds store "shape").Length 5 "several WAL SSTs"
              Expect.equal (scanAll db readOpts).Length 200 "all rows readable"
              Expect.equal (get db readOpts "k123") (Some(pad 100 "123")) "point read from L0"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              checkStore store "shape"
          } ]

let private durabilityTests =
    testList
        "durability"
        [ test "Remote reads see only durable writes; AwaitDurable and Flush(Wal) make them visible" {
              let store = mem ()
              let db = openDb store "dur" options
              let w1 = put db "k" "v1"
              Expect.equal (get db readOpts "k") (Some "v1") "Memory read sees the committed write"
              Expect.equal (get db remote "k") None "Remote read does not see a non-durable write"
              Expect.isLessThan db.DurableSeq w1.Seq "not durable yet"
              Expect.equal (drain (iterator db remote KeyRange.all false None)) [] "Remote scan is empty"
              within 10.0 "AwaitDurable" (db.AwaitDurableAsync(w1.Seq, ct))
              Expect.equal (get db remote "k") (Some "v1") "durable after AwaitDurable"
              let w2 = put db "k" "v2"
              Expect.equal (get db remote "k") (Some "v1") "Remote read returns the newest durable version"

              Expect.equal
                  (get db { remote with Dirty = true } "k")
                  (Some "v1")
                  "Remote + dirty is bounded by durable_seq"

              Expect.equal (get db { readOpts with Dirty = true } "k") (Some "v2") "dirty Memory read sees it"
              awaitU (db.FlushAsync(FlushKind.Wal, ct))
              Expect.isGreaterThanOrEqual db.DurableSeq w2.Seq "Flush(Wal) makes it durable"
              Expect.equal (get db remote "k") (Some "v2") "Remote read after Flush(Wal)"
              Expect.equal (drain (iterator db remote KeyRange.all false None)) [ "k", "v2" ] "Remote scan"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
          }

          test "non-dirty reads never see part of a batch (concurrent writer)" {
              let store = mem ()
              let db = openDb store "atomic" { options with L0SstSizeBytes = 4096L }
              let keys = [ for i in 0..19 -> sprintf "k%02d" i ]

              let writer =
                  Task.Run(fun () ->
                      for b in 1..60 do
                          let ops =
                              keys |> List.map (fun k -> WriteOp.Put(utf8 k, utf8 (string b), Ttl.Default))

                          await (db.WriteAsync(ops, ct)) |> ignore

                          if b % 20 = 0 then
                              awaitU (db.FlushAsync(FlushKind.MemTable, ct)))

              let mutable scans = 0

              while not writer.IsCompleted || scans = 0 do
                  let rows = scanAll db readOpts
                  let values = rows |> List.map snd |> List.distinct
                  Expect.isTrue (rows.IsEmpty || (rows.Length = 20 && values.Length = 1)) (sprintf "scan saw %A" rows)
                  scans <- scans + 1

              awaitU writer
              Expect.equal (scanAll db readOpts |> List.map snd |> List.distinct) [ "60" ] "last batch wins"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
          }

          test "AwaitDurable does not wait for an hour-long FlushInterval (FlushOnDurableWait)" {
              let store = mem ()

              let db =
                  openDb
                      store
                      "group"
                      { options with
                          FlushInterval = Some(TimeSpan.FromHours 1.0)
                          FlushOnDurableWait = true }

              for i in 1..5 do
                  let w = put db (sprintf "k%d" i) "v"
                  within 10.0 "AwaitDurable with a 1 h interval" (db.AwaitDurableAsync(w.Seq, ct))
                  Expect.isGreaterThanOrEqual db.DurableSeq w.Seq "durable"

              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
          }

          test "without FlushOnDurableWait, AwaitDurable waits for a trigger (here Flush(Wal))" {
              let store = mem ()

              let db =
                  openDb
                      store
                      "nogroup"
                      { options with
                          FlushInterval = Some(TimeSpan.FromHours 1.0)
                          FlushOnDurableWait = false }

              let w = put db "k" "v"
              let pending = db.AwaitDurableAsync(w.Seq, ct)
              Thread.Sleep 200
              Expect.isFalse pending.IsCompleted "no upload without a trigger"
              awaitU (db.FlushAsync(FlushKind.Wal, ct))
              within 10.0 "AwaitDurable after Flush(Wal)" pending
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
          }

          test "WAL disabled: durability only from L0 publish; Flush(Wal) is Invalid; a crash loses the memtable" {
              let store = mem ()
              let o = { options with WalEnabled = false }
              let db = openDb store "nowal" o
              let w1 = put db "a" "1"

              expectSlate SlateErrorKind.Invalid "Flush(Wal) without WAL" (fun () -> db.FlushAsync(FlushKind.Wal, ct))
              |> ignore

              Expect.equal db.DurableSeq 0UL "nothing durable"
              Expect.equal (get db remote "a") None "Remote read sees nothing"
              let pending = db.AwaitDurableAsync(w1.Seq, ct)
              Thread.Sleep 100
              Expect.isFalse pending.IsCompleted "AwaitDurable waits for an L0 publish"
              awaitU (db.FlushAsync(FlushKind.MemTable, ct))
              within 10.0 "AwaitDurable after Flush(MemTable)" pending
              Expect.equal db.DurableSeq w1.Seq "durable_seq = last_l0_seq"
              Expect.equal (get db remote "a") (Some "1") "Remote read after the L0 publish"
              put db "b" "2" |> ignore
              let db2 = openDb store "nowal" o // crash: the first writer is never closed
              swallow (fun () -> db.CloseAsync(None, ct))
              Expect.equal (scanAll db2 readOpts) [ "a", "1" ] "only L0 data survives a crash"
              Expect.equal (walIds store "nowal") [] "no WAL objects at all"
              awaitU (db2.CloseAsync(Some FlushKind.MemTable, ct))
              checkStore store "nowal"
          }

          testList
              "backpressure"
              [ for wal in [ true; false ] ->
                    test (sprintf "MaxUnflushedBytes does not lose writes (WAL %b)" wal) {
                        let store = mem ()

                        let o =
                            { options with
                                WalEnabled = wal
                                MaxUnflushedBytes = 2048L }

                        let db = openDb store "bp" o

                        for i in 0..299 do
                            put db (sprintf "k%03d" i) (pad 150 (string i)) |> ignore

                        Expect.equal (scanAll db readOpts).Length 300 "all writes visible"
                        awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                        let db2 = openDb store "bp" o

                        Expect.equal
                            (scanAll db2 readOpts)
                            [ for i in 0..299 -> sprintf "k%03d" i, pad 150 (string i) ]
                            "all writes recovered"

                        awaitU (db2.CloseAsync(None, ct))
                        checkStore store "bp"
                    } ] ]

let private closeTests =
    testList
        "close"
        [ test
              "after CloseAsync(None) every call fails Closed/Clean; pending AwaitDurable fails; non-durable writes are gone" {
              let store = mem ()

              let o =
                  { options with
                      FlushOnDurableWait = false }

              let db = openDb store "close" o
              let a = put db "a" "1"
              awaitU (db.FlushAsync(FlushKind.Wal, ct))
              let b = put db "b" "2"
              let pending = db.AwaitDurableAsync(b.Seq, ct)
              let it = iterator db readOpts KeyRange.all false None
              awaitU (db.CloseAsync(None, ct))
              expectClosed CloseReason.Clean "pending AwaitDurable" (fun () -> pending)
              Expect.equal db.CloseReason (Some CloseReason.Clean) "close reason"

              let calls: (string * (unit -> Task)) list =
                  [ "WriteAsync", (fun () -> db.WriteAsync([ WriteOp.Put(utf8 "c", utf8 "3", Ttl.Default) ], ct))
                    "GetAsync", (fun () -> db.GetAsync(utf8 "a", readOpts, ct))
                    "GetAtAsync", (fun () -> db.GetAtAsync(utf8 "a", readOpts, a.Seq, ct))
                    "Flush(Wal)", (fun () -> db.FlushAsync(FlushKind.Wal, ct))
                    "Flush(MemTable)", (fun () -> db.FlushAsync(FlushKind.MemTable, ct))
                    "AwaitDurable", (fun () -> db.AwaitDurableAsync(b.Seq, ct))
                    "ScanView",
                    (fun () ->
                        db.ScanView(readOpts, None) |> ignore
                        Task.CompletedTask)
                    "RegisterSnapshot",
                    (fun () ->
                        db.RegisterSnapshot() |> ignore
                        Task.CompletedTask)
                    "iterator NextAsync", (fun () -> it.NextAsync ct)
                    "second CloseAsync", (fun () -> db.CloseAsync(Some FlushKind.MemTable, ct))
                    "CloseAsync(None) again", (fun () -> db.CloseAsync(None, ct)) ]

              for name, call in calls do
                  expectClosed CloseReason.Clean name call

              let db2 = openDb store "close" o
              Expect.equal (scanAll db2 readOpts) [ "a", "1" ] "the durable write survives, the other is discarded"
              awaitU (db2.CloseAsync(None, ct))
          }

          test "CloseAsync(Wal) leaves the memtable in the WAL only; CloseAsync(MemTable) publishes it to L0" {
              let store = mem ()
              let db = openDb store "closewal" options
              let a = put db "a" "1"
              awaitU (db.CloseAsync(Some FlushKind.Wal, ct))
              Expect.isLessThan (latestManifest store "closewal").LastL0Seq a.Seq "not in L0"
              let db2 = openDb store "closewal" options
              Expect.equal (scanAll db2 readOpts) [ "a", "1" ] "replayed from the WAL"
              let b = put db2 "b" "2"
              Expect.equal b.Seq (a.Seq + 1UL) "seqs continue above the recovered maximum"
              Expect.isGreaterThanOrEqual b.CreateTs a.CreateTs "clock does not go backwards across reopen"
              awaitU (db2.CloseAsync(Some FlushKind.MemTable, ct))
              Expect.equal (latestManifest store "closewal").LastL0Seq b.Seq "in L0"
              let db3 = openDb store "closewal" options
              Expect.equal (scanAll db3 readOpts) [ "a", "1"; "b", "2" ] "each row once"
              Expect.equal db3.LastCommittedSeq b.Seq "replay skips rows at or below last_l0_seq"
              awaitU (db3.CloseAsync(None, ct))
              checkStore store "closewal"
          }

          test "a clock behind the recovered last tick fails the write with Invalid" {
              let store = mem ()
              let clock = ManualClock(DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero))
              let o = { options with TimeProvider = clock }
              let db = openDb store "clock" o
              let w = put db "a" "1"
              Expect.equal w.CreateTs (clock.Now.ToUnixTimeMilliseconds()) "create_ts is the injected clock"
              awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
              clock.Now <- clock.Now.AddMilliseconds(-5.0)
              let db2 = openDb store "clock" o

              expectSlate SlateErrorKind.Invalid "write with the clock behind" (fun () ->
                  db2.WriteAsync([ WriteOp.Put(utf8 "b", utf8 "2", Ttl.Default) ], ct))
              |> ignore

              clock.Now <- clock.Now.AddMilliseconds(10.0)
              let w2 = put db2 "c" "3"
              Expect.isGreaterThan w2.Seq w.Seq "a later write succeeds"
              awaitU (db2.CloseAsync(None, ct))
          } ]

let allTests =
    testList "Engine" [ modelTests; shapeTests; durabilityTests; closeTests ]
