/// The garbage collector (SPEC §5.12, §4.18, §5.13): one pass = expire checkpoints, list the
/// four folders, plan with the pure `GcPlan.plan`, advance the boundary files, delete with bounded
/// concurrency. Also the periodic loop used by the writer (embedded) and by standalone tools.
namespace Slate.Engine

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Slate
open Slate.Model

/// What one GC pass did (or, in a dry run, would do) in one folder.
type GcDirectoryReport =
    {
        /// The folder (`manifest`, `compactions`, `wal`, `compacted`).
        Directory: string
        /// Whether collection of this folder was switched on.
        Enabled: bool
        /// Objects listed and parsed.
        Listed: int
        /// Keys of objects deleted (empty in a dry run).
        Deleted: string list
        /// Keys of objects a dry run would delete (empty otherwise).
        WouldDelete: string list
        /// Keys whose delete failed, with the cause; retried next pass.
        Failed: (string * string) list
        /// WAL fence objects left in place (WAL only, when fences are not collected).
        KeptFences: string list
        /// Keys in the folder whose names do not parse (never deleted).
        Ignored: string list
    }

/// The outcome of one GC pass.
type GcReport =
    {
        /// Whether this was a dry run.
        DryRun: bool
        /// The pass's clock reading (Unix ms).
        NowMs: int64
        /// The latest manifest id the plan used.
        ManifestId: uint64
        /// Expired checkpoints removed (or, in a dry run, that would be removed).
        ExpiredCheckpoints: Uuid list
        /// The manifest boundary ensured before deleting manifests.
        ManifestBoundary: uint64 option
        /// The compactions boundary ensured before deleting compactor states.
        CompactionsBoundary: uint64 option
        /// The compacted-SST cutoff (Unix ms), when compacted collection ran.
        CompactedCutoffMs: int64 option
        /// Per-folder results, in the order manifest, compactions, wal, compacted.
        Directories: GcDirectoryReport list
        /// Why parts of the pass were skipped.
        Notes: string list
    }

/// Functions over `GcReport`.
[<RequireQualifiedAccess>]
module GcReport =
    /// The report of one folder.
    let directory (dir: string) (r: GcReport) : GcDirectoryReport =
        r.Directories |> List.find (fun d -> d.Directory = dir)

    /// Every failed delete of the pass.
    let failures (r: GcReport) : (string * string) list =
        r.Directories |> List.collect (fun d -> d.Failed)

