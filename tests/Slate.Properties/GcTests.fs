/// The garbage collector in the engine (SPEC §5.12, §4.18, §5.13) on the in-memory and the
/// local-folder store with a hand-moved clock: what one pass deletes and keeps, dry runs,
/// switches, boundary files, corrupt and foreign objects, a writer racing GC, and the embedded loop.
module Slate.Properties.GcTests

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Engine
open Slate.Model
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

/// A clock the test moves by hand (thread-safe); timers stay real.
type ManualClock(start: DateTimeOffset) =
    inherit TimeProvider()
    let mutable ticks = start.UtcTicks

    member _.Advance(d: TimeSpan) =
        Interlocked.Add(&ticks, d.Ticks) |> ignore

    override _.GetUtcNow() =
        DateTimeOffset(Interlocked.Read(&ticks), TimeSpan.Zero)

/// Records every put and delete (key, in call order) of an inner store.
type RecordingStore(inner: IObjectStore) =
    let log = ConcurrentQueue<string * string>()
    member _.Log: (string * string) list = List.ofSeq log

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            log.Enqueue(("put", key))
            inner.PutAsync(key, data, mode, attributes, ct)

        member _.GetAsync(key, ct) = inner.GetAsync(key, ct)
        member _.GetRangeAsync(key, s, e, ct) = inner.GetRangeAsync(key, s, e, ct)
        member _.HeadAsync(key, ct) = inner.HeadAsync(key, ct)
        member _.ListAsync(prefix, ct) = inner.ListAsync(prefix, ct)

        member _.DeleteAsync(key, ct) =
            log.Enqueue(("delete", key))
            inner.DeleteAsync(key, ct)

        member _.Describe = "recording+" + inner.Describe

let t0 = DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)
let path = "gc/db"

/// A backend: a store on a clock, and its cleanup.
[<NoEquality; NoComparison>]
type Backend =
    { Name: string
      Make: TimeProvider -> IObjectStore * (unit -> unit) }

let backends: Backend list =
    [ { Name = "memory"
        Make = fun clock -> InMemoryObjectStore(clock) :> IObjectStore, ignore }
      { Name = "local"
        Make =
          fun clock ->
              let dir = tempDir "gc"
              LocalFileObjectStore(dir, clock) :> IObjectStore, (fun () -> cleanup dir) } ]

/// Runs `f store clock` on a fresh store of `b` and cleans up.
let withStore (b: Backend) (f: IObjectStore -> ManualClock -> unit) : unit =
    let clock = ManualClock t0
    let store, clean = b.Make clock

    try
        f store clock
    finally
        clean ()

let dbOptions (clock: TimeProvider) : DbOptions =
    { options with
        TimeProvider = clock
        L0SstSizeBytes = 1L <<< 20
        ManifestPollInterval = TimeSpan.FromMilliseconds 50.0 }

let settings: GcSettings =
    { GcSettings.defaults with
        MinAge = TimeSpan.FromMinutes 1.0 }

let runGc (store: IObjectStore) (s: GcSettings) (clock: TimeProvider) : GcReport =
    await (Gc.runOnceAsync store path s clock ct)

let keys (store: IObjectStore) (dir: string) : string list =
    await (store.ListAsync(Paths.dirPrefix path dir, ct))
    |> Seq.map (fun m -> m.Key)
    |> List.ofSeq

/// Every object with its etag (to show that nothing changed).
let snapshot (store: IObjectStore) : (string * string) list =
    await (store.ListAsync("", ct))
    |> Seq.map (fun m -> m.Key, m.ETag)
    |> List.ofSeq

let manifestIds (store: IObjectStore) : uint64 list =
    await ((ManifestStore(store, path)).ListIdsAsync ct)

let latest (store: IObjectStore) : StoredManifest =
    match await ((ManifestStore(store, path)).ReadLatestAsync ct) with
    | Some m -> m
    | None -> failtest "no manifest"

let mKey id = Paths.key path (ObjectName.Manifest id)
let wKey id = Paths.key path (ObjectName.Wal id)
let sKey u = Paths.key path (ObjectName.Compacted u)

let rnd = Random 11

let newUlid (clock: TimeProvider) : Ulid =
    Ulid.create (clock.GetUtcNow().ToUnixTimeMilliseconds()) (uint16 (rnd.Next 65536)) (uint64 (rnd.NextInt64()))

