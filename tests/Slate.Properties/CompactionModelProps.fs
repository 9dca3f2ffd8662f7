/// Model-checked compaction (SPEC §5.5, §5.9-§5.12; §9 invariants 25-33): random and exhaustive
/// histories of writes, L0 flushes, snapshots, clock ticks, compactions and checkpoints run through
/// the pure planner, validation, retention, commit and GC plan, against an oracle of every write.
module Slate.Properties.CompactionModelProps

open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.CompactionStateProps

// ---------------------------------------------------------------- the simulated database

/// One step of a history.
type Op =
    /// Put a fresh value (derived from its seq), optionally with a TTL in ms.
    | Put of key: int * ttl: int option
    | Delete of key: int
    /// A merge operand (one byte, derived from its seq) for the concat operator.
    | MergeOp of key: int
    /// The memtable becomes one L0 SST (flush retention applied).
    | Flush
    /// A snapshot at the current seq.
    | Snapshot
    /// Releases the live snapshot at this index (modulo their count).
    | Release of index: int
    | Tick of ms: int
    /// The planner proposes; the first proposal starts and its outputs are computed.
    | Start
    /// The oldest running job commits.
    | Finish
    /// Start then Finish.
    | Compact
    /// A checkpoint of the current manifest.
    | Checkpoint

/// The concat merge operator.
let concat: MergeOperator =
    fun _ existing operand ->
        match existing with
        | Some e -> Array.append e operand
        | None -> operand

let private keyBytes (k: int) = [| byte (int 'a' + k) |]

type private RunningJob =
    { Job: Compaction
      Outputs: SstHandle list
      Clock: int64 }

type private Sim =
    {
        Opts: SizeTieredOptions
        RowsPerSst: int
        Keys: int
        mutable Seq: uint64
        mutable Clock: int64
        mutable NextMs: int64
        mutable Memtable: RowEntry list
        mutable Store: Map<Ulid, RowEntry list>
        mutable Manifest: Manifest
        mutable ManifestId: uint64
        mutable Manifests: Map<uint64, Manifest>
        mutable Writes: RowEntry list
        mutable Snapshots: uint64 list
        mutable Running: RunningJob list
        mutable State: CompactorState
        /// Highest retention clock (flush or committed compaction) applied so far.
        mutable RetClock: int64
        mutable Commits: int
        mutable GcDeleted: int
        mutable Checkpoints: uint64
    }

let private newSim (opts: SizeTieredOptions) (rowsPerSst: int) (keys: int) : Sim =
    { Opts = opts
      RowsPerSst = rowsPerSst
      Keys = keys
      Seq = 0UL
      Clock = 1000L
      NextMs = 1000L
      Memtable = []
      Store = Map.empty
      Manifest = Manifest.initial
      ManifestId = 1UL
      Manifests = Map.ofList [ 1UL, Manifest.initial ]
      Writes = []
      Snapshots = []
      Running = []
      State = CompactorState.initial
      RetClock = System.Int64.MinValue
      Commits = 0
      GcDeleted = 0
      Checkpoints = 0UL }

let private newUlid (sim: Sim) : Ulid =
    sim.NextMs <- sim.NextMs + 1L
    ulidAt sim.NextMs 0UL

let private setManifest (sim: Sim) (m: Manifest) =
    sim.ManifestId <- sim.ManifestId + 1UL
    sim.Manifests <- Map.add sim.ManifestId m sim.Manifests
    sim.Manifest <- m

let private write (sim: Sim) (key: int) (value: uint64 -> RowValue) (expire: int64 option) =
    sim.Seq <- sim.Seq + 1UL

    let row =
        { Key = keyBytes key
          Value = value sim.Seq
          Seq = sim.Seq
          CreateTs = Some sim.Clock
          ExpireTs = expire }

    sim.Memtable <- row :: sim.Memtable
    sim.Writes <- row :: sim.Writes

let private fail (sim: Sim) (fmt: Printf.StringFormat<'a, 'b>) : 'a =
    Printf.kprintf
        (fun msg ->
            failtestf
                "%s\nmanifest L0 %A\nSRs %A\nsnapshots %A\nrunning %A"
                msg
                (sim.Manifest.L0 |> List.map (fun h -> h.Id))
                (sim.Manifest.Compacted
                 |> List.map (fun sr -> sr.Id, sr.Ssts |> List.map (fun h -> sim.Store[h.Id])))
                sim.Snapshots
                (sim.Running |> List.map (fun r -> r.Job.Spec)))
        fmt