/// The garbage collector.
[<RequireQualifiedAccess>]
module Gc =
    /// Most deletes in flight at once (SPEC §5.12).
    [<Literal>]
    let DeleteConcurrency = 8

    /// Bound of the checkpoint-expiry manifest update loop.
    let private updateTimeout = TimeSpan.FromSeconds 300.0

    /// Raises `Invalid` ("invalid configuration: ...") for GC settings outside SPEC §7.
    let validate (s: GcSettings) : unit =
        if s.Interval <= TimeSpan.Zero then
            raise (SlateException.Invalid "invalid configuration: GarbageCollector.Interval must be positive")

        if s.MinAge < TimeSpan.Zero then
            raise (SlateException.Invalid "invalid configuration: GarbageCollector.MinAge must not be negative")

    let private storeCall (what: string) (f: unit -> Task<'a>) : Task<'a> =
        task {
            try
                return! f ()
            with :? ObjectStoreException as e ->
                return raise (Failures.ofStore what e)
        }

    type private Listing =
        { Parsed: (ObjectName * ObjectMeta) list
          Ignored: string list }

    let private listDir (store: IObjectStore) (dbPath: string) (dir: string) (ct: CancellationToken) =
        storeCall ("listing " + Paths.dirPrefix dbPath dir) (fun () ->
            task {
                let! items = store.ListAsync(Paths.dirPrefix dbPath dir, ct)
                let parsed = ResizeArray()
                let ignored = ResizeArray()

                for m in items do
                    match Paths.parseKey dbPath m.Key with
                    | Some n -> parsed.Add(n, m)
                    | None -> ignored.Add m.Key

                return
                    { Parsed = List.ofSeq parsed
                      Ignored = List.ofSeq ignored }
            })

    let private gcObjects (l: Listing) : GcObject list =
        l.Parsed
        |> List.map (fun (n, m) ->
            { Name = n
              Size = uint64 (max 0L m.Size)
              LastModifiedMs = m.LastModified.ToUnixTimeMilliseconds() })

    let private emptyListing = { Parsed = []; Ignored = [] }

    /// Reads the latest compactor state (list, read the largest id; a file removed between list
    /// and read makes it list again). None when there is none; `Error note` when unreadable.
    let private readCompactorStateAsync
        (store: IObjectStore)
        (dbPath: string)
        (ct: CancellationToken)
        : Task<Result<CompactorState option, string>> =
        task {
            let mutable result = None
            let mutable attempts = 0

            while result.IsNone do
                let! l = listDir store dbPath Paths.CompactionsDir ct

                let ids =
                    l.Parsed
                    |> List.choose (fun (n, _) ->
                        match n with
                        | ObjectName.Compactions id -> Some id
                        | _ -> None)

                match ids with
                | [] -> result <- Some(Ok None)
                | ids ->
                    let key = Paths.key dbPath (ObjectName.Compactions(List.max ids))

                    match! storeCall ("reading " + key) (fun () -> Store.tryGetAsync store key ct) with
                    | Some r ->
                        match CompactionStateCodec.decode r.Data with
                        | Ok st -> result <- Some(Ok(Some st))
                        | Error e -> result <- Some(Error(sprintf "%s: %s" key (DecodeError.describe e)))
                    | None ->
                        attempts <- attempts + 1

                        if attempts > 10 then
                            raise (SlateException(SlateErrorKind.Unavailable, sprintf "%s vanished repeatedly" key))

            return result.Value
        }

    /// Removes the expired checkpoints of the latest manifest with a checkpoint-only update
    /// (merges with any concurrent writer, compactor or reader: takes everything remote and
    /// re-applies the removal). Returns the resulting latest manifest and the removed ids.
    let expireCheckpointsAsync
        (ms: ManifestStore)
        (latest: StoredManifest)
        (time: TimeProvider)
        (ct: CancellationToken)
        : Task<StoredManifest * Uuid list> =
        let nowMs = time.GetUtcNow().ToUnixTimeMilliseconds()
        let nowS = uint32 (max 0L (min (int64 UInt32.MaxValue) (nowMs / 1000L)))

        let transition (m: Manifest) =
            match GcPlan.expiredCheckpoints nowMs m with
            | [] -> Transition.NoChange []
            | expired -> Transition.Write(Manifest.expireCheckpoints nowS m, expired)

        ManifestCas.updateAsync ms latest (fun _ remote -> remote) transition updateTimeout time ct

    let private parseBoundary (key: string) (data: byte[]) : uint64 =
        let text = Text.Encoding.ASCII.GetString data

        match UInt64.TryParse(text, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture) with
        | true, v -> v
        | _ -> raise (SlateException.Data(sprintf "%s: not a decimal u64" key))

    /// Reads a boundary file (SPEC §4.18); 0 when missing.
    let readBoundaryAsync (store: IObjectStore) (dbPath: string) (name: ObjectName) (ct: CancellationToken) =
        let key = Paths.key dbPath name

        storeCall ("reading " + key) (fun () ->
            task {
                match! Store.tryGetAsync store key ct with
                | None -> return 0UL
                | Some r -> return parseBoundary key r.Data
            })

    /// Ensures the boundary file `name` holds at least `target` (SPEC §4.18): create-if-absent
    /// when missing, else `IfMatch`; on a lost race re-read and retry unless the stored value
    /// already reaches the target. Never decreases it.
    let ensureBoundaryAsync
        (store: IObjectStore)
        (dbPath: string)
        (name: ObjectName)
        (target: uint64)
        (ct: CancellationToken)
        : Task =
        let key = Paths.key dbPath name

        let body () =
            ReadOnlyMemory(Text.Encoding.ASCII.GetBytes(target.ToString()))

        storeCall ("advancing " + key) (fun () ->
            task {
                let mutable fin = false
                let mutable attempts = 0

                while not fin do
                    attempts <- attempts + 1

                    if attempts > 100 then
                        raise (SlateException(SlateErrorKind.Unavailable, sprintf "%s: too many lost races" key))

                    match! Store.tryGetAsync store key ct with
                    | None ->
                        try
                            let! _ = store.PutAsync(key, body (), PutMode.CreateIfAbsent, ObjectStore.noAttributes, ct)
                            fin <- true
                        with :? ObjectStoreException as e when e.Kind = ObjectStoreErrorKind.AlreadyExists ->
                            ()
                    | Some r when parseBoundary key r.Data >= target -> fin <- true
                    | Some r ->
                        try
                            let! _ =
                                store.PutAsync(key, body (), PutMode.IfMatch r.Meta.ETag, ObjectStore.noAttributes, ct)

                            fin <- true
                        with :? ObjectStoreException as e when
                            e.Kind = ObjectStoreErrorKind.PreconditionFailed
                            || e.Kind = ObjectStoreErrorKind.NotFound ->
                            ()
            })

    /// Whether a WAL object is a fence (no `first_entry`; size 0 always is). `Error` when its
    /// footer or info block cannot be read or decoded.
    let private walFenceAsync
        (store: IObjectStore)
        (meta: ObjectMeta)
        (ct: CancellationToken)
        : Task<Result<bool, string>> =
        task {
            let size = meta.Size

            if size = 0L then
                return Ok true
            else
                try
                    let! footer = store.GetRangeAsync(meta.Key, max 0L (size - int64 Sst.FooterLen), size, ct)

                    match Sst.parseFooter size (ReadOnlySpan footer) with
                    | Error e -> return Error(sprintf "%s: %s" meta.Key (DecodeError.describe e))
                    | Ok(struct (metaOff, _)) ->
                        let! info = store.GetRangeAsync(meta.Key, int64 metaOff, size - int64 Sst.FooterLen, ct)

                        match Sst.decodeInfo metaOff (ReadOnlySpan info) with
                        | Error e -> return Error(sprintf "%s: %s" meta.Key (DecodeError.describe e))
                        | Ok i -> return Ok i.FirstEntry.IsNone
                with :? ObjectStoreException as e ->
                    return Error(sprintf "%s: %s" meta.Key e.Message)
        }

    /// Deletes `keys` with at most `DeleteConcurrency` in flight; returns (deleted, failed).
    let private deleteAllAsync (store: IObjectStore) (keys: string list) (ct: CancellationToken) =
        task {
            let deleted = ConcurrentBag<string>()
            let failed = ConcurrentBag<string * string>()

            let opts =
                ParallelOptions(MaxDegreeOfParallelism = DeleteConcurrency, CancellationToken = ct)

            do!
                Parallel.ForEachAsync(
                    keys,
                    opts,
                    fun key token ->
                        ValueTask(
                            task {
                                try
                                    do! store.DeleteAsync(key, token)
                                    deleted.Add key
                                with :? ObjectStoreException as e ->
                                    failed.Add((key, e.Message))
                            }
                        )
                )

            return List.sort (List.ofSeq deleted), List.sortBy fst (List.ofSeq failed)
        }

    /// Reads the manifests named by the checkpoints of `latest` (the latest itself included
    /// when pinned). Missing ones are left out (the planner then skips WAL and compacted
    /// collection); a corrupt one raises `Data` naming it.
    let private readCheckpointedAsync (ms: ManifestStore) (latest: StoredManifest) (ct: CancellationToken) =
        task {
            let acc = ResizeArray<uint64 * Manifest>()

            for id in latest.Manifest.Checkpoints |> List.map (fun c -> c.ManifestId) |> List.distinct do
                if id = latest.Id then
                    acc.Add((id, latest.Manifest))
                else
                    let key = Paths.key ms.DbPath (ObjectName.Manifest id)

                    match! storeCall ("reading " + key) (fun () -> ms.ReadAsync(id, ct)) with
                    | Some m -> acc.Add((id, m.Manifest))
                    | None -> ()

            return List.ofSeq acc
        }

    /// One GC pass over the database at `dbPath` (SPEC §5.12). Store failures of listing and
    /// reading raise `Unavailable`, corrupt manifests `Data` (before anything is deleted);
    /// failed deletes are reported in the result and retried by the next pass.
    let runOnceAsync
        (store: IObjectStore)
        (dbPath: string)
        (settings: GcSettings)
        (time: TimeProvider)
        (ct: CancellationToken)
        : Task<GcReport> =
        backgroundTask {
            validate settings
            let ms = ManifestStore(store, dbPath)
            let notes = ResizeArray<string>()

            // 1. the compactor state BEFORE the manifest (compacted cutoff)
            let! compactorState =
                if settings.CompactedSsts then
                    readCompactorStateAsync store dbPath ct
                else
                    Task.FromResult(Ok None)

            let compactorState =
                match compactorState with
                | Ok s -> s
                | Error note ->
                    notes.Add("compactor state unreadable: " + note)
                    None

            // 2. the latest manifest, then expire checkpoints
            let! latest = storeCall "reading the latest manifest" (fun () -> ms.ReadLatestAsync ct)

            let latest =
                match latest with
                | Some m -> m
                | None -> raise (SlateException.Data(sprintf "%s: failed to find latest manifest" dbPath))

            let nowMs0 = time.GetUtcNow().ToUnixTimeMilliseconds()

            let! latest, expired =
                if settings.DryRun then
                    Task.FromResult((latest, GcPlan.expiredCheckpoints nowMs0 latest.Manifest))
                else
                    storeCall "expiring checkpoints" (fun () -> expireCheckpointsAsync ms latest time ct)

            // in a dry run the expired checkpoints stay live for the plan, as on the store
            let! checkpointed = readCheckpointedAsync ms latest ct

            // 3. list
            let listIf on dir =
                if on then
                    listDir store dbPath dir ct
                else
                    Task.FromResult emptyListing

            let! manifests = listIf settings.Manifests Paths.ManifestDir
            let! compactions = listIf settings.CompactorState Paths.CompactionsDir
            let! wal = listIf settings.Wal Paths.WalDir
            let! compacted = listIf settings.CompactedSsts Paths.CompactedDir
            let nowMs = time.GetUtcNow().ToUnixTimeMilliseconds()

            let input =
                { NowMs = nowMs
                  MinAgeMs = int64 settings.MinAge.TotalMilliseconds
                  Latest = latest.Id, latest.Manifest
                  Checkpointed = checkpointed
                  Manifests = gcObjects manifests
                  Wal = gcObjects wal
                  Compacted = gcObjects compacted
                  Compactions = gcObjects compactions
                  CompactorState = compactorState
                  WalFenceIds = Set.empty
                  WalFences = settings.WalFences }

            // 4. fences among the WAL candidates (only when fences are kept)
            let walMeta =
                wal.Parsed
                |> List.choose (fun (n, m) ->
                    match n with
                    | ObjectName.Wal id -> Some(id, m)
                    | _ -> None)
                |> Map.ofList

            let fences = ResizeArray<uint64>()

            if settings.Wal && not settings.WalFences then
                for id in GcPlan.walCandidates input do
                    match! walFenceAsync store walMeta[id] ct with
                    | Ok true -> fences.Add id
                    | Ok false -> ()
                    | Error note ->
                        // cannot tell: keep it as if it were a fence
                        notes.Add("WAL object unreadable, kept: " + note)
                        fences.Add id

            let input =
                { input with
                    WalFenceIds = Set.ofSeq fences }

            let decision = GcPlan.plan input
            notes.AddRange decision.Notes

            let keyOf n = Paths.key dbPath n

            let manifestKeys =
                decision.DeleteManifests |> List.map (ObjectName.Manifest >> keyOf)

            let compactionKeys =
                decision.DeleteCompactions |> List.map (ObjectName.Compactions >> keyOf)

            let walKeys = decision.DeleteWal |> List.map (ObjectName.Wal >> keyOf)

            let compactedKeys =
                decision.DeleteCompacted |> List.map (ObjectName.Compacted >> keyOf)

            let deleteSet = Set.ofList decision.DeleteWal

            let keptFences =
                if settings.Wal && not settings.WalFences then
                    let candidates = GcPlan.walCandidates input |> Set.ofList

                    walMeta
                    |> Map.toList
                    |> List.filter (fun (id, m) ->
                        (m.Size = 0L || fences.Contains id)
                        && candidates.Contains id
                        && not (deleteSet.Contains id))
                    |> List.map (fun (_, m) -> m.Key)
                else
                    []

            // 5. boundaries, then deletes
            let run (keys: string list) (boundary: (ObjectName * uint64 option) option) =
                task {
                    if settings.DryRun || List.isEmpty keys then
                        return [], []
                    else
                        match boundary with
                        | Some(name, Some b) when settings.BoundaryFilesEnabled ->
                            do! ensureBoundaryAsync store dbPath name b ct
                        | _ -> ()

                        return! deleteAllAsync store keys ct
                }

            let! mDel, mFail = run manifestKeys (Some(ObjectName.ManifestBoundary, decision.ManifestBoundary))
            let! cDel, cFail = run compactionKeys (Some(ObjectName.CompactionsBoundary, decision.CompactionsBoundary))
            let! wDel, wFail = run walKeys None
            let! sDel, sFail = run compactedKeys None

            let dirReport dir enabled (l: Listing) keys deleted failed kept =
                { Directory = dir
                  Enabled = enabled
                  Listed = l.Parsed.Length
                  Deleted = deleted
                  WouldDelete = (if settings.DryRun then keys else [])
                  Failed = failed
                  KeptFences = kept
                  Ignored = l.Ignored }

            return
                { DryRun = settings.DryRun
                  NowMs = nowMs
                  ManifestId = latest.Id
                  ExpiredCheckpoints = expired
                  ManifestBoundary = decision.ManifestBoundary
                  CompactionsBoundary = decision.CompactionsBoundary
                  CompactedCutoffMs = decision.CompactedCutoffMs
                  Directories =
                    [ dirReport Paths.ManifestDir settings.Manifests manifests manifestKeys mDel mFail []
                      dirReport Paths.CompactionsDir settings.CompactorState compactions compactionKeys cDel cFail []
                      dirReport Paths.WalDir settings.Wal wal walKeys wDel wFail keptFences
                      dirReport Paths.CompactedDir settings.CompactedSsts compacted compactedKeys sDel sFail [] ]
                  Notes = List.ofSeq notes }
        }

    /// Runs a pass every `settings.Interval` until `stop` is cancelled; a pass in progress when
    /// `stop` fires is cut short (its store calls and retry waits observe `stop`; deletes already
    /// made stay made, the rest waits for a later pass) and not reported. Each finished pass's
    /// report (or failure) goes to `onPass`. Completes normally when stopped.
    let runLoopAsync
        (store: IObjectStore)
        (dbPath: string)
        (settings: GcSettings)
        (time: TimeProvider)
        (onPass: Result<GcReport, exn> -> unit)
        (stop: CancellationToken)
        : Task =
        validate settings

        backgroundTask {
            try
                while not stop.IsCancellationRequested do
                    do! Task.Delay(settings.Interval, time, stop)

                    let! outcome =
                        task {
                            try
                                let! r = runOnceAsync store dbPath settings time stop
                                return Some(Ok r)
                            with
                            | :? OperationCanceledException when stop.IsCancellationRequested -> return None
                            | e -> return Some(Error e)
                        }

                    outcome |> Option.iter onPass
            with :? OperationCanceledException when stop.IsCancellationRequested ->
                ()
        }

    /// Logs a pass (category `Slate.Gc`): a summary per pass (Information when anything was
    /// deleted, expired or failed, else Debug) with the deleted counts per folder, a Warning per
    /// failed delete, and an Error for a failed pass.
    let logOutcome (log: ILogger) (dbPath: string) (outcome: Result<GcReport, exn>) : unit =
        match outcome with
        | Ok r ->
            let count dir =
                let d = GcReport.directory dir r
                if r.DryRun then d.WouldDelete.Length else d.Deleted.Length

            let failures = GcReport.failures r

            let level =
                if
                    r.Directories
                    |> List.exists (fun d -> d.Deleted.Length + d.WouldDelete.Length > 0)
                    || not r.ExpiredCheckpoints.IsEmpty
                    || not failures.IsEmpty
                then
                    LogLevel.Information
                else
                    LogLevel.Debug

            log.Log(
                level,
                "GC pass of {DbPath} at manifest {ManifestId}{DryRun}: {Manifests} manifests, {Compactions} compactor states, {Wal} WAL objects, {Compacted} compacted SSTs deleted; {Expired} checkpoints expired; {Failed} deletes failed",
                dbPath,
                r.ManifestId,
                (if r.DryRun then " (dry run: would delete)" else ""),
                count Paths.ManifestDir,
                count Paths.CompactionsDir,
                count Paths.WalDir,
                count Paths.CompactedDir,
                r.ExpiredCheckpoints.Length,
                failures.Length
            )

            for key, cause in failures do
                log.LogWarning(
                    "GC of {DbPath}: delete of {Key} failed (retried next pass): {Error}",
                    dbPath,
                    key,
                    cause
                )
        | Error e -> log.LogError(e, "GC pass of {DbPath} failed: {Error}", dbPath, e.Message)

    /// The embedded collector's loop for a writer, logging to `log`: none when `settings` is None.
    let embedded
        (store: IObjectStore)
        (dbPath: string)
        (settings: GcSettings option)
        (time: TimeProvider)
        (log: ILogger)
        (stop: CancellationToken)
        : Task list =
        match settings with
        | None -> []
        | Some s -> [ runLoopAsync store dbPath s time (logOutcome log dbPath) stop ]