/// Writes the next manifest = `edit latest` plus a checkpoint pinning that very version (its own
/// id, as `CreateCheckpoint` does); retries on a lost race. Returns (manifest id, checkpoint id).
let addCheckpoint
    (store: IObjectStore)
    (clock: TimeProvider)
    (edit: Manifest -> Manifest)
    (expireS: uint32 option)
    : uint64 * Uuid =
    let ms = ManifestStore(store, path)
    let id = Uuid.v4 (uint64 (rnd.NextInt64())) (uint64 (rnd.NextInt64()))
    let mutable result = None

    while result.IsNone do
        let cur = latest store

        let cp =
            { Id = id
              ManifestId = cur.Id + 1UL
              ExpireTimeS = expireS
              CreateTimeS = uint32 (clock.GetUtcNow().ToUnixTimeSeconds())
              Name = None }

        if await (ms.TryWriteAsync(cur.Id, Manifest.addCheckpoint cp (edit cur.Manifest), ct)) then
            result <- Some(cur.Id + 1UL, id)

    result.Value

/// Writes compactor state file `id` holding `jobs`.
let writeCompactorState (store: IObjectStore) (id: uint64) (jobs: Compaction list) : unit =
    let st =
        { CompactorEpoch = 0UL
          Compactions = jobs }

    let key = Paths.key path (ObjectName.Compactions id)

    await (Store.tryCreateAsync store key (CompactionStateCodec.encode st) ct)
    |> ignore

/// Puts an object that no manifest references.
let putRaw (store: IObjectStore) (key: string) (bytes: byte[]) : unit =
    await (store.PutAsync(key, ReadOnlyMemory bytes, PutMode.Overwrite, ObjectStore.noAttributes, ct))
    |> ignore

/// A compactor's work done by hand: merges the `n` oldest L0 SSTs of the latest manifest into one
/// sorted-run SST, records a Completed job in compactor state `stateId`, and commits with the
/// compactor's merge through the CAS loop. Returns the consumed L0 ids and the output.
let compactOldest (store: IObjectStore) (clock: TimeProvider) (n: int) (stateId: uint64) : Ulid list * Ulid =
    let ms = ManifestStore(store, path)
    let cur = latest store
    let consumed = cur.Manifest.L0 |> List.rev |> List.truncate n |> List.rev

    let rows =
        [ for h in consumed ->
              (await (store.GetAsync(sKey h.Id, ct))).Data
              |> Sst.readAll
              |> okOrFail
              |> Seq.ofList ]

    let built =
        Sst.build (DbOptions.sstOptions options) SstType.Compacted (Merge.mergeSorted rows |> List.ofSeq)

    let outId = newUlid clock
    Expect.isTrue (await (Store.tryCreateAsync store (sKey outId) built.Bytes ct)) "output uploaded"

    let handle =
        { Id = outId
          Info = built.Info
          FormatVersion = 2us
          VisibleRange = None }

    let spec =
        CompactionSpec.resolveDestination
            cur.Manifest
            { L0 = consumed |> List.map (fun h -> h.Id)
              SortedRuns = []
              Destination = 0u }

    writeCompactorState
        store
        stateId
        [ { Compaction.submitted (newUlid clock) spec with
              Status = CompactionStatus.Completed
              OutputSsts = [ handle ] } ]

    let commit (m: Manifest) =
        match Compaction.finish m spec [ handle ] with
        | Ok next -> Transition.Write(next, ())
        | Error e -> failtestf "commit: %s" e

    await (ManifestCas.updateAsync ms cur Manifest.mergeForCompactor commit (TimeSpan.FromSeconds 20.0) clock ct)
    |> ignore

    consumed |> List.map (fun h -> h.Id), outId

/// Writes `count` keys `prefix%03d` (value tagged with `round`).
let writeRound (db: Db) (prefix: string) (round: int) (count: int) : unit =
    for i in 0 .. count - 1 do
        put db (sprintf "%s%03d" prefix i) (sprintf "r%d-%d" round i) |> ignore

let dir (r: GcReport) (d: string) = GcReport.directory d r

/// Opens a database and leaves several manifests, WAL SSTs (fence 1, data, a fence from the
/// reopen) and L0 SSTs; closed at the end. Returns its full content.
let populate (store: IObjectStore) (clock: ManualClock) (rounds: int) : (string * string) list =
    let db = openDb store path (dbOptions clock)

    for r in 1..rounds do
        writeRound db "k" r 20
        awaitU (db.FlushAsync(FlushKind.Wal, ct))
        clock.Advance(TimeSpan.FromSeconds 1.0)
        awaitU (db.FlushAsync(FlushKind.MemTable, ct))

    let content = scanAll db readOpts
    awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
    content

