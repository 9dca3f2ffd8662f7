/// The read-only reader (SPEC §5.14): managed-checkpoint, pinned-checkpoint and follow-latest
/// modes, manifest polling and WAL-tail replay into the reader's own memtable. Reads use the
/// writer's read path (`ReadPath`, `DbIterator`).
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// How a reader pins the database state (SPEC §5.14).
type ReaderMode =
    /// Own checkpoint on the latest manifest, replaced as the database moves on; deleted at close.
    | ManagedCheckpoint = 0
    /// Pinned to an existing checkpoint (`CheckpointId`); no polling, no writes.
    | Checkpoint = 1
    /// Follows the latest manifest without writing anything.
    | FollowLatest = 2

/// Settings of a reader. Defaults per SPEC §7.
[<NoComparison; NoEquality>]
type ReaderSettings =
    {
        /// The mode.
        Mode: ReaderMode
        /// The checkpoint of `ReaderMode.Checkpoint`.
        CheckpointId: Guid option
        /// How often the manifest and the WAL are polled.
        ManifestPollInterval: TimeSpan
        /// Lifetime of the managed checkpoint.
        CheckpointLifetime: TimeSpan
        /// Bound of the replayed WAL rows kept in memory.
        MaxMemtableBytes: int64
        /// Do not replay WAL SSTs newer than the manifest's `wal_id_last_seen`.
        SkipWalReplay: bool
        /// Merge operator, if any.
        MergeOperator: MergeOperator option
        /// Clock.
        TimeProvider: TimeProvider
        /// Seed of the random source (checkpoint ids); None = from the OS.
        RandomSeed: int option
        /// Object-store retries of transient failures; None = until closed.
        ObjectStoreMaxRetries: int option
    }

/// Functions over `ReaderSettings`.
[<RequireQualifiedAccess>]
module ReaderSettings =
    /// SPEC §7 defaults.
    let defaults: ReaderSettings =
        { Mode = ReaderMode.ManagedCheckpoint
          CheckpointId = None
          ManifestPollInterval = TimeSpan.FromSeconds 10.0
          CheckpointLifetime = TimeSpan.FromMinutes 10.0
          MaxMemtableBytes = 64L * 1024L * 1024L
          SkipWalReplay = false
          MergeOperator = None
          TimeProvider = TimeProvider.System
          RandomSeed = None
          ObjectStoreMaxRetries = None }

    /// Raises `Invalid` ("invalid configuration: ...") for settings outside SPEC §7.
    let validate (s: ReaderSettings) : unit =
        let fail (m: string) =
            raise (SlateException.Invalid("invalid configuration: " + m))

        if s.ManifestPollInterval <= TimeSpan.Zero then
            fail "ManifestPollInterval must be positive"

        if s.CheckpointLifetime < TimeSpan.FromSeconds 1.0 then
            fail "CheckpointLifetime must be at least 1 s"

        if s.CheckpointLifetime < s.ManifestPollInterval * 2.0 then
            fail "CheckpointLifetime must be at least twice ManifestPollInterval"

        if s.MaxMemtableBytes <= 0L then
            fail "MaxMemtableBytes must be positive"

        if not (Enum.IsDefined s.Mode) then
            fail "unknown reader mode"

        if s.Mode = ReaderMode.Checkpoint && s.CheckpointId.IsNone then
            fail "reader mode Checkpoint requires a CheckpointId"

        match s.ObjectStoreMaxRetries with
        | Some n when n < 0 -> fail "ObjectStoreMaxRetries must not be negative"
        | _ -> ()

/// What a reader serves: a manifest and the WAL rows replayed on top of it.
[<NoComparison; NoEquality>]
type ReaderState =
    {
        /// The manifest the state is built from.
        Manifest: StoredManifest
        /// Memtable of replayed WAL rows (seq > the manifest's `last_l0_seq`).
        Memtable: Memtable
        /// Highest seq visible.
        MaxSeq: uint64
        /// Last WAL id replayed (the manifest's `replay_after_wal_id` before any).
        LastWal: uint64
        /// True when `MaxMemtableBytes` stopped the replay (resumes with the next manifest).
        Full: bool
    }

