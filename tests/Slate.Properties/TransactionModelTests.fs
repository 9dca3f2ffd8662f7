/// Transactions against models: a history checker over concurrent random transactions and plain
/// writes (SI: no lost updates; SSI: the committed history is serializable in commit-seq order),
/// and the engine's model-based test extended with snapshots, merges and transactions.
module Slate.Properties.TransactionModelTests

open System
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

type private Model = Map<string, string>

/// A write of the models: value or operand strings are unique per write.
type WSpec =
    | WPut of key: string * value: string
    | WDel of key: string
    | WMerge of key: string * operand: string

let private keyOfW w =
    match w with
    | WPut(k, _)
    | WDel k
    | WMerge(k, _) -> k

let private applyW (m: Model) (w: WSpec) : Model =
    match w with
    | WPut(k, v) -> Map.add k v m
    | WDel k -> Map.remove k m
    | WMerge(k, o) ->
        match Map.tryFind k m with
        | Some e -> Map.add k (e + o) m
        | None -> Map.add k o m

let private toOp w =
    match w with
    | WPut(k, v) -> WriteOp.Put(utf8 k, utf8 v, Ttl.Default)
    | WDel k -> WriteOp.Delete(utf8 k)
    | WMerge(k, o) -> WriteOp.Merge(utf8 k, utf8 o, Ttl.Default)

let private bufferW (t: Transaction) w =
    match w with
    | WPut(k, v) -> t.Put(utf8 k, utf8 v, Ttl.Default)
    | WDel k -> t.Delete(utf8 k)
    | WMerge(k, o) -> t.Merge(utf8 k, utf8 o, Ttl.Default)

/// `[lo, hi)` as a key range (hi > lo).
let private rangeOf (lo: string) (hi: string) : KeyRange =
    match KeyRange.ofBounds (KeyBound.Included(utf8 lo)) (KeyBound.Excluded(utf8 hi)) with
    | Ok r -> r
    | Error e -> failtestf "bad range %s..%s: %A" lo hi e

let private inRange (lo: string) (hi: string) (k: string) =
    String.CompareOrdinal(k, lo) >= 0 && String.CompareOrdinal(k, hi) < 0

let private scanModel (m: Model) lo hi desc =
    let xs = m |> Map.toList |> List.filter (fst >> inRange lo hi)
    if desc then List.rev xs else xs

let private txOpts =
    { options with
        MergeOperator = Some concat }

// ---------------------------------------------------------------------------------------------
// History checker
// ---------------------------------------------------------------------------------------------

type private Read =
    | RGet of key: string * got: string option
    | RScan of lo: string * hi: string * desc: bool * got: (string * string) list

type private TxRecord =
    {
        Iso: IsolationLevel
        Start: uint64
        /// Commit seq of a committed transaction with writes.
        Commit: uint64 option
        Committed: bool
        Writes: WSpec list
        /// Each read with the number of own writes buffered before it.
        Reads: (int * Read) list
    }

let private histKeys = [| "a"; "b"; "c"; "d"; "e" |]