let private flush (sim: Sim) =
    if not (List.isEmpty sim.Memtable) then
        let m = sim.Manifest
        let tick = sim.Memtable |> List.choose (fun r -> r.CreateTs) |> List.max
        let clock = max m.LastL0ClockTick tick

        let minSeq =
            match sim.Snapshots with
            | [] -> sim.Seq
            | s -> List.min s

        let rows =
            match Retention.flush minSeq clock (Some concat) (sim.Memtable |> List.sortWith Merge.compareRows) with
            | Ok rows -> rows
            | Error e -> fail sim "flush retention failed: %A" e

        let id = newUlid sim
        sim.Store <- Map.add id rows sim.Store

        let publish: Manifest.L0Publish =
            { Sst = handle id (uint64 rows.Length)
              ReplayAfterWalId = 0UL
              LastTick = tick
              LastSeq = sim.Seq
              OldestSnapshotSeq =
                match sim.Snapshots with
                | [] -> None
                | s -> Some(List.min s) }

        match Manifest.publishL0 0UL publish m with
        | Ok m' -> setManifest sim m'
        | Error e -> fail sim "publishL0 refused: %A" e

        sim.RetClock <- max sim.RetClock clock
        sim.Memtable <- []

let private sstRows (sim: Sim) (ssts: SstHandle list) : RowEntry seq =
    ssts |> List.collect (fun h -> sim.Store[h.Id]) |> Seq.ofList

let private start (sim: Sim) =
    let m = sim.Manifest
    let jobs = sim.State.Compactions
    let props = SizeTiered.propose sim.Opts m jobs

    match SizeTieredProps.plannerViolation sim.Opts m jobs props with
    | Some msg -> fail sim "planner: %s (proposals %A)" msg props
    | None -> ()

    match props with
    | [] -> ()
    | spec :: _ ->
        match Compaction.start m jobs (Compaction.submitted (newUlid sim) spec) with
        | Error(_, why) -> fail sim "a proposal failed to start: %s" why
        | Ok job ->
            let inputs =
                match Compaction.inputs m job.Spec with
                | Ok i -> i
                | Error e -> fail sim "inputs: %s" e

            let p = Compaction.retentionParams m job.Spec (Some concat)

            let rows =
                match Retention.apply p (Merge.mergeSorted (inputs |> List.map (sstRows sim))) with
                | Ok rows -> rows
                | Error e -> fail sim "compaction retention failed: %A" e

            let outputs =
                rows
                |> List.chunkBySize sim.RowsPerSst
                |> List.map (fun chunk ->
                    let id = newUlid sim
                    sim.Store <- Map.add id chunk sim.Store
                    handle id (uint64 chunk.Length))

            sim.State <- CompactorState.upsert job sim.State

            sim.Running <-
                sim.Running
                @ [ { Job = job
                      Outputs = outputs
                      Clock = p.Clock } ]

let private finish (sim: Sim) =
    match sim.Running with
    | [] -> ()
    | r :: rest ->
        let before = sim.Manifest

        match Compaction.finish before r.Job.Spec r.Outputs with
        | Error e -> fail sim "commit refused: %s" e
        | Ok after ->
            if after.L0.Length > before.L0.Length then
                fail sim "a compaction grew L0 from %d to %d" before.L0.Length after.L0.Length

            match Compaction.finish after r.Job.Spec r.Outputs with
            | Ok _ -> fail sim "the same job committed twice"
            | Error _ -> ()

            setManifest sim after
            sim.RetClock <- max sim.RetClock r.Clock

            let completed =
                match Compaction.complete r.Outputs r.Job with
                | Ok j -> j
                | Error e -> fail sim "complete: %s" e

            sim.State <- CompactorState.upsert completed sim.State |> CompactorState.trim
            sim.Running <- rest
            sim.Commits <- sim.Commits + 1