/// WAL-tail replay of a reader.
[<RequireQualifiedAccess>]
module ReaderReplay =
    /// A state of `m` with nothing replayed yet.
    let initial (m: StoredManifest) : ReaderState =
        { Manifest = m
          Memtable = Memtable()
          MaxSeq = m.Manifest.LastL0Seq
          LastWal = m.Manifest.ReplayAfterWalId
          Full = false }

    /// The view a state serves.
    let view (st: ReaderState) : LsmView =
        { Memtable = st.Memtable
          Frozen = []
          L0 = st.Manifest.Manifest.L0
          Compacted = st.Manifest.Manifest.Compacted }

    /// Replays WAL SSTs after `st.LastWal`: through `upTo` (every id must exist; the memory bound
    /// does not apply, those rows are needed) or, with None, every contiguous id present, stopping
    /// at a WAL-SST boundary once `maxBytes` is reached. Rows are inserted before `MaxSeq`
    /// advances, so readers of the previous state never see part of a batch.
    let replayAsync
        (tables: TableStore)
        (store: IObjectStore)
        (dbPath: string)
        (st: ReaderState)
        (upTo: uint64 option)
        (maxBytes: int64)
        (ct: CancellationToken)
        : Task<ReaderState> =
        task {
            tables.Track st.Manifest.Manifest // a clone's SSTs in other databases (SPEC §3)

            let! ids =
                task {
                    match upTo with
                    | Some last -> return [ st.LastWal + 1UL .. last ]
                    | None ->
                        let! listed = Store.listParsedAsync store dbPath Paths.WalDir ct

                        let present =
                            listed
                            |> List.choose (fun (n, _) ->
                                match n with
                                | ObjectName.Wal id when id > st.LastWal -> Some id
                                | _ -> None)
                            |> Set.ofList

                        return
                            Seq.initInfinite (fun i -> st.LastWal + 1UL + uint64 i)
                            |> Seq.takeWhile present.Contains
                            |> List.ofSeq
                }

            let lastL0 = st.Manifest.Manifest.LastL0Seq
            let mutable maxSeq = st.MaxSeq
            let mutable lastWal = st.LastWal
            let mutable full = st.Full
            let mutable rest = ids

            while not rest.IsEmpty do
                let id = rest.Head
                rest <- rest.Tail

                if upTo.IsNone && st.Memtable.EstimatedSize >= maxBytes then
                    full <- true
                    rest <- []
                else
                    match! tables.TryReadWalAsync(id, ct) with
                    | None when upTo.IsSome ->
                        raise (
                            SlateException.Data(
                                sprintf
                                    "%s is missing inside the WAL replay range"
                                    (Paths.key dbPath (ObjectName.Wal id))
                            )
                        )
                    | None -> rest <- [] // collected meanwhile: a newer manifest covers it
                    | Some rows ->
                        for r in rows do
                            if r.Seq > lastL0 then
                                st.Memtable.Insert r |> ignore
                                maxSeq <- max maxSeq r.Seq

                        lastWal <- id

            return
                { st with
                    MaxSeq = maxSeq
                    LastWal = lastWal
                    Full = full }
        }

    /// True when the manifest moved on in what the reader serves from SSTs (SPEC §5.14).
    let sstsChanged (a: Manifest) (b: Manifest) : bool =
        let runs (m: Manifest) =
            m.Compacted |> List.map (fun sr -> sr.Id, sr.Ssts |> List.map (fun h -> h.Id))

        a.L0LastCompacted <> b.L0LastCompacted
        || a.LastL0Seq <> b.LastL0Seq
        || runs a <> runs b
        || (a.L0 |> List.map (fun h -> h.Id)) <> (b.L0 |> List.map (fun h -> h.Id))