let private runWorker
    (db: Db)
    (worker: int)
    (seed: int)
    (txns: int)
    : Task<TxRecord list * (uint64 * WSpec list) list> =
    task {
        let rnd = Random(seed)
        let records = ResizeArray<TxRecord>()
        let plain = ResizeArray<uint64 * WSpec list>()
        let key () = histKeys[rnd.Next histKeys.Length]
        let mutable n = 0

        let fresh () =
            n <- n + 1
            sprintf "<%d.%d>" worker n

        let randomW () =
            match rnd.Next 5 with
            | 0 -> WDel(key ())
            | 1 -> WMerge(key (), fresh ())
            | _ -> WPut(key (), fresh ())

        for _ in 1..txns do
            // a worker with an odd id interleaves plain writes
            if worker % 2 = 1 && rnd.Next 2 = 0 then
                let ws = [ for _ in 1 .. 1 + rnd.Next 2 -> randomW () ]
                let! r = db.WriteAsync(List.map toOp ws, ct)
                plain.Add((r.Seq, ws))

            let iso =
                if rnd.Next 2 = 0 then
                    IsolationLevel.Snapshot
                else
                    IsolationLevel.SerializableSnapshot

            let t = Transaction.Begin(db, iso)
            let writes = ResizeArray<WSpec>()
            let reads = ResizeArray<int * Read>()

            for _ in 1 .. 1 + rnd.Next 5 do
                match rnd.Next 6 with
                | 0
                | 1 ->
                    let k = key ()
                    let! r = t.GetAsync(utf8 k, readOpts, ct)
                    reads.Add((writes.Count, RGet(k, r |> Option.map valueOf)))
                | 2 ->
                    let i = rnd.Next(histKeys.Length - 1)
                    let lo = histKeys[i]
                    let hi = histKeys[i + 1 + rnd.Next(histKeys.Length - i - 1)]
                    let desc = rnd.Next 2 = 0
                    let it = t.Scan(rangeOf lo hi, readOpts, desc, false)
                    let! rows = it.NextBatchAsync(100, ct)
                    reads.Add((writes.Count, RScan(lo, hi, desc, rows |> List.map (fun r -> str r.Key, valueOf r))))
                | _ ->
                    let w = randomW ()
                    bufferW t w
                    writes.Add w

            // yield so that transactions of different workers overlap
            do! Task.Yield()

            let! outcome =
                task {
                    try
                        let! r = t.CommitAsync ct
                        return Ok r
                    with :? SlateException as e when e.Kind = SlateErrorKind.Transaction ->
                        return Error e
                }

            records.Add
                { Iso = iso
                  Start = t.Seq
                  Commit =
                    match outcome with
                    | Ok(Some r) -> Some r.Seq
                    | _ -> None
                  Committed = Result.isOk outcome
                  Writes = List.ofSeq writes
                  Reads = List.ofSeq reads }

        return List.ofSeq records, List.ofSeq plain
    }

