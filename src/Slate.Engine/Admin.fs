/// Operations on a database without opening a writer (API.md "SlateAdmin"): manifest queries and
/// checkpoint edits. Every manifest change goes through the CAS loop (`Checkpoints`).
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Slate
open Slate.Model

/// Administration of the database at `dbPath`. Create with `Admin.Create`.
[<Sealed>]
type Admin private (store: IObjectStore, dbPath: string, time: TimeProvider, random: Random, loggers: ILoggerFactory) =
    let ms = ManifestStore(store, dbPath)

    let wrap (what: string) (f: unit -> Task<'a>) : Task<'a> =
        task {
            try
                return! f ()
            with :? ObjectStoreException as e ->
                return raise (Failures.ofStore (sprintf "%s of %s" what dbPath) e)
        }

    /// The object store (wrapped in the retrying store).
    member _.ObjectStore: IObjectStore = store

    /// The database path.
    member _.DbPath: string = dbPath

    /// The manifest store.
    member _.ManifestStore: ManifestStore = ms

    /// The manifest with this id, or the latest with None; None when absent.
    member _.ReadManifestAsync(id: uint64 option, ct: CancellationToken) : Task<StoredManifest option> =
        wrap "reading a manifest" (fun () ->
            match id with
            | Some id -> ms.ReadAsync(id, ct)
            | None -> ms.ReadLatestAsync ct)

    /// Manifests with ids in the half-open range `[from, to)`, ascending (None = unbounded).
    /// A manifest collected between listing and reading is left out.
    member _.ListManifestsAsync
        (from: uint64 option, until: uint64 option, ct: CancellationToken)
        : Task<StoredManifest list> =
        wrap "listing manifests" (fun () ->
            task {
                let! ids = ms.ListIdsAsync ct
                let lo = defaultArg from 0UL
                let hi = defaultArg until UInt64.MaxValue
                let acc = ResizeArray()

                for id in ids do
                    if id >= lo && id < hi then
                        match! ms.ReadAsync(id, ct) with
                        | Some m -> acc.Add m
                        | None -> ()

                return List.ofSeq acc
            })

    /// Sizes in bytes of the compacted SSTs present, by ULID (one listing; for a clone also one
    /// per external database, keeping the SSTs the latest manifest lists there).
    member _.SstSizesAsync(ct: CancellationToken) : Task<Map<Ulid, int64>> =
        wrap "listing SSTs" (fun () ->
            task {
                let sizes (path: string) (keep: Ulid -> bool) =
                    task {
                        let! items = Store.listParsedAsync store path Paths.CompactedDir ct

                        return
                            items
                            |> List.choose (fun (n, m) ->
                                match n with
                                | ObjectName.Compacted id when keep id -> Some(id, m.Size)
                                | _ -> None)
                    }

                let! own = sizes dbPath (fun _ -> true)
                let! latest = ms.ReadLatestAsync ct
                let acc = ResizeArray(own)

                match latest with
                | Some m when not m.Manifest.ExternalDbs.IsEmpty ->
                    for e in m.Manifest.ExternalDbs do
                        let ids = Set.ofList e.SstIds
                        let! ext = sizes e.Path ids.Contains
                        acc.AddRange ext
                | _ -> ()

                return Map.ofSeq acc
            })

    /// Checkpoints of the latest manifest (all, or those with exactly this name); empty when the
    /// database has no manifest.
    member _.ListCheckpointsAsync(name: string option, ct: CancellationToken) : Task<Checkpoint list> =
        wrap "listing checkpoints" (fun () ->
            task {
                match! ms.ReadLatestAsync ct with
                | None -> return []
                | Some m ->
                    return
                        m.Manifest.Checkpoints
                        |> List.filter (fun c ->
                            match name with
                            | None -> true
                            | Some n -> c.Name = Some n)
            })

    /// A checkpoint of the latest manifest without flushing any writer (or of the `Source`
    /// checkpoint's manifest). No manifest or uninitialized → `Data`; unknown source → `Data`.
    member _.CreateDetachedCheckpointAsync(options: CheckpointOptions, ct: CancellationToken) : Task<Checkpoint> =
        wrap "creating a checkpoint" (fun () ->
            task {
                let! (_, cp) = Checkpoints.createAsync ms time random options ct
                return cp
            })

    /// New expiry = now + lifetime (None = never); unknown id → `Data`.
    member _.RefreshCheckpointAsync(id: Guid, lifetime: TimeSpan option, ct: CancellationToken) : Task<Checkpoint> =
        wrap "refreshing a checkpoint" (fun () -> Checkpoints.refreshAsync ms time id lifetime ct)

    /// Removes a checkpoint; an absent id is not an error.
    member _.DeleteCheckpointAsync(id: Guid, ct: CancellationToken) : Task =
        wrap "deleting a checkpoint" (fun () ->
            task {
                do! Checkpoints.deleteAsync ms time id ct
                return ()
            })
        :> Task

    /// Makes this database a clone of `sourcePath` (SPEC §5.15) at checkpoint `sourceCheckpoint`
    /// of the source (a new 5-minute checkpoint of its latest manifest when None). Re-running an
    /// interrupted clone with the same inputs finishes it; an already finished one is left as it is.
    /// Same path or another database already here → `Invalid`; no source manifest or unknown
    /// checkpoint → `Data`. Returns the clone's manifest.
    member _.CreateCloneAsync
        (sourcePath: string, sourceCheckpoint: Guid option, ct: CancellationToken)
        : Task<StoredManifest> =
        wrap "creating a clone" (fun () -> Clone.createAsync store dbPath sourcePath sourceCheckpoint time random ct)

    /// One garbage-collection pass (SPEC §5.12) in the foreground; failed deletes are in the
    /// report (and retried by the next pass).
    member _.RunGarbageCollectionOnceAsync(settings: GcSettings, ct: CancellationToken) : Task<GcReport> =
        Gc.validate settings
        let log = Logging.create loggers Logging.GcCategory

        task {
            let! outcome =
                task {
                    try
                        let! r = Gc.runOnceAsync store dbPath settings time ct
                        return Ok r
                    with e ->
                        return Error e
                }

            match outcome with
            | Ok r ->
                Gc.logOutcome log dbPath outcome
                return r
            | Error e ->
                if not (e :? OperationCanceledException) then
                    Gc.logOutcome log dbPath outcome

                return Decorate.rethrow e
        }

    /// The standalone compactor (SPEC §5.8) until `ct` is cancelled; then it completes normally.
    /// Without a merge operator, a job that meets merge rows fails (and the database is untouched;
    /// it is logged, and its sources are not planned again until a back-off has passed).
    member _.RunCompactorAsync
        (settings: CompactorSettings, mergeOp: MergeOperator option, ct: CancellationToken)
        : Task =
        let options =
            { DbOptions.defaults with
                TimeProvider = time
                MergeOperator = mergeOp
                LoggerFactory = loggers }

        CompactorRunner.runAsync store dbPath settings options ct

    /// An admin of `dbPath` in `store` (wrapped in the retrying store of SPEC §2.4) whose GC passes
    /// and compactor log to `loggerFactory` (`Slate.Gc`, `Slate.Compactor`; null = no logging).
    static member Create
        (store: IObjectStore, dbPath: string, time: TimeProvider, seed: int option, loggerFactory: ILoggerFactory)
        : Admin =
        if isNull (box store) then
            nullArg "store"

        if isNull dbPath then
            nullArg "dbPath"

        let seed = defaultArg seed (Random.Shared.Next())

        let store = RetryingObjectStore.ensure None time seed store

        let loggers =
            if isNull (box loggerFactory) then
                Abstractions.NullLoggerFactory.Instance :> ILoggerFactory
            else
                loggerFactory

        Admin(store, dbPath, time, Random(seed ^^^ 0x5bd1e995), loggers)

    /// An admin of `dbPath` in `store` (wrapped in the retrying store of SPEC §2.4), without logging.
    static member Create(store: IObjectStore, dbPath: string, time: TimeProvider, seed: int option) : Admin =
        Admin.Create(store, dbPath, time, seed, Abstractions.NullLoggerFactory.Instance)