let private apply (sim: Sim) (op: Op) =
    match op with
    | Put(k, ttl) ->
        write
            sim
            k
            (fun s -> RowValue.Value(System.Text.Encoding.ASCII.GetBytes(sprintf "v%d" s)))
            (ttl |> Option.map (fun t -> sim.Clock + int64 t))
    | Delete k -> write sim k (fun _ -> RowValue.Tombstone) None
    | MergeOp k -> write sim k (fun s -> RowValue.Merge [| byte s |]) None
    | Flush -> flush sim
    | Snapshot -> sim.Snapshots <- sim.Seq :: sim.Snapshots
    | Release i ->
        match sim.Snapshots with
        | [] -> ()
        | ss ->
            let i = i % ss.Length
            sim.Snapshots <- (List.take i ss) @ (List.skip (i + 1) ss)
    | Tick ms -> sim.Clock <- sim.Clock + int64 ms
    | Start -> start sim
    | Finish -> finish sim
    | Compact ->
        start sim
        finish sim
    | Checkpoint ->
        sim.Checkpoints <- sim.Checkpoints + 1UL

        let cp =
            { Id = { High = sim.Checkpoints; Low = 1UL }
              ManifestId = sim.ManifestId
              ExpireTimeS = None
              CreateTimeS = 0u
              Name = None }

        setManifest sim (Manifest.addCheckpoint cp sim.Manifest)

// ---------------------------------------------------------------- the oracle and the checks

/// What reads at `s` may return for `key`: the value folded from every write at or below `s`,
/// or — once a retention pass with clock ≥ its expiry has run — the same with an expired base
/// value treated as absent (never an older value).
let private allowed (sim: Sim) (s: uint64) (key: int) : byte[] option list =
    let versions =
        sim.Writes
        |> List.filter (fun r -> r.Key = keyBytes key && r.Seq <= s)
        |> List.sortByDescending (fun r -> r.Seq)

    let isMerge (r: RowEntry) =
        match r.Value with
        | RowValue.Merge _ -> true
        | _ -> false

    let operands = versions |> List.takeWhile isMerge |> List.rev

    let fold (baseValue: byte[] option) =
        operands
        |> List.fold
            (fun acc r ->
                match r.Value with
                | RowValue.Merge v -> Some(concat r.Key acc v)
                | _ -> acc)
            baseValue

    match versions |> List.skipWhile isMerge with
    | { Value = RowValue.Value v
        ExpireTs = e } :: _ ->
        match e with
        | Some x when x <= sim.RetClock -> [ fold (Some v); fold None ]
        | _ -> [ fold (Some v) ]
    | _ -> [ fold None ]

/// Key → value visible at `s` from the memtable, L0 (newest first) and the SRs (highest id first).
let private readAt (sim: Sim) (s: uint64) : Map<int, byte[]> =
    let m = sim.Manifest

    let sources =
        [ yield sim.Memtable |> List.sortWith Merge.compareRows |> Seq.ofList
          for h in m.L0 do
              yield sstRows sim [ h ]
          for sr in m.Compacted |> List.sortByDescending (fun sr -> sr.Id) do
              yield sstRows sim sr.Ssts ]

    match Merge.visible (Some concat) s (Merge.mergeSorted sources) with
    | Ok rows ->
        rows
        |> List.map (fun r ->
            match r.Value with
            | RowValue.Value v -> int r.Key[0] - int 'a', v
            | other -> fail sim "visible returned a non-value %A" other)
        |> Map.ofList
    | Error e -> fail sim "read failed: %A" e

let private checkReads (sim: Sim) =
    for s in sim.Seq :: sim.Snapshots |> List.distinct do
        let got = readAt sim s

        for k in 0 .. sim.Keys - 1 do
            let g = Map.tryFind k got
            let ok = allowed sim s k

            if not (List.contains g ok) then
                fail sim "key %d at seq %d reads %A, the model allows %A" k s g ok

let private checkShape (sim: Sim) =
    let m = sim.Manifest
    let ids = m.Compacted |> List.map (fun sr -> sr.Id)

    if ids |> List.pairwise |> List.exists (fun (a, b) -> a <= b) then
        fail sim "SR ids not strictly descending: %A" ids

    let all = Manifest.allSsts m |> List.map (fun h -> h.Id)

    if (List.distinct all).Length <> all.Length then
        fail sim "an SST is referenced twice: %A" all

let private gcMinAges = [ 0L; 1L; 3L; 1_000_000L ]