let reopenScan (store: IObjectStore) (clock: TimeProvider) : (string * string) list =
    let db = openDb store path (dbOptions clock)
    let rows = scanAll db readOpts
    awaitU (db.CloseAsync(None, ct))
    rows

let manifestTests (b: Backend) =
    test (sprintf "%s: old manifests go except the latest and checkpointed ones; young ones stay" b.Name) {
        withStore b (fun store clock ->
            populate store clock 3 |> ignore
            let pinned, _ = addCheckpoint store clock id None
            let content = populate store clock 2
            let before = manifestIds store
            let young = runGc store settings clock
            Expect.equal (manifestIds store) before "nothing younger than min_age is deleted"
            Expect.isEmpty (dir young Paths.ManifestDir).Deleted "report: none deleted"
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store settings clock
            let last = List.last before
            Expect.equal (manifestIds store) [ pinned; last ] "only the pinned and the latest manifest remain"

            Expect.equal
                (dir r Paths.ManifestDir).Deleted
                (before
                 |> List.filter (fun i -> i <> pinned && i <> last)
                 |> List.map mKey
                 |> List.sort)
                "report lists exactly the deleted manifests"

            Expect.equal r.ManifestBoundary (Some(last - 1UL)) "boundary = largest deleted id"

            Expect.equal
                (await (Gc.readBoundaryAsync store path ObjectName.ManifestBoundary ct))
                (last - 1UL)
                "boundary file advanced"

            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let walTests (b: Backend) =
    test (sprintf "%s: WAL below replay_after goes, except a checkpoint's WAL range and fences" b.Name) {
        withStore b (fun store clock ->
            // WAL 1 = fence of the first open; rounds 1-2 are published (WAL 2, 3), then a WAL-only tail
            let db = openDb store path (dbOptions clock)

            for r in 1..2 do
                writeRound db "a" r 10
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))

            writeRound db "t" 1 5
            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            writeRound db "t" 2 5
            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            awaitU (db.CloseAsync(None, ct))
            let m = (latest store).Manifest
            let tail = walIds store path |> List.filter (fun i -> i > m.ReplayAfterWalId)
            Expect.isNonEmpty tail "a WAL tail"
            // a reader's checkpoint pinning the state with the tail: range (replay_after, last tail id]
            let _, cpId =
                addCheckpoint
                    store
                    clock
                    (Manifest.withWalIdLastSeen (List.max tail))
                    (Some(uint32 (t0.ToUnixTimeSeconds() + 600L)))
            // the reopen fences at the next id and publishes the tail and new rows
            let db = openDb store path (dbOptions clock)
            let fence2 = List.max tail + 1UL
            writeRound db "b" 3 10
            awaitU (db.FlushAsync(FlushKind.Wal, ct))
            awaitU (db.FlushAsync(FlushKind.MemTable, ct))
            let content = scanAll db readOpts
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            let replayAfter = (latest store).Manifest.ReplayAfterWalId
            Expect.isGreaterThan replayAfter fence2 "everything up to the second fence is published"
            let all = walIds store path
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store settings clock

            let expectedGone =
                all
                |> List.filter (fun i -> i < replayAfter && i <> 1UL && i <> fence2 && not (List.contains i tail))

            Expect.isNonEmpty expectedGone "some WAL SSTs are collectable"

            Expect.equal
                (walIds store path)
                (all |> List.filter (fun i -> not (List.contains i expectedGone)))
                "kept: fences, pinned range, ≥ replay_after"

            Expect.equal (dir r Paths.WalDir).Deleted (expectedGone |> List.map wKey) "report: deleted WAL"
            Expect.equal (dir r Paths.WalDir).KeptFences [ wKey 1UL; wKey fence2 ] "report: fences kept"
            // the checkpoint expires: it is removed and its range goes too
            clock.Advance(TimeSpan.FromMinutes 10.0)
            let r = runGc store settings clock
            Expect.equal r.ExpiredCheckpoints [ cpId ] "expired checkpoint reported"
            Expect.isEmpty (latest store).Manifest.Checkpoints "expired checkpoint removed from the manifest"

            Expect.equal
                (walIds store path)
                ([ 1UL; fence2 ] @ (all |> List.filter (fun i -> i >= replayAfter)))
                "pinned range collected"
            // fences only with WalFences
            let r = runGc store { settings with WalFences = true } clock
            Expect.equal (dir r Paths.WalDir).Deleted [ wKey 1UL; wKey fence2 ] "fences deleted when enabled"
            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let compactedTests (b: Backend) =
    test (sprintf "%s: unreferenced old compacted SSTs go; checkpointed, unpublished and new ones stay" b.Name) {
        withStore b (fun store clock ->
            let db = openDb store path (dbOptions clock)
            // an orphan older than every L0 (a failed job's output)
            let orphan = newUlid clock
            putRaw store (sKey orphan) [| 1uy; 2uy |]
            clock.Advance(TimeSpan.FromSeconds 1.0)

            for r in 1..4 do
                writeRound db "k" r (10 + r)
                clock.Advance(TimeSpan.FromSeconds 1.0)
                awaitU (db.FlushAsync(FlushKind.MemTable, ct))

            let content = scanAll db readOpts
            let l0s = (latest store).Manifest.L0 |> List.map (fun h -> h.Id)
            Expect.hasLength l0s 4 "four L0 SSTs"
            // a checkpoint pinning all four, expiring in 10 minutes
            let _, cp =
                addCheckpoint store clock id (Some(uint32 (clock.GetUtcNow().ToUnixTimeSeconds() + 600L)))

            clock.Advance(TimeSpan.FromSeconds 10.0)
            // an uploaded-but-unpublished L0 (newer than every published L0)
            let pending = newUlid clock
            putRaw store (sKey pending) [| 3uy |]
            clock.Advance(TimeSpan.FromSeconds 10.0)
            // compaction of the three oldest while the writer runs
            let consumed, output = compactOldest store clock 3 1UL
            let mutable adopted = false
            let deadline = DateTime.UtcNow.AddSeconds 10.0

            while not adopted && DateTime.UtcNow < deadline do
                let view, _ = db.ScanView(readOpts, None)
                adopted <- view.L0.Length = 1 && view.Compacted.Length = 1
                Thread.Sleep 20

            Expect.isTrue adopted "the writer adopted the compaction"
            Expect.equal (scanAll db readOpts) content "same content after the compaction"
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc store settings clock
            Expect.equal (dir r Paths.CompactedDir).Deleted [ sKey orphan ] "only the orphan goes"
            let present = keys store Paths.CompactedDir |> Set.ofList

            for u in l0s @ [ pending; output ] do
                Expect.isTrue (present.Contains(sKey u)) (sprintf "%O kept" u)

            Expect.equal (scanAll db readOpts) content "writer reads identically after GC"
            // the checkpoint expires: the consumed L0s go
            clock.Advance(TimeSpan.FromMinutes 10.0)
            let r = runGc store settings clock
            Expect.equal r.ExpiredCheckpoints [ cp ] "checkpoint expired"

            Expect.equal
                (dir r Paths.CompactedDir).Deleted
                (consumed |> List.map sKey |> List.sort)
                "consumed L0s deleted"

            Expect.equal
                (keys store Paths.CompactedDir |> Set.ofList)
                (Set.ofList [ sKey (List.head l0s); sKey pending; sKey output ])
                "remaining: the live L0, the pending upload, the output"

            Expect.equal (scanAll db readOpts) content "writer reads identically after GC"
            awaitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            Expect.equal (reopenScan store clock) content "the database opens and reads identically")
    }

let compactionsDirTests (b: Backend) =
    test (sprintf "%s: old compactor states go after the compactions boundary; the latest stays" b.Name) {
        withStore b (fun store clock ->
            populate store clock 1 |> ignore

            for i in 1UL .. 3UL do
                writeCompactorState store i []

            let rec' = RecordingStore store
            clock.Advance(TimeSpan.FromMinutes 2.0)
            let r = runGc rec' settings clock

            let ck i =
                Paths.key path (ObjectName.Compactions i)

            Expect.equal (keys store Paths.CompactionsDir) [ ck 3UL ] "latest compactor state kept"
            Expect.equal r.CompactionsBoundary (Some 2UL) "boundary = 2"
            let log = rec'.Log

            let boundaryAt =
                log
                |> List.findIndex (fun (op, k) -> op = "put" && k = Paths.key path ObjectName.CompactionsBoundary)

            let firstDelete =
                log
                |> List.findIndex (fun (op, k) -> op = "delete" && (k = ck 1UL || k = ck 2UL))

            Expect.isLessThan boundaryAt firstDelete "boundary advanced before deleting")
    }

let allTests =
    testList
        "Gc"
        [ for b in backends do
              yield manifestTests b
              yield walTests b
              yield compactedTests b
              yield compactionsDirTests b ]
