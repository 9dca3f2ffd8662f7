/// Compaction across implementations: SlateDB 0.12.1 reads and continues databases Slate compacted,
/// Slate compacts SlateDB-made sorted runs, and a database compacted alternately by Slate's
/// compactor and SlateDB's own (in-process, through `slatedb-write.mjs`) stays identical in both.
module Slate.Properties.CompactionInteropTests

open System
open System.IO
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.SlateDbNode
open Slate.Properties.EngineTests.Eng
open Slate.Properties.CompactorTests

let private hexModel (model: Map<string, string>) : (string * string) list =
    model
    |> Map.toList
    |> List.map (fun (k, v) -> Bytes.toHex (utf8 k), Bytes.toHex (utf8 v))

let private load = CompactorTests.load

let private compatCompactionTest =
    test "Slate compacts the SlateDB-made compat `compacted` database; both read the same content" {
        let root = tempDir "compactor-compat"

        try
            copyTree (Path.Combine(compatDir (), "compacted", "db")) (Path.Combine(root, "compacted", "db"))
            let store = LocalFileObjectStore(root) :> IObjectStore
            let path = "compacted/db"
            let before = (latest store path).Manifest
            Expect.isNonEmpty before.Compacted "SlateDB made sorted runs"
            let db = openDb store path options
            let content = scanAll db readOpts
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))

            let s =
                { settings with
                    MinCompactionSources = 2 }

            let c = startCompactor store path s options
            Expect.isGreaterThan c.Epoch before.CompactorEpoch "fences SlateDB's compactor epoch"
            awaitU (c.DrainAsync ct)
            Expect.isGreaterThan c.CompletedCount 0 "compactions ran"
            let after = (latest store path).Manifest
            Expect.isLessThan after.L0.Length 2 "L0 compacted"
            let db2 = openDb store path options
            Expect.equal (scanAll db2 readOpts) content "Slate reads the same content"
            awaitU (db2.CloseAsync(None, ct))

            let expected =
                content |> List.map (fun (k, v) -> Bytes.toHex (utf8 k), Bytes.toHex (utf8 v))

            Expect.equal (InteropTests.Runner.scanWithSlateDb root path) expected "SlateDB reads the same content"
        finally
            cleanup root
    }

let private slateRunsTest =
    test "SlateDB 0.12.1 reads a database Slate compacted into sorted runs, writes on top, and Slate compacts again" {
        let root = tempDir "compactor-interop"

        try
            let store = LocalFileObjectStore(root) :> IObjectStore
            let path = "db"

            let s =
                { settings with
                    MinCompactionSources = 2 }

            let db = openDb store path options
            let mutable model = load db 900 1 Map.empty

            for i in 0..9..899 do
                let k = sprintf "k%05d" i
                del db k |> ignore
                model <- Map.remove k model

            awaitU (db.FlushAsync(FlushKind.MemTable, ct))
            awaitU ((startCompactor store path s options).DrainAsync ct)
            model <- load db 300 2 model
            awaitU (db.FlushAsync(FlushKind.MemTable, ct))
            // ratio 1: the new, smaller run is not merged into the older one
            awaitU ((startCompactor store path { s with SizeRatio = 1.0 } options).DrainAsync ct)
            model <- load db 40 3 model // a few L0s stay
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            let m = (latest store path).Manifest
            Expect.isGreaterThanOrEqual m.Compacted.Length 2 "at least two sorted runs"
            Expect.isNonEmpty m.L0 "some L0 SSTs"

            Expect.equal (InteropTests.Runner.scanWithSlateDb root path) (hexModel model) "SlateDB reads Slate's runs"

            // SlateDB continues as the writer: new L0s above the compacted state
            let writes =
                [ for i in 0..199 ->
                      let k = sprintf "k%05d" (i * 3)

                      if i % 5 = 0 then
                          k, None
                      else
                          k, Some(sprintf "slatedb-%d" i) ]

            InteropTests.Runner.writeWithSlateDb
                root
                path
                25
                (writes |> List.map (fun (k, v) -> utf8 k, v |> Option.map utf8))

            for k, v in writes do
                model <-
                    match v with
                    | Some v -> Map.add k v model
                    | None -> Map.remove k model

            let c = startCompactor store path s options
            awaitU (c.DrainAsync ct)
            Expect.isGreaterThan c.CompletedCount 0 "Slate compacts SlateDB's L0s"
            let db2 = openDb store path options
            Expect.equal (scanAll db2 readOpts) (Map.toList model) "Slate reads the result"
            awaitU (db2.CloseAsync(None, ct))

            Expect.equal (InteropTests.Runner.scanWithSlateDb root path) (hexModel model) "SlateDB reads the result"
        finally
            cleanup root
    }

