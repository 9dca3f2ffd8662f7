/// Fixtures of the GC tests: a hand-moved clock, a recording store, the two backends, and
/// helpers that build databases with checkpoints, compactor states and hand-made compactions.
module Slate.Properties.GcFixtures

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

/// Records every put and delete (key, in call order) of an inner store; deletes of the keys in
/// `FailDeletes` fail with a transient error.
type RecordingStore(inner: IObjectStore) =
    let log = ConcurrentQueue<string * string>()
    member _.Log: (string * string) list = List.ofSeq log
    member val FailDeletes: Set<string> = Set.empty with get, set

    interface IObjectStore with
        member _.PutAsync(key, data, mode, attributes, ct) =
            log.Enqueue(("put", key))
            inner.PutAsync(key, data, mode, attributes, ct)

        member _.GetAsync(key, ct) = inner.GetAsync(key, ct)
        member _.GetRangeAsync(key, s, e, ct) = inner.GetRangeAsync(key, s, e, ct)
        member _.HeadAsync(key, ct) = inner.HeadAsync(key, ct)
        member _.ListAsync(prefix, ct) = inner.ListAsync(prefix, ct)

        member this.DeleteAsync(key, ct) =
            log.Enqueue(("delete", key))

            if this.FailDeletes.Contains key then
                Task.FromException(ObjectStoreException.Transient(key, "delete", IO.IOException "injected failure"))
            else
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

/// A ULID minted one second before `t0` (older than every SST of the tests).
let oldUlid () : Ulid =
    Ulid.create (t0.ToUnixTimeMilliseconds() - 1000L) (uint16 (rnd.Next 65536)) (uint64 (rnd.NextInt64()))

/// A Completed job minted now (makes the compacted cutoff depend on the manifest alone).
let completedJob (clock: TimeProvider) : Compaction =
    { Compaction.submitted
          (Ulid.create (clock.GetUtcNow().ToUnixTimeMilliseconds()) 0us 0UL)
          { L0 = []
            SortedRuns = [ 0u ]
            Destination = 0u } with
        Status = CompactionStatus.Completed }

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