let private checkGc (sim: Sim) =
    let m = sim.Manifest

    let checkpointed =
        m.Checkpoints
        |> List.map (fun c -> c.ManifestId)
        |> List.distinct
        |> List.map (fun id -> id, sim.Manifests[id])

    let protectedIds =
        (m :: (checkpointed |> List.map snd) |> List.collect Manifest.allSsts)
        @ (sim.Running |> List.collect (fun r -> r.Outputs))
        |> List.map (fun h -> h.Id)
        |> Set.ofList

    let listed =
        sim.Store
        |> Map.toList
        |> List.map (fun (u, _) ->
            { Name = ObjectName.Compacted u
              Size = 1UL
              LastModifiedMs = Ulid.timestampMs u })

    for minAge in gcMinAges do
        let d =
            GcPlan.plan
                { NowMs = sim.NextMs + 10L
                  MinAgeMs = minAge
                  Latest = sim.ManifestId, m
                  Checkpointed = checkpointed
                  Manifests = []
                  Wal = []
                  Compacted = listed
                  Compactions = []
                  CompactorState = Some sim.State
                  WalFenceIds = Set.empty
                  WalFences = false }

        match d.DeleteCompacted |> List.tryFind protectedIds.Contains with
        | Some u -> fail sim "GC (min_age %d) deletes %O, still reachable or a running job's output" minAge u
        | None -> sim.GcDeleted <- sim.GcDeleted + d.DeleteCompacted.Length

/// Runs a history, checking after every step; returns the final simulation.
let private run (opts: SizeTieredOptions) (rowsPerSst: int) (keys: int) (ops: Op list) : Sim =
    let sim = newSim opts rowsPerSst keys

    for op in ops do
        apply sim op
        checkShape sim
        checkReads sim
        checkGc sim

    sim

// ---------------------------------------------------------------- generators

let private opGen (keys: int) : Gen<Op> =
    let key = Gen.choose (0, keys - 1)

    Gen.frequency
        [ 6, key |> Gen.map (fun k -> Put(k, None))
          2, Gen.map2 (fun k t -> Put(k, Some t)) key (Gen.elements [ 1; 5; 20 ])
          3, key |> Gen.map Delete
          4, key |> Gen.map MergeOp
          5, Gen.constant Flush
          2, Gen.constant Snapshot
          1, Gen.choose (0, 3) |> Gen.map Release
          2, Gen.elements [ 1; 5; 30 ] |> Gen.map Tick
          2, Gen.constant Start
          2, Gen.constant Finish
          3, Gen.constant Compact
          1, Gen.constant Checkpoint ]

let private optsGen: Gen<SizeTieredOptions> =
    gen {
        let! minS = Gen.choose (2, 3)
        let! extra = Gen.choose (0, 2)
        let! ratio = Gen.elements [ 1.0; 2.0; 4.0; 100.0 ]
        let! conc = Gen.choose (1, 3)

        return
            { MinSources = minS
              MaxSources = minS + extra
              SizeRatio = ratio
              MaxConcurrent = conc }
    }

let private historyGen: Gen<SizeTieredOptions * int * int * Op list> =
    gen {
        let! opts = optsGen
        let! rows = Gen.choose (1, 4)
        let! keys = Gen.choose (1, 3)
        let! n = Gen.choose (0, 60)
        let! ops = Gen.listOfLength n (opGen keys)
        return opts, rows, keys, ops
    }

let private historyArb =
    Arb.fromGenShrink (
        historyGen,
        fun (o, r, k, ops) ->
            Arb.toShrink (Arb.fromGen (Gen.constant ops)) ops
            |> Seq.map (fun ops -> o, r, k, ops)
    )

// ---------------------------------------------------------------- exhaustive small scope

/// The operations of the exhaustive check: keys {a, b}.
let private smallOps =
    [ Put(0, None); Put(1, None); Delete 0; MergeOp 1; Flush; Snapshot; Compact ]

let private smallBound = 6

let private smallOpts =
    { MinSources = 2
      MaxSources = 4
      SizeRatio = 4.0
      MaxConcurrent = 1 }

/// Every history of length 0..n over `ops`.
let private allHistories (ops: Op list) (n: int) : Op list seq =
    let rec ofLength k : Op list seq =
        if k = 0 then
            Seq.singleton []
        else
            ofLength (k - 1) |> Seq.collect (fun h -> ops |> Seq.map (fun op -> op :: h))

    seq {
        for k in 0..n do
            yield! ofLength k |> Seq.map List.rev
    }

let private smallCount =
    List.sum [ for k in 0..smallBound -> pown smallOps.Length k ]

// ---------------------------------------------------------------- tests