// ------------------------------------------------------------------ alternating compaction

/// A write of the alternating test.
type private Write =
    | WPut of key: string * value: string
    | WDel of key: string
    /// A concat merge operand.
    | WMerge of key: string * operand: string

let private keyOf (w: Write) =
    match w with
    | WPut(k, _)
    | WDel k
    | WMerge(k, _) -> k

let private applyWrites (model: Map<string, string>) (writes: Write list) : Map<string, string> =
    writes
    |> List.fold
        (fun m w ->
            match w with
            | WPut(k, v) -> Map.add k v m
            | WDel k -> Map.remove k m
            | WMerge(k, v) -> Map.add k (defaultArg (Map.tryFind k m) "" + v) m)
        model

/// `n` random writes over keys `a0000` .. (`keyspace`): overwrites, new keys, deletes of live keys
/// and of absent ones, merge operands; values name the writer and the round.
let private randomWrites
    (rnd: Random)
    (who: string)
    (round: int)
    (n: int)
    (keyspace: int)
    (model: Map<string, string>)
    =
    let mutable m = model
    let live () = m |> Map.keys |> Array.ofSeq
    let anyKey () = sprintf "a%04d" (rnd.Next keyspace)

    [ for i in 1..n do
          let x = rnd.Next 100

          let w =
              if x < 15 && not m.IsEmpty then
                  let l = live ()
                  WDel l[rnd.Next l.Length]
              elif x < 20 then
                  WDel(anyKey ())
              elif x < 30 then
                  WMerge(anyKey (), sprintf "+%s%d.%d" who round i)
              else
                  WPut(anyKey (), sprintf "%s-r%d-%d-%s" who round i (String('y', rnd.Next(0, 40))))

          m <- applyWrites m [ w ]
          yield w ]

/// The alternating test's Slate settings: the concat merge operator (as in SlateDB's session).
let private mergeOptions =
    { options with
        MergeOperator = Some concat }

let private slateWrite (db: Db) (writes: Write list) =
    let op w =
        match w with
        | WPut(k, v) -> WriteOp.Put(utf8 k, utf8 v, Ttl.Default)
        | WDel k -> WriteOp.Delete(utf8 k)
        | WMerge(k, v) -> WriteOp.Merge(utf8 k, utf8 v, Ttl.Default)

    for w in writes do
        await (db.WriteAsync([ op w ], ct)) |> ignore

/// SlateDB's session: the concat operator, its in-process compactor on (poll 100 ms, 16 KiB output
/// SSTs, two sources suffice), small L0 SSTs, a memtable flush every 25 writes, then it waits for
/// `marker`.
let private slateDbPlan (writes: Write list) (marker: string) : Plan =
    { ConcatMerge = true
      Settings =
        [ "l0_sst_size_bytes", "4096"
          "manifest_poll_interval", "\"100ms\""
          "compactor_options.poll_interval", "\"100ms\""
          "compactor_options.max_sst_size", "16384"
          "compactor_options.scheduler_options.min_compaction_sources", "\"2\"" ]
      Steps =
        [ for i, w in List.indexed writes do
              match w with
              | WPut(k, v) -> yield PlanStep.Write(PlanWrite.Put(utf8 k, utf8 v, None))
              | WDel k -> yield PlanStep.Write(PlanWrite.Delete(utf8 k))
              | WMerge(k, v) -> yield PlanStep.Write(PlanWrite.Merge(utf8 k, utf8 v))

              if (i + 1) % 25 = 0 then
                  yield PlanStep.Flush "memtable"
          yield PlanStep.Flush "memtable"
          yield PlanStep.WaitFile(marker, 90_000) ] }