let private checkHistory (workers: int) (txns: int) (seed: int) : unit =
    let db = openDb (InMemoryObjectStore()) "txn/history" txOpts

    let results =
        [| for w in 0 .. workers - 1 ->
               Task.Run<TxRecord list * (uint64 * WSpec list) list>(fun () -> runWorker db w (seed + w) txns) |]

    awaitU (Task.WhenAll(results |> Array.map (fun t -> t :> Task)))
    let txs = results |> Array.toList |> List.collect (fun t -> fst t.Result)
    let plain = results |> Array.toList |> List.collect (fun t -> snd t.Result)

    // every committed batch, by seq
    let batches =
        (plain
         @ (txs
            |> List.choose (fun t ->
                match t.Commit with
                | Some s -> Some(s, t.Writes)
                | None -> None)))
        |> List.sortBy fst

    Expect.equal (batches |> List.map fst |> List.distinct) (batches |> List.map fst) "one batch per seq"

    let stateAt (s: uint64) : Model =
        batches
        |> List.takeWhile (fun (q, _) -> q <= s)
        |> List.fold (fun m (_, ws) -> List.fold applyW m ws) Map.empty

    let eval (state: Model) (t: TxRecord) (nWrites: int) (r: Read) =
        let m = List.fold applyW state (List.truncate nWrites t.Writes)

        match r with
        | RGet(k, _) -> RGet(k, Map.tryFind k m)
        | RScan(lo, hi, desc, _) -> RScan(lo, hi, desc, scanModel m lo hi desc)

    let writtenIn (lo: uint64) (hi: uint64) (test: string -> bool) =
        batches
        |> List.exists (fun (q, ws) -> q > lo && q < hi && ws |> List.exists (keyOfW >> test))

    for t in txs do
        // snapshot reads with read-your-own-writes, committed or not
        for n, r in t.Reads do
            Expect.equal r (eval (stateAt t.Start) t n r) (sprintf "read at start seq %d" t.Start)

        let writeKeys = t.Writes |> List.map keyOfW |> Set.ofList

        let readTest (k: string) =
            t.Reads
            |> List.exists (fun (_, r) ->
                match r with
                | RGet(rk, _) -> rk = k
                | RScan(lo, hi, _, _) -> inRange lo hi k)

        let test k =
            writeKeys.Contains k
            || (t.Iso = IsolationLevel.SerializableSnapshot && readTest k)

        match t.Commit with
        | Some c ->
            // SI: no write to my write set between my start and my commit (no lost update);
            // SSI: nothing I read or scanned either
            Expect.isFalse
                (writtenIn t.Start c test)
                (sprintf "committed %A transaction %d..%d overlaps" t.Iso t.Start c)

            if t.Iso = IsolationLevel.SerializableSnapshot then
                // serializable: its reads equal the state just before its commit seq
                for n, r in t.Reads do
                    Expect.equal r (eval (stateAt (c - 1UL)) t n r) (sprintf "SSI read replayed at commit %d" c)
        | None when t.Committed -> () // read-only: serialized at its start seq
        | None ->
            // no spurious aborts: some batch after the start touched what the check covers
            Expect.isTrue
                (writtenIn t.Start UInt64.MaxValue test)
                (sprintf "aborted %A transaction at %d had a conflict" t.Iso t.Start)

    let last = batches |> List.tryLast |> Option.map fst |> Option.defaultValue 0UL
    Expect.equal (scanAll db readOpts) (Map.toList (stateAt last)) "the database equals the replayed history"
    Expect.isGreaterThan (txs |> List.filter (fun t -> t.Commit.IsSome) |> List.length) 0 "some transactions committed"
    awaitU (db.CloseAsync(None, ct))

// ---------------------------------------------------------------------------------------------
// Model-based test: plain writes, snapshots, merges and transactions, one step at a time
// ---------------------------------------------------------------------------------------------

type MKind =
    | KPut
    | KDel
    | KMerge

type MCmd =
    | MWrite of (string * MKind) list
    | MBegin of serializable: bool
    | MTxWrite of int * string * MKind
    | MTxGet of int * string
    | MTxScan of int * string * string * bool
    | MCommit of int
    | MRollback of int
    | MGet of string
    | MSnap
    | MSnapGet of int * string
    | MRelease of int
    | MFlush
    | MReopen

let private mKeys = [| "a"; "ab"; "b"; "c"; "d" |]

let private mCmdGen =
    let key = Gen.elements mKeys

    let kind =
        Gen.frequency [ 3, Gen.constant KPut; 1, Gen.constant KDel; 2, Gen.constant KMerge ]

    let idx = Gen.choose (0, 5)

    let scan =
        gen {
            let! i = Gen.choose (0, mKeys.Length - 2)
            let! j = Gen.choose (i + 1, mKeys.Length - 1)
            let! d = Gen.elements [ false; true ]
            let! tx = idx
            return MTxScan(tx, mKeys[i], mKeys[j], d)
        }

    Gen.frequency
        [ 4, Gen.map MWrite (Gen.nonEmptyListOf (Gen.zip key kind) |> Gen.map (List.truncate 3))
          3, Gen.map MBegin (Gen.elements [ false; true ])
          6, Gen.map3 (fun i k m -> MTxWrite(i, k, m)) idx key kind
          3, Gen.map2 (fun i k -> MTxGet(i, k)) idx key
          2, scan
          3, Gen.map MCommit idx
          1, Gen.map MRollback idx
          2, Gen.map MGet key
          1, Gen.constant MSnap
          2, Gen.map2 (fun i k -> MSnapGet(i, k)) idx key
          1, Gen.map MRelease idx
          1, Gen.constant MFlush
          1, Gen.constant MReopen ]