let private defaultish =
    { MinSources = 2
      MaxSources = 3
      SizeRatio = 4.0
      MaxConcurrent = 2 }

let private examples =
    testList
        "examples"
        [ test "a snapshot keeps a deleted value through an L0 compaction" {
              let sim =
                  run defaultish 2 2 [ Put(0, None); Snapshot; Delete 0; Flush; Put(1, None); Flush; Compact ]

              Expect.equal sim.Commits 1 "one compaction committed"
              Expect.isEmpty sim.Manifest.L0 "both L0s compacted"
              let snap = List.head sim.Snapshots
              Expect.equal (readAt sim snap |> Map.tryFind 0) (Some "v1"B) "the snapshot still reads a"
              Expect.equal (readAt sim sim.Seq |> Map.tryFind 0) None "the latest reads a as deleted"
          }

          test "an expired value reads as absent only after a retention pass, never as an older value" {
              let sim =
                  run defaultish 2 1 [ Put(0, None); Flush; Put(0, Some 5); Tick 10; Put(0, None); Delete 0 ]

              Expect.equal (readAt sim 2UL |> Map.tryFind 0) (Some "v2"B) "not yet expired for reads"
              apply sim Flush
              Expect.equal sim.RetClock 1010L "the flush clock is the memtable's last tick"
              apply sim Compact
              Expect.equal sim.Commits 1 "compacted"
              // retention_min_seq is the last flushed seq, so seq 2's version is gone; latest is deleted
              Expect.equal (readAt sim sim.Seq |> Map.tryFind 0) None "deleted"
          }

          test "GC deletes compacted-away L0s but nothing reachable, with a checkpoint pinning them" {
              let sim =
                  run defaultish 1 2 [ Put(0, None); Flush; Put(1, None); Flush; Checkpoint; Compact ]

              Expect.equal sim.Commits 1 "compacted"
              Expect.equal sim.GcDeleted 0 "the checkpoint pins the old L0s"

              let sim2 = run defaultish 1 2 [ Put(0, None); Flush; Put(1, None); Flush; Compact ]
              Expect.isGreaterThan sim2.GcDeleted 0 "without a checkpoint the old L0s are collectable"
          }

          test "an in-flight L0 job: later flushes stay in L0 and commit keeps them" {
              let sim =
                  run
                      { defaultish with MaxConcurrent = 3 }
                      2
                      2
                      [ Put(0, None); Flush; Put(1, None); Flush; Start; MergeOp 1; Flush; Finish ]

              Expect.equal sim.Commits 1 "committed"
              Expect.equal sim.Manifest.L0.Length 1 "the newer L0 stays"

              Expect.equal
                  (readAt sim sim.Seq |> Map.tryFind 1)
                  (Some(Array.append "v2"B [| 3uy |]))
                  "merge folded on read"
          } ]

let allTests =
    testList
        "CompactionModel"
        [ examples

          testPropN
              400
              "random histories: reads at every live snapshot and the latest match the oracle; shape, commit and GC invariants hold"
          <| Prop.forAll historyArb (fun (opts, rows, keys, ops) -> run opts rows keys ops |> ignore)

          test "random histories reach compactions and GC deletions (non-vacuity)" {
              let sample =
                  Gen.sampleWithSeed (Rnd(42UL)) 30 200 historyGen
                  |> Array.map (fun (o, r, k, ops) -> run o r k ops)

              Expect.isGreaterThan (sample |> Array.sumBy (fun s -> s.Commits)) 50 "compactions committed"
              Expect.isGreaterThan (sample |> Array.sumBy (fun s -> s.GcDeleted)) 0 "GC deleted something"

              Expect.isGreaterThan
                  (sample |> Array.filter (fun s -> not s.Snapshots.IsEmpty) |> Array.length)
                  10
                  "snapshots live"
          }

          test (
              sprintf
                  "exhaustive: all %d histories of ≤ %d ops over {put a, put b, delete a, merge b, flush, snapshot, compact}"
                  smallCount
                  smallBound
          ) {
              let mutable n = 0
              let mutable commits = 0

              for h in allHistories smallOps smallBound do
                  let sim = run smallOpts 2 2 h
                  n <- n + 1
                  commits <- commits + sim.Commits

              printfn "CompactionModel exhaustive: %d histories checked, %d compactions committed" n commits
              Expect.equal n smallCount "every history ran"
              Expect.isGreaterThan commits 0 "compactions happened"
          } ]