let private sstIds (m: Manifest) : Set<Ulid> =
    m.Compacted
    |> List.collect (fun sr -> sr.Ssts)
    |> List.map (fun h -> h.Id)
    |> Set.ofList

/// SlateDB (DbReader on a copy, concat operator) scans and gets every key: both equal the model.
let private expectSlateDbReads (root: string) (path: string) (keys: Set<string>) (model: Map<string, string>) label =
    let keyArg = keys |> Seq.map (utf8 >> Bytes.toHex) |> String.concat ","

    match readAll root path [ [ "--merge=concat" ]; [ "--merge=concat"; "--get=" + keyArg ] ] with
    | [ scan; gets ] ->
        Expect.equal (parseScan scan |> List.map (fun e -> e.Key, e.Value)) (hexModel model) (label + ": scan")

        let expected =
            [ for k in keys -> Bytes.toHex (utf8 k), Map.tryFind k model |> Option.map (utf8 >> Bytes.toHex) ]

        Expect.equal (parseGets gets) expected (label + ": get of every key")
    | other -> failtestf "%s: expected two SlateDB outputs, got %d" label other.Length

/// Every key ever written reads its model value (or nothing), and a scan equals the model.
let private expectReads (db: Db) (keys: Set<string>) (model: Map<string, string>) label =
    for k in keys do
        Expect.equal (get db readOpts k) (Map.tryFind k model) (sprintf "%s: get %s" label k)

    Expect.equal (scanAll db readOpts) (Map.toList model) (sprintf "%s: scan" label)

let private expectSlateReads
    (store: IObjectStore)
    (path: string)
    (keys: Set<string>)
    (model: Map<string, string>)
    label
    =
    let db = openDb store path mergeOptions
    expectReads db keys model label
    awaitU (db.CloseAsync(None, ct))