[<NoComparison; NoEquality>]
type private OpenTx =
    { Txn: Transaction
      Serializable: bool
      Start: uint64
      StartState: Model
      mutable Writes: WSpec list // in order
      mutable ReadKeys: Set<string>
      mutable Ranges: (string * string) list }

let private runModel (cmds: MCmd list) : unit =
    let store = InMemoryObjectStore() :> IObjectStore
    let path = "txn/model"
    let mutable db = openDb store path txOpts
    let mutable model: Model = Map.empty
    let mutable committed = 0UL // last committed seq
    let mutable nextSeq = 1UL
    let mutable log: (uint64 * Set<string>) list = [] // committed batches, newest first
    let mutable counter = 0
    let txs = ResizeArray<OpenTx>()
    let ms = ManifestStore(store, path)

    let latest () =
        match await (ms.ReadLatestAsync ct) with
        | Some m -> m.Manifest
        | None -> failtest "no manifest"

    let snaps = ResizeArray<uint64 * Model>()

    let spec (k: string) (kind: MKind) =
        counter <- counter + 1

        match kind with
        | KPut -> WPut(k, sprintf "%d|" counter)
        | KDel -> WDel k
        | KMerge -> WMerge(k, sprintf "<%d>" counter)

    let pick (i: int) =
        if txs.Count = 0 then None else Some(i % txs.Count)

    let overlay (t: OpenTx) = List.fold applyW t.StartState t.Writes

    for cmd in cmds do
        match cmd with
        | MWrite ops ->
            let ws = ops |> List.map (fun (k, kind) -> spec k kind)
            let r = await (db.WriteAsync(List.map toOp ws, ct))
            Expect.equal r.Seq nextSeq "plain batch seq"
            nextSeq <- r.Seq + 1UL
            committed <- r.Seq
            model <- List.fold applyW model ws
            log <- (r.Seq, ws |> List.map keyOfW |> Set.ofList) :: log
        | MBegin ser ->
            let t =
                Transaction.Begin(
                    db,
                    (if ser then
                         IsolationLevel.SerializableSnapshot
                     else
                         IsolationLevel.Snapshot)
                )

            Expect.equal t.Seq committed "a transaction starts at the last committed seq"

            txs.Add
                { Txn = t
                  Serializable = ser
                  Start = t.Seq
                  StartState = model
                  Writes = []
                  ReadKeys = Set.empty
                  Ranges = [] }
        | MTxWrite(i, k, kind) ->
            match pick i with
            | Some i ->
                let w = spec k kind
                bufferW txs[i].Txn w
                txs[i].Writes <- txs[i].Writes @ [ w ]
            | None -> ()
        | MTxGet(i, k) ->
            match pick i with
            | Some i ->
                let t = txs[i]
                let got = await (t.Txn.GetAsync(utf8 k, readOpts, ct)) |> Option.map valueOf
                Expect.equal got (Map.tryFind k (overlay t)) (sprintf "transaction get %s" k)
                t.ReadKeys <- t.ReadKeys.Add k
            | None -> ()
        | MTxScan(i, lo, hi, desc) ->
            match pick i with
            | Some i ->
                let t = txs[i]
                let got = drain (t.Txn.Scan(rangeOf lo hi, readOpts, desc, false))
                Expect.equal got (scanModel (overlay t) lo hi desc) (sprintf "transaction scan %s..%s" lo hi)
                t.Ranges <- (lo, hi) :: t.Ranges
            | None -> ()
        | MCommit i ->
            match pick i with
            | Some i ->
                let t = txs[i]
                txs.RemoveAt i
                let writeKeys = t.Writes |> List.map keyOfW |> Set.ofList

                let hit (k: string) =
                    writeKeys.Contains k
                    || (t.Serializable
                        && (t.ReadKeys.Contains k
                            || t.Ranges |> List.exists (fun (lo, hi) -> inRange lo hi k)))

                let conflict =
                    log |> List.exists (fun (s, ks) -> s > t.Start && ks |> Set.exists hit)
                    && (not t.Writes.IsEmpty || t.Serializable)

                if conflict then
                    expectSlate SlateErrorKind.Transaction "expected conflict" (fun () -> t.Txn.CommitAsync ct)
                    |> ignore

                    if not t.Writes.IsEmpty then
                        nextSeq <- nextSeq + 1UL // consumed
                else
                    match await (t.Txn.CommitAsync ct) with
                    | Some r ->
                        Expect.isFalse t.Writes.IsEmpty "a result only for writes"
                        Expect.equal r.Seq nextSeq "commit seq"
                        nextSeq <- r.Seq + 1UL
                        committed <- r.Seq
                        model <- List.fold applyW model t.Writes
                        log <- (r.Seq, writeKeys) :: log
                    | None -> Expect.isTrue t.Writes.IsEmpty "None only without writes"
            | None -> ()
        | MRollback i ->
            match pick i with
            | Some i ->
                txs[i].Txn.Rollback()
                txs.RemoveAt i
            | None -> ()
        | MGet k -> Expect.equal (get db readOpts k) (Map.tryFind k model) (sprintf "get %s" k)
        | MSnap ->
            let s = db.RegisterSnapshot()
            Expect.equal s committed "snapshot seq"
            snaps.Add((s, model))
        | MSnapGet(i, k) when snaps.Count > 0 ->
            let s, m = snaps[i % snaps.Count]
            let got = await (db.GetAtAsync(utf8 k, readOpts, s, ct)) |> Option.map valueOf
            Expect.equal got (Map.tryFind k m) (sprintf "get %s at snapshot %d" k s)
        | MSnapGet _ -> ()
        | MRelease i when snaps.Count > 0 ->
            db.ReleaseSnapshot(fst snaps[i % snaps.Count])
            snaps.RemoveAt(i % snaps.Count)
        | MRelease _ -> ()
        | MFlush ->
            let before = (latest ()).LastL0Seq
            awaitU (db.FlushAsync(FlushKind.MemTable, ct))
            let m = latest ()

            if m.LastL0Seq > before then
                // the oldest active snapshot or transaction pins `recent_snapshot_min_seq`
                let pins = [ for s, _ in snaps -> s ] @ [ for t in txs -> t.Start ]
                Expect.equal m.RecentSnapshotMinSeq (List.min (m.LastL0Seq :: pins)) "recent_snapshot_min_seq"

        | MReopen ->
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))

            for t in txs do
                expectClosed CloseReason.Clean "a transaction of a closed db" (fun () -> t.Txn.CommitAsync ct)

            txs.Clear()
            snaps.Clear()
            db <- openDb store path txOpts
            Expect.equal db.LastCommittedSeq committed "reopen recovers every committed batch"
            nextSeq <- committed + 1UL

        Expect.equal (scanAll db readOpts) (Map.toList model) "full scan equals the model"

    for t in txs do
        t.Txn.Rollback()

    Expect.equal db.Conflicts.ActiveCount 0 "no active transaction left"
    Expect.equal db.Conflicts.RecordCount 0 "no conflict state left"
    awaitU (db.CloseAsync(None, ct))

let private modelCase =
    gen {
        let! n = Gen.choose (5, 50)
        return! Gen.listOfLength n mCmdGen
    }

let allTests =
    testList
        "model"
        [ testPropN 30 "history: concurrent SI/SSI transactions and plain writes are consistent"
          <| Prop.forAll (Arb.fromGen (Gen.choose (0, 1_000_000))) (fun seed -> checkHistory 4 12 seed)
          testPropN 60 "engine model with snapshots, merges and transactions"
          <| Prop.forAll
              (Arb.fromGenShrink (modelCase, (fun c -> seq { for i in 0 .. List.length c - 1 -> List.removeAt i c })))
              runModel ]
