/// The writer (SPEC §5.3-§5.7): open with fencing and WAL replay, the writer loop, WAL and
/// memtable flushers, the manifest poller, reads and close. The F# engine API of `API.md`.
namespace Slate.Engine

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Slate
open Slate.Model

[<NoComparison; NoEquality>]
type private WriteRequest =
    {
        Ops: WriteOp list
        /// A transaction's conflict check, run by the writer loop once the seq is assigned.
        Check: (uint64 -> unit) option
        Done: TaskCompletionSource<WriteResult>
    }

type private ImmutableWal =
    { Id: uint64
      Rows: RowEntry list
      LastSeq: uint64
      Bytes: int64 }

/// A frozen memtable awaiting L0 upload and publish (SPEC §5.5).
[<Sealed>]
type private FrozenMemtable(table: Memtable, stamp: uint64, id: Ulid, tracker: SequenceTracker) =
    /// The rows.
    member _.Table: Memtable = table
    /// `recent_flushed_wal_id` at freeze time.
    member _.Stamp: uint64 = stamp
    /// The L0 SST's ULID, minted at freeze (freeze order).
    member _.Id: Ulid = id
    /// The (seq, time) samples recorded while it was the active memtable.
    member _.Tracker: SequenceTracker = tracker
    /// The upload, once the L0 flusher started it (only the flusher holding the lock touches it).
    member val Upload: Task<BuiltSst> option = None with get, set