let private alternatingTest =
    test "compacted alternately by Slate and SlateDB's own compactor, a database stays readable and identical in both" {
        let root = tempDir "compaction-alternating"

        try
            let store = LocalFileObjectStore(root) :> IObjectStore
            let cs = CompactorStateStore(store, "db")
            let path = "db"
            let rnd = Random 2026

            let s =
                { settings with
                    MinCompactionSources = 2 }

            let mutable model = Map.empty
            let mutable keys = Set.empty

            let record (writes: Write list) =
                model <- applyWrites model writes
                keys <- keys + (writes |> List.map keyOf |> Set.ofList)

            for round in 1..2 do
                let label = sprintf "round %d" round
                // 1. Slate writes and compacts (in round 2 also the runs SlateDB left), then leaves L0s
                let db = openDb store path mergeOptions
                let w1 = randomWrites rnd "slate" round 500 700 model
                slateWrite db w1
                record w1
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))
                let before = (latest store path).Manifest
                let c1 = startCompactor store path s mergeOptions
                Expect.isGreaterThan c1.Epoch before.CompactorEpoch (label + ": Slate's compactor fences the epoch")
                awaitU (c1.DrainAsync ct)
                Expect.isGreaterThan c1.CompletedCount 0 (label + ": Slate compacted its L0s")
                Expect.equal c1.FailedCount 0 (label + ": no Slate job failed")
                let w2 = randomWrites rnd "slate-l0" round 60 700 model
                slateWrite db w2
                record w2
                awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
                let slateM = (latest store path).Manifest
                let slateL0 = slateM.L0 |> List.map (fun h -> h.Id) |> Set.ofList
                Expect.isNonEmpty slateL0 (label + ": Slate left L0 SSTs for SlateDB's compactor")
                Expect.isNonEmpty slateM.Compacted (label + ": Slate made sorted runs")

                let slateStateId, slateState =
                    match await (cs.ReadLatestAsync ct) with
                    | Some x -> x
                    | None -> failtest "Slate wrote no compactor state"

                Expect.equal slateState.CompactorEpoch slateM.CompactorEpoch (label + ": Slate's state epoch")

                // 2. SlateDB writes with its own compactor, which must read Slate's state file, until it
                //    compacted Slate's L0s and its own
                let w3 = randomWrites rnd "slatedb" round 200 800 model
                let marker = Path.Combine(root, sprintf "compacted-%d" round)
                let plan = slateDbPlan w3 marker
                let lastSeq = slateM.LastL0Seq + uint64 (planWrites plan)
                let writer = startWriter root path plan (TimeSpan.FromSeconds 120.0)

                try
                    waitWhileWriting writer 100 90.0 (label + ": SlateDB's compactor draining L0") (fun () ->
                        let m = (latest store path).Manifest

                        m.CompactorEpoch > slateM.CompactorEpoch
                        && m.LastL0Seq >= lastSeq
                        && m.L0.Length < 2
                        && m.L0 |> List.forall (fun h -> not (slateL0.Contains h.Id))
                        && (match await (cs.ReadLatestAsync ct) with
                            | Some(_, st) -> st.CompactorEpoch = m.CompactorEpoch && (CompactorState.active st).IsEmpty
                            | None -> false))

                    File.WriteAllText(marker, "")
                    finishWriter writer |> ignore
                finally
                    releaseWriter marker writer

                record w3
                let dbM = (latest store path).Manifest
                Expect.isGreaterThan dbM.CompactorEpoch slateM.CompactorEpoch (label + ": SlateDB's compactor epoch")

                Expect.isFalse
                    (Set.isSubset (sstIds dbM) (sstIds slateM))
                    (label + ": SlateDB wrote new sorted-run SSTs")

                // SlateDB continued Slate's compactor-state sequence; Slate decodes every file it wrote
                let dbStates =
                    [ for id in await (cs.ListIdsAsync ct) do
                          if id > slateStateId then
                              match await (cs.ReadAsync(id, ct)) with
                              | Some st -> yield st
                              | None -> failtestf "compactor state %d vanished" id ]

                Expect.isNonEmpty dbStates (label + ": SlateDB wrote compactor state after Slate's")

                for st in dbStates do
                    Expect.equal st.CompactorEpoch dbM.CompactorEpoch (label + ": SlateDB's state carries its epoch")

                    Expect.equal
                        (CompactionStateCodec.decode (CompactionStateCodec.encode st) |> okOrFail)
                        st
                        (label + ": SlateDB's state re-encodes to itself")

                let completedL0 =
                    dbStates
                    |> List.collect (fun st -> st.Compactions)
                    |> List.filter (fun j -> j.Status = CompactionStatus.Completed)
                    |> List.collect (fun j -> j.Spec.L0)
                    |> Set.ofList

                Expect.isTrue
                    (Set.isSubset slateL0 completedL0)
                    (sprintf "%s: SlateDB's completed jobs consumed Slate's L0s %A (saw %A)" label slateL0 completedL0)

                let runs (m: Manifest) =
                    m.Compacted
                    |> List.map (fun sr -> sprintf "SR %d: %d SSTs" sr.Id sr.Ssts.Length)
                    |> String.concat ", "

                printfn
                    "compaction interop %s: Slate left %d L0s over [%s] (epoch %d, state %d); SlateDB (epoch %d) wrote %d states, %d L0s left over [%s]"
                    label
                    slateL0.Count
                    (runs slateM)
                    slateM.CompactorEpoch
                    slateStateId
                    dbM.CompactorEpoch
                    dbStates.Length
                    dbM.L0.Length
                    (runs dbM)

                // 3. Slate reads what SlateDB compacted, and adds an L0 on top
                let db = openDb store path mergeOptions
                expectReads db keys model (label + ": Slate after SlateDB's compaction")
                let w4 = randomWrites rnd "slate-top" round 40 800 model
                slateWrite db w4
                record w4
                awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))

                // 4. Slate compacts SlateDB's runs again (a large size ratio merges every run)
                let c2 = startCompactor store path { s with SizeRatio = 1000.0 } mergeOptions
                Expect.isGreaterThan c2.Epoch dbM.CompactorEpoch (label + ": Slate fences SlateDB's compactor")
                awaitU (c2.DrainAsync ct)
                Expect.isGreaterThan c2.CompletedCount 0 (label + ": Slate compacted SlateDB's runs")
                Expect.equal c2.FailedCount 0 (label + ": no Slate job failed on SlateDB's state")
                let afterM = (latest store path).Manifest
                Expect.equal afterM.Compacted.Length 1 (label + ": one sorted run left")

                Expect.isTrue
                    (Set.intersect (sstIds afterM) (sstIds dbM)).IsEmpty
                    (label + ": every SlateDB-made SST was rewritten")

                expectSlateReads store path keys model (label + ": Slate after its compaction")

                // 5. SlateDB reads the result
                expectSlateDbReads root path keys model (label + ": SlateDB after Slate's compaction")
        finally
            cleanup root
    }