/// A read-only reader of one database. Create with `Reader.OpenAsync`.
[<Sealed>]
type Reader
    private
    (
        store: IObjectStore,
        dbPath: string,
        ms: ManifestStore,
        tables: TableStore,
        settings: ReaderSettings,
        random: Random,
        initial: ReaderState,
        initialCheckpoint: Checkpoint option
    ) =
    let time = settings.TimeProvider
    let cts = new CancellationTokenSource()
    let refreshLock = new SemaphoreSlim(1, 1)
    let mutable state = initial
    let mutable checkpoint = initialCheckpoint
    let mutable closed = false
    let mutable failure: SlateException option = None
    let mutable loop: Task = Task.CompletedTask

    let checkOpen () =
        match failure with
        | Some e -> raise e
        | None ->
            if closed then
                raise (SlateException.Closed(CloseReason.Clean, "reader is closed"))

    let walUpTo (m: StoredManifest) : uint64 option =
        if settings.SkipWalReplay || settings.Mode = ReaderMode.Checkpoint then
            Some m.Manifest.WalIdLastSeen
        else
            None

    let buildAsync (m: StoredManifest) (ct: CancellationToken) : Task<ReaderState> =
        ReaderReplay.replayAsync tables store dbPath (ReaderReplay.initial m) (walUpTo m) settings.MaxMemtableBytes ct

    let lifetime = Some settings.CheckpointLifetime

    /// Replaces the managed checkpoint with one on the latest manifest and rebuilds from it.
    let repinAsync (old: Uuid option) (ct: CancellationToken) : Task =
        task {
            let! (stored, cp) = Checkpoints.replaceAsync ms time random old lifetime ct
            let! st = buildAsync stored ct
            checkpoint <- Some cp
            state <- st
        }

    /// Extends the managed checkpoint when less than half its lifetime remains.
    let extendAsync (ct: CancellationToken) : Task =
        task {
            match checkpoint with
            | Some({ ExpireTimeS = Some e } as cp) ->
                let left = float (int64 e - int64 (Checkpoints.nowSeconds time))

                if left < settings.CheckpointLifetime.TotalSeconds / 2.0 then
                    try
                        let! c = Checkpoints.refreshAsync ms time (Uuid.toGuid cp.Id) lifetime ct
                        checkpoint <- Some c
                    with :? SlateException as ex when ex.Kind = SlateErrorKind.Data ->
                        // removed behind our back (expired and collected): pin afresh
                        do! repinAsync None ct
            | _ -> ()
        }

    /// One poll (SPEC §5.14): rebuild on a changed manifest, else replay new WAL SSTs.
    let pollOnceAsync (ct: CancellationToken) : Task =
        task {
            do! refreshLock.WaitAsync(ct)

            try
                let! latest = Checkpoints.latestAsync ms ct
                let st = state

                if ReaderReplay.sstsChanged st.Manifest.Manifest latest.Manifest then
                    match settings.Mode with
                    | ReaderMode.ManagedCheckpoint -> do! repinAsync (checkpoint |> Option.map (fun c -> c.Id)) ct
                    | _ ->
                        let! next = buildAsync latest ct
                        state <- next
                elif not settings.SkipWalReplay && not st.Full then
                    let! next = ReaderReplay.replayAsync tables store dbPath st None settings.MaxMemtableBytes ct

                    state <- next

                if settings.Mode = ReaderMode.ManagedCheckpoint then
                    do! extendAsync ct
            finally
                refreshLock.Release() |> ignore
        }

    let pollLoop () : Task =
        backgroundTask {
            let ct = cts.Token

            try
                while not ct.IsCancellationRequested do
                    do! Task.Delay(settings.ManifestPollInterval, time, ct)
                    do! pollOnceAsync ct
            with
            | :? OperationCanceledException -> ()
            | :? SlateException as e -> failure <- Some e
            | :? ObjectStoreException as e -> failure <- Some(Failures.ofStore "reader poll" e)
            | e ->
                // a crash of the poller (SPEC §8: Closed(Panic), sticky)
                failure <-
                    Some(
                        SlateException(
                            SlateErrorKind.Closed,
                            Nullable CloseReason.Panic,
                            "reader panicked (its manifest poller crashed): " + e.Message,
                            e
                        )
                    )
        }

    let isNotFound (e: SlateException) =
        match e.InnerException with
        | :? ObjectStoreException as o -> o.Kind = ObjectStoreErrorKind.NotFound
        | _ -> false

    /// Rebuilds the state from the latest manifest (FollowLatest after a file went missing).
    let reloadLatestAsync (ct: CancellationToken) : Task =
        task {
            do! refreshLock.WaitAsync(ct)

            try
                let! latest = Checkpoints.latestAsync ms ct
                let! next = buildAsync latest ct
                state <- next
            finally
                refreshLock.Release() |> ignore
        }

    let getOnceAsync (key: byte[]) (cache: bool) (ct: CancellationToken) : Task<RowEntry option> =
        task {
            let st = state

            let! versions = ReadPath.versionsAsync tables (ReaderReplay.view st) key st.MaxSeq cache ct

            match Merge.resolveVersions settings.MergeOperator versions with
            | Ok r -> return r
            | Error(ResolveError.MergeOperatorMissing _) ->
                return raise (SlateException.Invalid "merge operator missing")
        }

    member private _.Start() =
        if settings.Mode <> ReaderMode.Checkpoint then
            loop <- pollLoop ()

    /// The settings.
    member _.Settings: ReaderSettings = settings

    /// The manifest the reader currently serves.
    member _.Manifest: StoredManifest = state.Manifest

    /// Highest seq visible.
    member _.MaxSeq: uint64 = state.MaxSeq

    /// The managed checkpoint (ManagedCheckpoint mode) or the pinned one (Checkpoint mode).
    member _.Checkpoint: Checkpoint option = checkpoint

    /// Polls once now (tests; the poller does this every `ManifestPollInterval`).
    member _.RefreshAsync(ct: CancellationToken) : Task =
        checkOpen ()

        if settings.Mode = ReaderMode.Checkpoint then
            Task.CompletedTask
        else
            pollOnceAsync ct

    /// Raises if closed or failed.
    member _.CheckOpen() : unit = checkOpen ()

    /// Reads the newest visible version of a key (resolved; None when absent or deleted).
    /// FollowLatest: a file removed by GC reloads the manifest and retries once.
    member _.GetAsync(key: byte[], opts: ReadOpts, ct: CancellationToken) : Task<RowEntry option> =
        task {
            checkOpen ()
            Validate.key key

            try
                return! getOnceAsync key opts.CacheBlocks ct
            with :? SlateException as e when settings.Mode = ReaderMode.FollowLatest && isNotFound e ->
                do! reloadLatestAsync ct
                return! getOnceAsync key opts.CacheBlocks ct
        }

    /// An iterator over the current state. FollowLatest: a file removed by GC reloads the manifest
    /// and the scan resumes once after the last returned key.
    member _.Scan(range: KeyRange, descending: bool, cache: bool) : DbIterator =
        checkOpen ()
        let st = state

        let it =
            DbIterator(
                tables,
                ReaderReplay.view st,
                range,
                st.MaxSeq,
                descending,
                cache,
                settings.MergeOperator,
                checkOpen
            )

        if settings.Mode = ReaderMode.FollowLatest then
            it.ReloadOnMissing(fun ct ->
                task {
                    do! reloadLatestAsync ct
                    let now = state
                    return ReaderReplay.view now, now.MaxSeq
                })

        it

    /// Stops polling and (ManagedCheckpoint) deletes the checkpoint, also after a poll failure.
    /// Later calls → `Closed(Clean)`.
    member _.CloseAsync(ct: CancellationToken) : Task =
        task {
            if closed then
                raise (SlateException.Closed(CloseReason.Clean, "reader is closed"))

            closed <- true
            failure <- None
            cts.Cancel()
            do! loop

            match settings.Mode, checkpoint with
            | ReaderMode.ManagedCheckpoint, Some cp -> do! Checkpoints.deleteAsync ms time (Uuid.toGuid cp.Id) ct
            | _ -> ()
        }

    interface IAsyncDisposable with
        member this.DisposeAsync() =
            if closed then
                ValueTask()
            else
                ValueTask(this.CloseAsync(CancellationToken.None))

    /// Opens a reader of `dbPath`. No manifest → `Data` ("failed to find latest manifest");
    /// unknown checkpoint → `Data` ("checkpoint missing").
    static member OpenAsync
        (store: IObjectStore, dbPath: string, settings: ReaderSettings, ct: CancellationToken)
        : Task<Reader> =
        backgroundTask {
            ReaderSettings.validate settings

            let seed = defaultArg settings.RandomSeed (Random.Shared.Next())

            let store =
                RetryingObjectStore.ensure settings.ObjectStoreMaxRetries settings.TimeProvider seed store

            let ms = ManifestStore(store, dbPath)
            let tables = TableStore(store, dbPath, 16384, 4096)
            let random = Random(seed)
            let time = settings.TimeProvider

            let build (m: StoredManifest) (upTo: uint64 option) =
                ReaderReplay.replayAsync tables store dbPath (ReaderReplay.initial m) upTo settings.MaxMemtableBytes ct

            try
                let! latest = Checkpoints.latestAsync ms ct

                if not latest.Manifest.Initialized then
                    raise (SlateException.Data(sprintf "%s is not initialized (an unfinished clone)" dbPath))

                let! st, cp =
                    task {
                        match settings.Mode with
                        | ReaderMode.Checkpoint ->
                            let gid = settings.CheckpointId.Value

                            match Manifest.tryFindCheckpoint (Uuid.ofGuid gid) latest.Manifest with
                            | None -> return raise (Checkpoints.missing gid)
                            | Some cp ->
                                match! ms.ReadAsync(cp.ManifestId, ct) with
                                | None ->
                                    return
                                        raise (
                                            SlateException.Data(
                                                sprintf "manifest %d of checkpoint %O is missing" cp.ManifestId gid
                                            )
                                        )
                                | Some m ->
                                    let! st = build m (Some m.Manifest.WalIdLastSeen)
                                    return st, Some cp
                        | ReaderMode.ManagedCheckpoint ->
                            let! (stored, cp) =
                                Checkpoints.replaceAsync ms time random None (Some settings.CheckpointLifetime) ct

                            let upTo =
                                if settings.SkipWalReplay then
                                    Some stored.Manifest.WalIdLastSeen
                                else
                                    None

                            let! st = build stored upTo
                            return st, Some cp
                        | _ ->
                            let upTo =
                                if settings.SkipWalReplay then
                                    Some latest.Manifest.WalIdLastSeen
                                else
                                    None

                            let! st = build latest upTo
                            return st, None
                    }

                let r = new Reader(store, dbPath, ms, tables, settings, random, st, cp)
                r.Start()
                return r
            with :? ObjectStoreException as e ->
                return raise (Failures.ofStore (sprintf "opening a reader of %s" dbPath) e)
        }