/// The writer of one database. Create with `Db.OpenAsync`.
[<Sealed>]
type Db private (ms: ManifestStore, tables: TableStore, options: DbOptions, epoch: uint64, initial: StoredManifest) =
    let time = options.TimeProvider
    let sstOptions = DbOptions.sstOptions options
    let log = Logging.create options.LoggerFactory Logging.DbCategory

    let random =
        match options.RandomSeed with
        // the epoch is unique per writer: successive writers with one seed mint different ULIDs
        | Some s -> Random(s ^^^ (int epoch * 0x2545F491))
        | None -> Random()

    let stateLock = obj ()
    let manifestLock = new SemaphoreSlim(1, 1)
    let l0FlushLock = new SemaphoreSlim(1, 1) // one L0 flusher at a time (loop or close)
    let walUploadLock = new SemaphoreSlim(1, 1) // one WAL uploader at a time, in id order
    let cts = new CancellationTokenSource()

    let writes =
        Channel.CreateUnbounded<WriteRequest>(UnboundedChannelOptions(SingleReader = true))

    let mutable manifest = initial

    let mutable view: LsmView =
        { Memtable = Memtable()
          Frozen = []
          L0 = initial.Manifest.L0
          Compacted = initial.Manifest.Compacted }

    let mutable lastSeq = initial.Manifest.LastL0Seq
    let mutable lastCommitted = initial.Manifest.LastL0Seq
    let mutable durableSeq = initial.Manifest.LastL0Seq
    let mutable lastTick = initial.Manifest.LastL0ClockTick
    let mutable nextWalId = initial.Manifest.WalIdLastSeen + 1UL
    let mutable recentFlushedWalId = initial.Manifest.ReplayAfterWalId
    // WAL id stamped on the newest frozen memtable (else replay_after_wal_id)
    let mutable lastFreezeStamp = initial.Manifest.ReplayAfterWalId
    let maxWalFlushesPerMemtable = 4096UL

    let walBuffer = ResizeArray<RowEntry>()
    let mutable walBufferBytes = 0L
    let mutable walBufferLastSeq = 0UL
    let immutableWals = Queue<ImmutableWal>()
    let frozenQueue = Queue<FrozenMemtable>() // oldest first, awaiting L0 upload and publish
    let mutable unflushedBytes = 0L
    // sequence-tracker samples of the active memtable and the time of the last kept pair
    let mutable activeTracker = SequenceTracker.empty
    let mutable trackerLastKept: int64 option = None

    let snapshots = SortedDictionary<uint64, int>()
    let conflicts = ConflictTracker() // transactions (SPEC §6.5)
    let mutable failure: SlateException option = None
    let mutable closed = false
    let mutable accepting = true

    let mutable durableChanged =
        TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

    let mutable unflushedChanged =
        TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

    // completes when a memtable is frozen (wakes an L0 flusher waiting on uploads)
    let mutable frozenAdded =
        TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

    let walSignal = new SemaphoreSlim(0)
    let l0Signal = new SemaphoreSlim(0)
    let mutable loops: Task list = []

    let signal (s: SemaphoreSlim) =
        if s.CurrentCount = 0 then
            s.Release() |> ignore

    let pulse (tcs: byref<TaskCompletionSource>) =
        let old = tcs
        tcs <- TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
        old.TrySetResult() |> ignore

    let checkOpen () =
        match failure with
        | Some e -> raise e
        | None ->
            if closed then
                raise (SlateException.Closed(CloseReason.Clean, "db is closed"))

    /// Records the first fatal error; every pending and later call fails with it. An `Internal`
    /// failure of a background task is a crash: it is recorded as `Closed(Panic)` (SPEC §8), with
    /// the original failure as the inner exception.
    let fail (e: SlateException) =
        let e =
            if e.Kind = SlateErrorKind.Internal then
                SlateException(
                    SlateErrorKind.Closed,
                    Nullable CloseReason.Panic,
                    "db panicked (a background task crashed): " + e.Message,
                    e
                )
            else
                e

        let first =
            lock stateLock (fun () ->
                let first = failure.IsNone

                if first then
                    failure <- Some e
                    accepting <- false
                    pulse &durableChanged
                    pulse &unflushedChanged

                first)

        if first then
            if e.Kind = SlateErrorKind.Closed && e.CloseReason <> Nullable CloseReason.Panic then
                log.LogWarning("writer of {DbPath} (epoch {Epoch}) stopped: {Reason}", ms.DbPath, epoch, e.Message)
            else
                log.LogError(e, "writer of {DbPath} (epoch {Epoch}) failed: {Error}", ms.DbPath, epoch, e.Message)

        writes.Writer.TryComplete() |> ignore
        cts.Cancel()

    let fenced () =
        SlateException.Closed(CloseReason.Fenced, "detected newer DB client")

    let nowTick () : int64 =
        let t = time.GetUtcNow().ToUnixTimeMilliseconds()

        if t >= lastTick then
            t
        else
            let lag = lastTick - t
            Thread.Sleep(TimeSpan.FromMilliseconds(float (min 10_000L (2L * lag))))
            let t2 = time.GetUtcNow().ToUnixTimeMilliseconds()

            if t2 >= lastTick then
                t2
            else
                raise (SlateException.Invalid(sprintf "clock went backwards (%d < last tick %d)" t2 lastTick))

    let mintUlid () : Ulid =
        lock random (fun () ->
            let hi = uint16 (random.Next(0, 65536))
            let lo = uint64 (random.NextInt64()) ^^^ (uint64 (random.Next()) <<< 63)
            Ulid.create (time.GetUtcNow().ToUnixTimeMilliseconds()) hi lo)

    let oldestSnapshot () : uint64 option =
        lock snapshots (fun () ->
            if snapshots.Count = 0 then
                None
            else
                Some(Seq.head snapshots.Keys))

    let rowBytes (rows: RowEntry list) =
        rows |> List.sumBy (fun r -> Memtable.EstimateRowSize r)

    /// Freezes the WAL buffer into an immutable WAL (caller holds stateLock).
    let freezeWalLocked () =
        if walBuffer.Count > 0 then
            let imm =
                { Id = nextWalId
                  Rows = List.ofSeq walBuffer
                  LastSeq = walBufferLastSeq
                  Bytes = walBufferBytes }

            nextWalId <- nextWalId + 1UL
            immutableWals.Enqueue imm
            walBuffer.Clear()
            walBufferBytes <- 0L

    /// Freezes the memtable (caller holds stateLock).
    let freezeMemtableLocked () =
        let mt = view.Memtable

        if not mt.IsEmpty then
            mt.Freeze()
            lastFreezeStamp <- recentFlushedWalId
            frozenQueue.Enqueue(FrozenMemtable(mt, recentFlushedWalId, mintUlid (), activeTracker))
            activeTracker <- SequenceTracker.empty
            pulse &frozenAdded

            view <-
                { view with
                    Memtable = Memtable()
                    Frozen = mt :: view.Frozen }

            if not options.WalEnabled then
                unflushedBytes <- unflushedBytes + mt.EstimatedSize

            signal l0Signal

    /// Records a (seq, create_ts) sample in the active memtable's tracker (caller holds stateLock).
    let recordSampleLocked (seq: uint64) (tick: int64) =
        let t, kept =
            SequenceTracker.record seq (tick / 1000L) trackerLastKept activeTracker

        activeTracker <- t
        trackerLastKept <- kept

    let applyBatch (req: WriteRequest) =
        let seq = lastSeq + 1UL
        lastSeq <- seq
        // a conflicting transaction fails here: nothing applied, the seq is consumed
        req.Check |> Option.iter (fun check -> check seq)

        let tick = nowTick ()
        let rows = WriteRows.build options.MergeOperator options.DefaultTtl req.Ops seq tick
        let bytes = rowBytes rows

        lock stateLock (fun () ->
            if options.WalEnabled then
                walBuffer.AddRange rows
                walBufferBytes <- walBufferBytes + bytes
                walBufferLastSeq <- seq
                unflushedBytes <- unflushedBytes + bytes

            let mt = view.Memtable

            for r in rows do
                mt.Insert r |> ignore

            lastTick <- tick
            Volatile.Write(&lastCommitted, seq)
            recordSampleLocked seq tick

            if options.WalEnabled && walBufferBytes >= options.L0SstSizeBytes then
                signal walSignal

            if mt.EstimatedSize >= options.L0SstSizeBytes then
                if options.WalEnabled then
                    freezeWalLocked ()
                    signal walSignal

                freezeMemtableLocked ())

        conflicts.Record(seq, rows |> List.map (fun r -> r.Key) |> Array.ofList)
        { Seq = seq; CreateTs = tick }

    let writerLoop () : Task =
        backgroundTask {
            let reader = writes.Reader
            let mutable go = true

            while go do
                let! more = reader.WaitToReadAsync()

                if not more then
                    go <- false
                else
                    let mutable req = Unchecked.defaultof<WriteRequest>

                    while reader.TryRead(&req) do
                        match failure with
                        | Some e -> req.Done.TrySetException(e) |> ignore
                        | None ->
                            // backpressure (SPEC §5.4 step 1)
                            let mutable waiting = true

                            while waiting do
                                let t =
                                    lock stateLock (fun () ->
                                        if unflushedBytes > options.MaxUnflushedBytes && failure.IsNone then
                                            Some unflushedChanged.Task
                                        else
                                            None)

                                match t with
                                | Some t ->
                                    signal walSignal
                                    do! t
                                | None -> waiting <- false

                            match failure with
                            | Some e -> req.Done.TrySetException(e) |> ignore
                            | None ->
                                try
                                    req.Done.TrySetResult(applyBatch req) |> ignore
                                with
                                | :? SlateException as e -> req.Done.TrySetException(e) |> ignore
                                | e ->
                                    let se =
                                        SlateException(SlateErrorKind.Internal, "writer loop failed: " + e.Message, e)

                                    req.Done.TrySetException(se) |> ignore
        }

    let walSst (imm: ImmutableWal) : byte[] =
        (Sst.build sstOptions SstType.Wal imm.Rows).Bytes

    /// Uploads every immutable WAL in id order; advances durability.
    let uploadWalsAsync (ct: CancellationToken) : Task =
        task {
            let mutable go = true

            while go do
                let next =
                    lock stateLock (fun () ->
                        if immutableWals.Count > 0 then
                            Some(immutableWals.Peek())
                        else
                            None)

                match next with
                | None -> go <- false
                | Some imm ->
                    let! created = tables.TryWriteWalAsync(imm.Id, walSst imm, ct)

                    if not created then
                        raise (fenced ())

                    lock stateLock (fun () ->
                        immutableWals.Dequeue() |> ignore
                        recentFlushedWalId <- imm.Id
                        Volatile.Write(&durableSeq, max durableSeq imm.LastSeq)
                        unflushedBytes <- unflushedBytes - imm.Bytes

                        // at most 4096 WAL SSTs between memtable freezes (SPEC §5.5), so that
                        // replay after a crash stays bounded
                        if recentFlushedWalId - lastFreezeStamp >= maxWalFlushesPerMemtable then
                            freezeMemtableLocked ()

                        pulse &durableChanged
                        pulse &unflushedChanged)
        }

    let flushWalNowAsync (ct: CancellationToken) : Task =
        task {
            do! walUploadLock.WaitAsync(ct)

            try
                lock stateLock freezeWalLocked
                do! uploadWalsAsync ct
            finally
                walUploadLock.Release() |> ignore
        }

    let walLoop () : Task =
        backgroundTask {
            let ct = cts.Token

            try
                while not ct.IsCancellationRequested do
                    let wait =
                        match options.FlushInterval with
                        | Some i -> walSignal.WaitAsync(i, ct)
                        | None -> walSignal.WaitAsync(Timeout.Infinite, ct)

                    let! _ = wait
                    do! flushWalNowAsync ct
            with
            | :? OperationCanceledException -> ()
            | :? SlateException as e -> fail e
            | e -> fail (SlateException(SlateErrorKind.Internal, "WAL flusher failed: " + e.Message, e))
        }

    let writerMerge (local: Manifest) (remote: Manifest) : Manifest =
        if remote.WriterEpoch > epoch then
            raise (fenced ())

        Manifest.mergeForWriter local remote

    /// Runs a manifest transition through the CAS loop and adopts the result into the view.
    let updateManifestAsync (transition: Manifest -> Transition<'r>) (ct: CancellationToken) : Task<'r> =
        task {
            do! manifestLock.WaitAsync(ct)

            try
                let! (stored, r) =
                    ManifestCas.updateAsync ms manifest writerMerge transition options.ManifestUpdateTimeout time ct

                manifest <- stored
                return r
            finally
                manifestLock.Release() |> ignore
        }

    /// The rows of an L0 SST built from a frozen memtable (SPEC §5.5): the flush retention filter
    /// at the memtable's clock, keeping what every active snapshot reads.
    let flushRows (mt: Memtable) : RowEntry seq =
        let snaps =
            lock snapshots (fun () -> snapshots.Keys |> Seq.filter (fun s -> s < mt.MaxSeq) |> List.ofSeq)

        FlushFilter.apply snaps mt.LastTick options.MergeOperator (mt.ToSeq())

    /// Builds and uploads the L0 SST of a frozen memtable (an empty SST is not uploaded).
    let startUpload (fm: FrozenMemtable) (ct: CancellationToken) : Task<BuiltSst> =
        Task.Run<BuiltSst>(fun () ->
            task {
                let built = Sst.build sstOptions SstType.Compacted (flushRows fm.Table)

                if built.RowCount > 0 then
                    do! tables.WriteCompactedAsync(fm.Id, built, ct)

                return built
            })

    /// Publishes the oldest frozen memtable, whose SST `built` is uploaded (SPEC §5.5): waits until
    /// its rows are durable (WAL enabled), writes the manifest, drops it from the read path.
    let publishHeadAsync (fm: FrozenMemtable) (built: BuiltSst) (ct: CancellationToken) : Task =
        task {
            // publish only durable data (SPEC §5.5)
            if options.WalEnabled then
                while Volatile.Read(&durableSeq) < fm.Table.MaxSeq do
                    let t = lock stateLock (fun () -> durableChanged.Task)

                    // re-check after taking the task: a pulse in between would be lost
                    checkOpen ()

                    if Volatile.Read(&durableSeq) < fm.Table.MaxSeq then
                        signal walSignal
                        do! t.WaitAsync(ct)
                        checkOpen ()

            let handle =
                { Id = fm.Id
                  Info = built.Info
                  FormatVersion = 2us
                  VisibleRange = None }

            let publish: Manifest.L0Publish =
                { Sst = handle
                  ReplayAfterWalId = fm.Stamp
                  LastTick = fm.Table.LastTick
                  LastSeq = fm.Table.MaxSeq
                  OldestSnapshotSeq = oldestSnapshot () }

            let walIdLastSeen = lock stateLock (fun () -> nextWalId - 1UL)

            let withTracker (m: Manifest) =
                if SequenceTracker.count fm.Tracker = 0 then
                    m
                else
                    match SequenceTracker.decode m.SequenceTracker with
                    | Ok t ->
                        { m with
                            SequenceTracker = SequenceTracker.encode (SequenceTracker.merge t fm.Tracker) }
                    | Error e -> raise (SlateException.Data(sprintf "manifest sequence tracker: %A" e))

            do!
                updateManifestAsync
                    (fun m ->
                        let m =
                            if built.RowCount > 0 then
                                Manifest.publishL0 walIdLastSeen publish m
                            else
                                Ok m

                        match m with
                        | Ok m -> Transition.Write(withTracker m, ())
                        | Error(ManifestError.ClockWentBackwards(a, b)) ->
                            raise (SlateException.Invalid(sprintf "clock went backwards (%d < %d)" b a))
                        | Error e -> raise (SlateException(SlateErrorKind.Internal, sprintf "%A" e)))
                    ct

            lock stateLock (fun () ->
                frozenQueue.Dequeue() |> ignore
                let m = manifest.Manifest

                view <-
                    { view with
                        Frozen = view.Frozen |> List.filter (fun t -> not (obj.ReferenceEquals(t, fm.Table)))
                        L0 = m.L0
                        Compacted = m.Compacted }

                if not options.WalEnabled then
                    unflushedBytes <- unflushedBytes - fm.Table.EstimatedSize
                    Volatile.Write(&durableSeq, max durableSeq m.LastL0Seq)
                    pulse &durableChanged

                pulse &unflushedChanged)
        }

    /// Uploads and publishes every frozen memtable (SPEC §5.5): up to `L0FlushParallelism` uploads
    /// run at once, in freeze order; publishes are strictly in freeze order (an SST uploaded early
    /// waits for the older ones). L0 backpressure: with `enforceLimit`, an upload starts only while
    /// `|manifest.l0| + uploads not yet published < L0MaxSsts`; the manifest poller adopts the
    /// compactor's results. Close does not wait (it never loses data, and without a compactor it
    /// would wait forever), so it may exceed the limit.
    let flushAllL0Async (enforceLimit: bool) (ct: CancellationToken) : Task =
        task {
            do! l0FlushLock.WaitAsync(ct)

            try
                let mutable go = true

                while go do
                    let queued, added =
                        lock stateLock (fun () -> frozenQueue.ToArray(), frozenAdded.Task) // oldest first

                    if queued.Length = 0 then
                        go <- false
                    else
                        let started = queued |> Array.filter (fun f -> f.Upload.IsSome)

                        let running =
                            started
                            |> Array.filter (fun f -> not f.Upload.Value.IsCompleted)
                            |> Array.length

                        let mutable room =
                            if enforceLimit && accepting then
                                options.L0MaxSsts - manifest.Manifest.L0.Length - started.Length
                            else
                                Int32.MaxValue

                        let mutable slots = options.L0FlushParallelism - running

                        for fm in queued do
                            if fm.Upload.IsNone && slots > 0 && room > 0 then
                                fm.Upload <- Some(startUpload fm ct)
                                slots <- slots - 1
                                room <- room - 1

                        let head = queued[0]

                        match head.Upload with
                        | Some t when t.IsCompleted ->
                            let! built = t
                            do! publishHeadAsync head built ct
                        | Some headUpload ->
                            // wait for any upload or a new frozen memtable: then publish the head
                            // or start another upload (the head's task is always included: it may
                            // have completed since the check above)
                            let others =
                                queued
                                |> Array.choose (fun f -> f.Upload)
                                |> Array.filter (fun t -> not t.IsCompleted)
                                |> Array.map (fun t -> t :> Task)

                            let! _ = Task.WhenAny(Array.append [| headUpload :> Task; added |] others)
                            ()
                        | None ->
                            // no room in L0: wait for compaction (uploads start in freeze order)
                            checkOpen ()
                            do! Task.Delay(TimeSpan.FromMilliseconds 50.0, time, ct)
            finally
                l0FlushLock.Release() |> ignore
        }

    let l0Loop () : Task =
        backgroundTask {
            let ct = cts.Token

            try
                while not ct.IsCancellationRequested do
                    do! l0Signal.WaitAsync(ct)
                    do! flushAllL0Async true ct
            with
            | :? OperationCanceledException -> ()
            | :? SlateException as e -> fail e
            | e -> fail (SlateException(SlateErrorKind.Internal, "memtable flusher failed: " + e.Message, e))
        }

    let pollLoop () : Task =
        backgroundTask {
            let ct = cts.Token

            try
                while not ct.IsCancellationRequested do
                    do! Task.Delay(options.ManifestPollInterval, time, ct)

                    match! ms.ReadLatestAsync ct with
                    | None -> ()
                    | Some remote when remote.Manifest.WriterEpoch > epoch -> raise (fenced ())
                    | Some remote ->
                        do! manifestLock.WaitAsync(ct)

                        try
                            if remote.Id > manifest.Id then
                                manifest <-
                                    { Id = remote.Id
                                      Manifest = writerMerge manifest.Manifest remote.Manifest }

                                lock stateLock (fun () ->
                                    view <-
                                        { view with
                                            L0 = manifest.Manifest.L0
                                            Compacted = manifest.Manifest.Compacted })
                        finally
                            manifestLock.Release() |> ignore
            with
            | :? OperationCanceledException -> ()
            | :? SlateException as e -> fail e
            | e -> fail (SlateException(SlateErrorKind.Internal, "manifest poller failed: " + e.Message, e))
        }

    let maxSeqFor (o: ReadOpts) : uint64 =
        let mutable m = UInt64.MaxValue

        if o.Durability = Durability.Remote then
            m <- Volatile.Read(&durableSeq)

        if not o.Dirty then
            m <- min m (Volatile.Read(&lastCommitted))

        m

    member internal _.Start() =
        loops <- [ writerLoop (); walLoop (); l0Loop (); pollLoop () ]
        // embedded garbage collector (stopped by Close through cts, which also cuts its pass short)
        loops <-
            loops
            @ Gc.embedded
                ms.ObjectStore
                ms.DbPath
                options.GarbageCollector
                time
                (Logging.create options.LoggerFactory Logging.GcCategory)
                cts.Token

    /// Adds a background service (embedded compactor, GC) stopped by the writer's shutdown token.
    member internal _.AddBackground(start: CancellationToken -> Task) = loops <- loops @ [ start cts.Token ]

    member internal _.Replay(rows: RowEntry list, stamps: (uint64 * int64 * RowEntry list) list, lastWal: uint64) =
        ignore rows
        // stamps: per WAL id, its rows (already filtered to seq > last_l0_seq)
        for (walId, _, walRows) in stamps do
            let mt = view.Memtable

            if not mt.IsEmpty && mt.EstimatedSize >= options.L0SstSizeBytes then
                lock stateLock freezeMemtableLocked

            for r in walRows do
                view.Memtable.Insert r |> ignore

                match r.CreateTs with
                | Some c ->
                    lastTick <- max lastTick c

                    if r.Seq > lastSeq then
                        lock stateLock (fun () -> recordSampleLocked r.Seq c)
                | None -> ()

                lastSeq <- max lastSeq r.Seq

            recentFlushedWalId <- walId

        recentFlushedWalId <- max recentFlushedWalId lastWal
        lastCommitted <- lastSeq
        durableSeq <- lastSeq
        nextWalId <- lastWal + 1UL

        // without a WAL, replayed rows become durable again only through an L0 publish
        if not options.WalEnabled then
            lock stateLock freezeMemtableLocked

    /// The manifest store (admin and tests).
    member _.ManifestStore: ManifestStore = ms

    /// The table store (tests).
    member _.TableStore: TableStore = tables

    /// Latest manifest id this writer knows.
    member _.ManifestId: uint64 = manifest.Id

    /// This writer's epoch.
    member _.WriterEpoch: uint64 = epoch

    /// Highest durable seq.
    member _.DurableSeq: uint64 = Volatile.Read(&durableSeq)

    /// Highest committed seq.
    member _.LastCommittedSeq: uint64 = Volatile.Read(&lastCommitted)

    /// The close reason, when closed or failed.
    member _.CloseReason: CloseReason option =
        match failure with
        | Some e when e.Kind = SlateErrorKind.Closed -> Option.ofNullable e.CloseReason
        | Some _ -> Some CloseReason.Panic
        | None -> if closed then Some CloseReason.Clean else None

    /// Submits a batch; completes when it is in the memtable (visible, not yet durable).
    member this.WriteAsync(ops: WriteOp list, ct: CancellationToken) : Task<WriteResult> =
        this.WriteCheckedAsync(ops, None, ct)

    /// Write sets of recent batches, for transaction conflict checks.
    member _.Conflicts: ConflictTracker = conflicts

    /// `WriteAsync` with a check the writer loop runs right after assigning the batch's seq (a
    /// transaction's conflict check: raising fails the batch without applying it).
    member _.WriteCheckedAsync
        (ops: WriteOp list, check: (uint64 -> unit) option, ct: CancellationToken)
        : Task<WriteResult> =
        checkOpen ()

        if ops.IsEmpty then
            raise (SlateException.Invalid "write batch is empty")

        for op in ops do
            match op with
            | WriteOp.Put(k, v, ttl) ->
                Validate.key k
                Validate.value v
                Validate.ttl ttl
            | WriteOp.Delete k -> Validate.key k
            | WriteOp.Merge(k, v, ttl) ->
                Validate.key k
                Validate.value v
                Validate.ttl ttl

                if options.MergeOperator.IsNone then
                    raise (SlateException.Invalid "merge operator missing")

        let tcs =
            TaskCompletionSource<WriteResult>(TaskCreationOptions.RunContinuationsAsynchronously)

        if
            not accepting
            || not (writes.Writer.TryWrite { Ops = ops; Check = check; Done = tcs })
        then
            checkOpen ()
            raise (SlateException.Closed(CloseReason.Clean, "db is closed"))

        if ct.CanBeCanceled then
            tcs.Task.WaitAsync(ct)
        else
            tcs.Task

    /// Completes when every write up to `seq` is in object storage.
    member _.AwaitDurableAsync(seq: uint64, ct: CancellationToken) : Task =
        task {
            let mutable go = Volatile.Read(&durableSeq) < seq

            while go do
                let t =
                    lock stateLock (fun () ->
                        match failure with
                        | Some e -> raise e
                        | None -> ()

                        if closed then
                            raise (SlateException.Closed(CloseReason.Clean, "db is closed"))

                        durableChanged.Task)

                if Volatile.Read(&durableSeq) >= seq then
                    go <- false
                else
                    if options.FlushOnDurableWait && options.WalEnabled then
                        signal walSignal

                    do! t.WaitAsync(ct)
                    go <- Volatile.Read(&durableSeq) < seq
        }

    /// Flushes the WAL (until durable) or the memtable (to L0, published).
    member this.FlushAsync(kind: FlushKind, ct: CancellationToken) : Task =
        task {
            checkOpen ()

            match kind with
            | FlushKind.Wal ->
                if not options.WalEnabled then
                    raise (SlateException.Invalid "cannot flush the WAL: the WAL is disabled")

                let target = Volatile.Read(&lastCommitted)
                signal walSignal
                do! this.AwaitDurableAsync(target, ct)
            | _ ->
                lock stateLock (fun () ->
                    if options.WalEnabled then
                        freezeWalLocked ()

                    freezeMemtableLocked ())

                if options.WalEnabled then
                    signal walSignal

                // wait until every frozen memtable is published
                let mutable go = true

                while go do
                    let t =
                        lock stateLock (fun () ->
                            if frozenQueue.Count = 0 then
                                None
                            else
                                Some unflushedChanged.Task)

                    match t with
                    | None -> go <- false
                    | Some t ->
                        // a failure recorded before the task was taken pulsed an older task
                        checkOpen ()
                        signal l0Signal
                        do! t.WaitAsync(ct)
                        checkOpen ()
        }

    /// Creates a checkpoint (SPEC §5.13) through the checkpoint-only CAS update: `All` first
    /// flushes the WAL and the memtable to L0; `Durable` waits until every frozen memtable is published.
    member this.CreateCheckpointAsync
        (scope: CheckpointScope, opts: CheckpointOptions, ct: CancellationToken)
        : Task<StoredManifest * Checkpoint> =
        task {
            checkOpen ()

            if scope = CheckpointScope.All then
                do! this.FlushAsync(FlushKind.MemTable, ct)
            else
                while lock stateLock (fun () -> frozenQueue.Count > 0) do
                    checkOpen ()
                    signal l0Signal
                    do! Task.Delay(TimeSpan.FromMilliseconds 10.0, time, ct)

            checkOpen ()
            return! Checkpoints.createAsync ms time random opts ct
        }

    /// Reads the newest visible version of a key (resolved; None when absent or deleted).
    member this.GetAsync(key: byte[], opts: ReadOpts, ct: CancellationToken) : Task<RowEntry option> =
        this.GetAtAsync(key, opts, UInt64.MaxValue, ct)

    /// A snapshot of the current view for a scan (sources are built by the iterator).
    member _.ScanView(opts: ReadOpts, snapshotSeq: uint64 option) : LsmView * uint64 =
        checkOpen ()
        let m = maxSeqFor opts

        let m =
            match snapshotSeq with
            | Some s -> min s m
            | None -> m

        view, m

    /// Same as `GetAsync` but bounded by a snapshot's seq.
    member _.GetAtAsync
        (key: byte[], opts: ReadOpts, snapshotSeq: uint64, ct: CancellationToken)
        : Task<RowEntry option> =
        task {
            checkOpen ()
            Validate.key key
            let maxSeq = min snapshotSeq (maxSeqFor opts)
            let! versions = ReadPath.versionsAsync tables view key maxSeq opts.CacheBlocks ct

            match Merge.resolveVersions options.MergeOperator versions with
            | Ok r -> return r
            | Error(ResolveError.MergeOperatorMissing _) ->
                return raise (SlateException.Invalid "merge operator missing")
        }

    /// The table store and merge operator for iterators.
    member _.Tables: TableStore = tables

    /// The merge operator.
    member _.MergeOperator: MergeOperator option = options.MergeOperator

    /// Raises if closed or failed.
    member _.CheckOpen() : unit = checkOpen ()

    /// Registers a snapshot at the current committed seq.
    member _.RegisterSnapshot() : uint64 =
        checkOpen ()

        lock snapshots (fun () ->
            let s = Volatile.Read(&lastCommitted)

            match snapshots.TryGetValue s with
            | true, n -> snapshots[s] <- n + 1
            | _ -> snapshots[s] <- 1

            s)

    /// Releases a snapshot.
    member _.ReleaseSnapshot(seq: uint64) : unit =
        lock snapshots (fun () ->
            match snapshots.TryGetValue seq with
            | true, 1 -> snapshots.Remove seq |> ignore
            | true, n -> snapshots[seq] <- n - 1
            | _ -> ())

    /// Closes the writer: flushes per `flush` (None = discard what is not durable).
    member this.CloseAsync(flush: FlushKind option, ct: CancellationToken) : Task =
        task {
            checkOpen ()
            accepting <- false
            writes.Writer.TryComplete() |> ignore
            do! loops.Head // the writer loop drains what was submitted

            match flush, failure with
            | Some FlushKind.Wal, None when options.WalEnabled -> do! flushWalNowAsync ct
            | Some FlushKind.MemTable, None ->
                if options.WalEnabled then
                    do! flushWalNowAsync ct

                lock stateLock freezeMemtableLocked
                do! flushAllL0Async false ct
            | _ -> ()

            cts.Cancel()

            for t in loops.Tail do
                try
                    do! t
                with :? OperationCanceledException ->
                    ()

            lock stateLock (fun () ->
                closed <- true
                pulse &durableChanged
                pulse &unflushedChanged)

            match failure with
            | Some e -> raise e
            | None -> log.LogInformation("writer of {DbPath} (epoch {Epoch}) closed", ms.DbPath, epoch)
        }

    interface IAsyncDisposable with
        member this.DisposeAsync() =
            if closed || failure.IsSome then
                ValueTask()
            else
                ValueTask(this.CloseAsync(Some FlushKind.MemTable, CancellationToken.None))

    /// Opens (or creates) the database at `dbPath`, fencing any older writer and replaying the WAL.
    static member OpenAsync(store: IObjectStore, dbPath: string, options: DbOptions, ct: CancellationToken) : Task<Db> =
        backgroundTask {
            DbOptions.validate options
            options.Compactor |> Option.iter (CompactorCheck.validate options.BlockSize)

            // every backend is wrapped in the retrying store (SPEC §2.4)
            let store =
                RetryingObjectStore.ensure
                    options.ObjectStoreMaxRetries
                    options.TimeProvider
                    (defaultArg options.RandomSeed (Random.Shared.Next()))
                    store

            let ms = ManifestStore(store, dbPath)

            let entries (bytes: int64) =
                int (min (int64 Int32.MaxValue) (bytes / int64 options.BlockSize))

            let tables =
                TableStore(store, dbPath, entries options.BlockCacheBytes, entries (options.MetaCacheBytes / 16L))

            let time = options.TimeProvider

            let wrap (f: unit -> Task<'a>) : Task<'a> =
                task {
                    try
                        return! f ()
                    with :? ObjectStoreException as e ->
                        return raise (Failures.ofStore "open" e)
                }

            return!
                wrap (fun () ->
                    task {
                        // 1. load or create
                        let! latest = ms.ReadLatestAsync ct

                        let! m =
                            task {
                                match latest with
                                | Some m -> return m
                                | None ->
                                    let! ok = ms.TryWriteAsync(0UL, Manifest.initial, ct)

                                    if ok then
                                        return
                                            { Id = 1UL
                                              Manifest = Manifest.initial }
                                    else
                                        match! ms.ReadLatestAsync ct with
                                        | Some m -> return m
                                        | None -> return raise (SlateException.Data "failed to find latest manifest")
                            }

                        let check (m: StoredManifest) =
                            if m.Manifest.WalObjectStoreUri.IsSome then
                                raise (
                                    SlateException.Invalid
                                        "WAL store reconfiguration is not supported (separate WAL object store)"
                                )

                            if not m.Manifest.Initialized then
                                raise (SlateException.Data "database is not initialized (unfinished clone)")

                        check m

                        // 2. fence the manifest
                        let started = time.GetTimestamp()
                        let mutable cur = m
                        let mutable epoch = 0UL
                        let mutable fencedManifest = false

                        while not fencedManifest do
                            if time.GetElapsedTime started > options.ManifestUpdateTimeout then
                                raise (SlateException(SlateErrorKind.Unavailable, "timed out fencing the manifest"))

                            let e = cur.Manifest.WriterEpoch + 1UL
                            let next = Manifest.withWriterEpoch e cur.Manifest
                            let! ok = ms.TryWriteAsync(cur.Id, next, ct)

                            if ok then
                                cur <- { Id = cur.Id + 1UL; Manifest = next }
                                epoch <- e
                                fencedManifest <- true
                            else
                                match! ms.ReadLatestAsync ct with
                                | Some r ->
                                    check r
                                    cur <- r
                                | None -> raise (SlateException.Data "failed to find latest manifest")

                        // 3. fence the WAL; with the WAL disabled only when WAL SSTs wait for replay
                        // (a database last written with the WAL enabled): they are replayed and
                        // published to L0, never lost
                        let mutable fenceId = 0UL
                        let! wals = Store.listParsedAsync store dbPath Paths.WalDir ct

                        let maxListed =
                            wals
                            |> List.choose (fun (n, _) ->
                                match n with
                                | ObjectName.Wal id when id > cur.Manifest.ReplayAfterWalId -> Some id
                                | _ -> None)
                            |> List.fold max cur.Manifest.ReplayAfterWalId

                        if options.WalEnabled || maxListed > cur.Manifest.ReplayAfterWalId then
                            let mutable f = 1UL + maxListed
                            let fenceBytes = (Sst.empty (DbOptions.sstOptions options)).Bytes
                            let mutable fencedWal = false

                            while not fencedWal do
                                let! created = tables.TryWriteWalAsync(f, fenceBytes, ct)

                                if created then
                                    fencedWal <- true
                                else
                                    match! ms.ReadLatestAsync ct with
                                    | Some r when r.Manifest.WriterEpoch > epoch ->
                                        raise (SlateException.Closed(CloseReason.Fenced, "detected newer DB client"))
                                    | Some r -> f <- max (f + 1UL) (r.Manifest.ReplayAfterWalId + 1UL)
                                    | None -> raise (SlateException.Data "failed to find latest manifest")

                            fenceId <- f

                        // 4. re-check the epoch
                        let! latest = ms.ReadLatestAsync ct

                        let latest =
                            match latest with
                            | Some l when l.Manifest.WriterEpoch = epoch -> l
                            | Some _ -> raise (SlateException.Closed(CloseReason.Fenced, "detected newer DB client"))
                            | None -> raise (SlateException.Data "failed to find latest manifest")

                        // 5. replay the WAL (replay_after_wal_id, F]
                        tables.Track latest.Manifest // a clone's SSTs in other databases (SPEC §3)
                        let db = new Db(ms, tables, options, epoch, latest)

                        if fenceId > 0UL then
                            let lastL0 = latest.Manifest.LastL0Seq
                            let replayed = ResizeArray()

                            for id in latest.Manifest.ReplayAfterWalId + 1UL .. fenceId do
                                match! tables.TryReadWalAsync(id, ct) with
                                | None ->
                                    raise (
                                        SlateException.Data(
                                            sprintf
                                                "%s is missing inside the WAL replay range"
                                                (Paths.key dbPath (ObjectName.Wal id))
                                        )
                                    )
                                | Some rows -> replayed.Add((id, 0L, rows |> List.filter (fun r -> r.Seq > lastL0)))

                            db.Replay([], List.ofSeq replayed, fenceId)
                        else
                            db.Replay([], [], latest.Manifest.WalIdLastSeen)

                        db.Start()

                        (Logging.create options.LoggerFactory Logging.DbCategory)
                            .LogInformation(
                                "writer of {DbPath} opened (epoch {Epoch}, manifest {ManifestId}, WAL fence {WalId})",
                                dbPath,
                                epoch,
                                latest.Id,
                                fenceId
                            )

                        match options.Compactor with
                        | Some s -> db.AddBackground(CompactorRunner.runEmbeddedAsync store dbPath s options tables)
                        | None -> ()

                        return db
                    })
        }