// ------------------------------------------------------------------ SlateDB crashes mid-compaction

/// One attempt: false when SlateDB committed its job before the kill landed (a race the caller
/// retries); else every check of the takeover ran.
let private takeoverAttempt (attempt: int) : bool =
    let root = tempDir (sprintf "compaction-takeover-%d" attempt)

    try
        let store = LocalFileObjectStore(root) :> IObjectStore
        let cs = CompactorStateStore(store, "db")
        let path = "db"

        let s =
            { settings with
                MinCompactionSources = 2 }

        // Slate: a base compacted into SR 0, no L0 left
        let db = openDb store path options
        let mutable model = load db 300 1 Map.empty
        awaitU (db.FlushAsync(FlushKind.MemTable, ct))
        let c1 = startCompactor store path s options
        awaitU (c1.DrainAsync ct)
        Expect.isGreaterThan c1.CompletedCount 0 "Slate compacted its base"
        awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
        let slateM = (latest store path).Manifest
        Expect.isEmpty slateM.L0 "no L0 left by Slate"
        Expect.equal (slateM.Compacted |> List.map (fun sr -> sr.Id)) [ 0u ] "Slate made SR 0"

        // SlateDB: four ~1 MiB L0s; its compactor starts one L0 job once all four exist
        let rnd = Random 11

        let value () =
            String(Array.init 1000 (fun _ -> char (int 'a' + rnd.Next 26)))

        let chunks =
            [ for _ in 1..4 -> [ for _ in 1..5 -> [ for _ in 1..200 -> sprintf "k%05d" (rnd.Next 3000), value () ] ] ]

        for chunk in chunks do
            for batch in chunk do
                for k, v in batch do
                    model <- Map.add k v model

        let marker = Path.Combine(root, "never")

        let plan =
            { ConcatMerge = false
              Settings =
                [ "compactor_options.poll_interval", "\"50ms\""
                  "compactor_options.max_sst_size", "4096"
                  "compactor_options.scheduler_options.min_compaction_sources", "\"4\"" ]
              Steps =
                [ for chunk in chunks do
                      for batch in chunk do
                          yield PlanStep.Batch [ for k, v in batch -> PlanWrite.Put(utf8 k, utf8 v, None) ]

                      yield PlanStep.Flush "memtable"
                  yield PlanStep.WaitFile(marker, 90_000) ] }

        let slateJobs =
            match await (cs.ReadLatestAsync ct) with
            | Some(_, st) -> st.Compactions |> List.map (fun j -> j.Id) |> Set.ofList
            | None -> Set.empty

        let writer = startWriter root path plan (TimeSpan.FromSeconds 120.0)
        let mutable running: (uint64 * Compaction) option = None
        // SlateDB may write Submitted, Running and Completed between two polls: a finished job is a miss
        let mutable lastSeen = "no state file"

        try
            try
                waitWhileWriting writer 5 90.0 "a Running job in SlateDB's compactor state" (fun () ->
                    match await (cs.ReadLatestAsync ct) with
                    | Some(id, st) when st.CompactorEpoch > slateM.CompactorEpoch ->
                        lastSeen <-
                            sprintf
                                "state %d (epoch %d): %A"
                                id
                                st.CompactorEpoch
                                [ for j in st.Compactions -> j.Status, j.Spec.L0.Length, j.Spec.SortedRuns ]

                        match st.Compactions |> List.tryFind (fun j -> j.Status = CompactionStatus.Running) with
                        | Some j ->
                            running <- Some(st.CompactorEpoch, j)
                            true
                        | None ->
                            st.Compactions
                            |> List.exists (fun j -> not (CompactorState.isActive j || slateJobs.Contains j.Id))
                    | Some(id, st) ->
                        lastSeen <- sprintf "state %d still Slate's (epoch %d)" id st.CompactorEpoch
                        false
                    | None -> false)
            with e ->
                failtestf "%s; last compactor state seen: %s" e.Message lastSeen
        finally
            killWriter writer
            writer.Process.Dispose()

        if running.IsNone then
            printfn "compaction takeover attempt %d: SlateDB finished its job between two polls" attempt
            false
        else

            let dbEpoch, job = running.Value
            let crashed = (latest store path).Manifest
            Expect.equal crashed.CompactorEpoch dbEpoch "the state's epoch is SlateDB's compactor epoch"
            Expect.equal job.Spec.SortedRuns [] "SlateDB's job reads L0 only"
            Expect.equal job.Spec.L0.Length 4 "SlateDB's job reads the four L0s"

            if (crashed.L0 |> List.map (fun h -> h.Id)) <> job.Spec.L0 then
                printfn "compaction takeover attempt %d: SlateDB committed job %A before the kill" attempt job.Id
                false
            else
                // killed before its commit: the job's sources are the manifest's L0 (newest first)

                // Slate: the job is reset to Submitted, validated (destination recomputed: SR 1) and run
                let reports = Collections.Concurrent.ConcurrentQueue<CompactionReport>()

                let c2 =
                    await (Compactor.StartAsync(store, path, s, options, None, reports.Enqueue, ct))

                Expect.isGreaterThan c2.Epoch dbEpoch "Slate fences SlateDB's compactor"
                awaitU (c2.DrainAsync ct)
                Expect.equal c2.FailedCount 0 "no job failed"

                match reports |> Seq.tryFind (fun r -> r.JobId = job.Id) with
                | Some r ->
                    Expect.equal r.Error None "SlateDB's job committed by Slate"
                    Expect.equal r.L0Sources job.Spec.L0 "with SlateDB's sources"
                    Expect.equal r.Destination 1u "into SR 1 (highest SR + 1; v1 does not store it)"
                | None -> failtestf "Slate did not run SlateDB's job %A (reports %A)" job.Id (List.ofSeq reports)

                let after = (latest store path).Manifest
                Expect.isEmpty after.L0 "L0 compacted"
                let db2 = openDb store path options

                for KeyValue(k, v) in model do
                    if get db2 readOpts k <> Some v then
                        failtestf "Slate reads %s wrong after the takeover" k

                Expect.equal (scanAll db2 readOpts) (Map.toList model) "Slate scans the model"
                awaitU (db2.CloseAsync(None, ct))
                // in place (the test ends here): the copy the reader makes by default costs seconds
                let scan = node (readerScript ()) [ root; path; "--in-place" ] None |> parseScan
                Expect.equal (scan |> List.map (fun e -> e.Key, e.Value)) (hexModel model) "SlateDB reads the model"
                true
    finally
        cleanup root

let private takeoverTest =
    test "SlateDB killed in the middle of a compaction: Slate's compactor resumes SlateDB's job from its state file" {
        // the kill must land between SlateDB's Running state and its commit (a window of a
        // fraction of a second); a miss is retried on a fresh database
        let caught = Seq.init 3 id |> Seq.exists takeoverAttempt
        Expect.isTrue caught "in 3 attempts the kill never landed before SlateDB's commit"
    }

let allTests =
    testList "Compactor interop" [ slateRunsTest; compatCompactionTest; alternatingTest; takeoverTest ]
