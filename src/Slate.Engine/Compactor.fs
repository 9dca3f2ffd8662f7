/// The compactor (SPEC §5.8-§5.11): fencing on the manifest and the compactor state, the
/// planning and job loop, job execution and the commit; embedded in the writer or standalone.
namespace Slate.Engine

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Slate
open Slate.Model

/// A finished (committed or failed) compaction job, as reported to an observer.
type CompactionReport =
    {
        /// Job id.
        JobId: Ulid
        /// Source L0 SSTs, newest first.
        L0Sources: Ulid list
        /// Source sorted runs, highest id first.
        SortedRunSources: uint32 list
        /// Destination sorted run.
        Destination: uint32
        /// None when committed; else why the job failed.
        Error: string option
        /// Estimated input size.
        BytesIn: int64
        /// Bytes of output SSTs uploaded.
        BytesOut: int64
        /// Number of output SSTs.
        OutputSsts: int
        /// L0 SSTs in the manifest after the job.
        L0Count: int
        /// Sorted runs in the manifest after the job.
        SortedRunCount: int
    }

/// Settings validation of the compactor.
[<RequireQualifiedAccess>]
module CompactorCheck =
    /// Raises `Invalid` ("invalid configuration: ...") for compactor settings outside SPEC §7.
    let validate (blockSize: int) (s: CompactorSettings) : unit =
        let fail (m: string) =
            raise (SlateException.Invalid("invalid configuration: compactor " + m))

        if s.PollInterval <= TimeSpan.Zero then
            fail "PollInterval must be positive"

        if s.MaxConcurrentCompactions < 1 then
            fail "MaxConcurrentCompactions must be at least 1"

        if s.MaxSstSize < int64 blockSize then
            fail "MaxSstSize must be at least the block size"

        if s.MinCompactionSources < 2 then
            fail "MinCompactionSources must be at least 2"

        if s.MaxCompactionSources < s.MinCompactionSources then
            fail "MaxCompactionSources must be at least MinCompactionSources"

        if not (s.SizeRatio >= 1.0) then
            fail "SizeRatio must be at least 1.0"

[<AutoOpen>]
module private CompactorText =
    /// The error of a job abandoned because the compactor stopped.
    [<Literal>]
    let cancelledError = "cancelled"

[<NoComparison; NoEquality>]
type private RunningJob =
    { Job: Compaction
      Task: Task<CompactionOutcome> }

/// A fenced compactor of one database. Create with `Compactor.StartAsync`; drive it with
/// `RunAsync` (until cancelled), or step it with `TickAsync` / `DrainAsync`.
[<Sealed>]
type Compactor
    private
    (
        ms: ManifestStore,
        cs: CompactorStateStore,
        tables: TableStore,
        settings: CompactorSettings,
        options: DbOptions,
        epoch: uint64,
        initialManifest: StoredManifest,
        initialStateId: uint64,
        initialState: CompactorState,
        observer: CompactionReport -> unit
    ) =
    let time = options.TimeProvider
    let sstOptions = DbOptions.sstOptions options
    let log = Logging.create options.LoggerFactory Logging.CompactorCategory
    // failed source sets and when the planner may propose them again
    let mutable backoff = CompactionBackoff.empty

    let nowMs () =
        time.GetUtcNow().ToUnixTimeMilliseconds()

    let random =
        match options.RandomSeed with
        // the epoch is unique per compactor: successive compactors with one seed mint different ULIDs
        | Some s -> Random(s ^^^ (int epoch * 0x5BD1E995) ^^^ 0x3C6EF372)
        | None -> Random()

    let planner: SizeTieredOptions =
        { MinSources = settings.MinCompactionSources
          MaxSources = settings.MaxCompactionSources
          SizeRatio = settings.SizeRatio
          MaxConcurrent = settings.MaxConcurrentCompactions }

    let mutable manifest = initialManifest
    let mutable stateId = initialStateId
    let mutable state = initialState
    let running = Dictionary<Ulid, RunningJob>()
    let mutable completed = 0
    let mutable failed = 0
    // during DrainAsync: the source sets that failed in this drain (not proposed again before it
    // ends) and the reports of those failures; None outside a drain
    let mutable drainFailed: Set<CompactionSources> option = None
    let drainFailures = ResizeArray<CompactionReport>()

    let mintUlid () : Ulid =
        lock random (fun () ->
            let hi = uint16 (random.Next(0, 65536))
            let lo = uint64 (random.NextInt64()) ^^^ (uint64 (random.Next()) <<< 63)
            Ulid.create (time.GetUtcNow().ToUnixTimeMilliseconds()) hi lo)

    let mintUuid () : Uuid =
        lock random (fun () -> Uuid.v4 (uint64 (random.NextInt64())) (uint64 (random.NextInt64()) <<< 1))

    let fenced () =
        SlateException.Closed(CloseReason.Fenced, "detected newer compactor")

    let compactorMerge (local: Manifest) (remote: Manifest) : Manifest =
        if remote.CompactorEpoch > epoch then
            raise (fenced ())

        Manifest.mergeForCompactor local remote

    /// Remote Submitted jobs unknown locally (admin submissions) are adopted; local jobs win.
    let adopt (remote: CompactorState) (local: CompactorState) : CompactorState =
        remote.Compactions
        |> List.filter (fun c ->
            c.Status = CompactionStatus.Submitted
            && (CompactorState.tryFind c.Id local).IsNone)
        |> List.fold (fun acc c -> CompactorState.upsert c acc) local

    let timedOut (started: int64) (what: string) =
        if time.GetElapsedTime started > options.ManifestUpdateTimeout then
            raise (SlateException(SlateErrorKind.Unavailable, sprintf "%s timed out" what))

    let reloadStateAsync (ct: CancellationToken) : Task =
        task {
            match! cs.ReadLatestAsync ct with
            | None -> raise (SlateException.Data "compactor state is missing")
            | Some(id, remote) ->
                if remote.CompactorEpoch > epoch then
                    raise (fenced ())

                if id > stateId then
                    stateId <- id
                    state <- adopt remote state
        }

    let reloadManifestAsync (ct: CancellationToken) : Task =
        task {
            match! ms.ReadLatestAsync ct with
            | None -> raise (SlateException.Data "failed to find latest manifest")
            | Some remote ->
                if remote.Manifest.CompactorEpoch > epoch then
                    raise (fenced ())

                if remote.Id > manifest.Id then
                    manifest <-
                        { Id = remote.Id
                          Manifest = compactorMerge manifest.Manifest remote.Manifest }
        }

    /// Writes the local state (trimmed) as the next compactor-state file, adopting remote
    /// submissions on conflict.
    let writeStateAsync (ct: CancellationToken) : Task =
        task {
            let started = time.GetTimestamp()
            let mutable fin = false

            while not fin do
                let next = CompactorState.trim { state with CompactorEpoch = epoch }

                let! ok = cs.TryWriteAsync(stateId, next, ct)

                if ok then
                    stateId <- stateId + 1UL
                    state <- next
                    fin <- true
                else
                    timedOut started "compactor state update"
                    do! reloadStateAsync ct
        }

    /// The manifest CAS loop with the compactor's merge; `f` sees the base id of each attempt.
    let updateManifestAsync (f: StoredManifest -> Result<Manifest, string>) (ct: CancellationToken) =
        task {
            let started = time.GetTimestamp()
            let mutable result = None

            while result.IsNone do
                match f manifest with
                | Error e -> result <- Some(Error e)
                | Ok next ->
                    let! ok = ms.TryWriteAsync(manifest.Id, next, ct)

                    if ok then
                        manifest <-
                            { Id = manifest.Id + 1UL
                              Manifest = next }

                        result <- Some(Ok())
                    else
                        timedOut started "manifest update"
                        do! reloadManifestAsync ct

            return result.Value
        }

    /// SPEC §5.11: a 15-minute checkpoint pinning the version that still references the inputs,
    /// then the finished manifest.
    let commitAsync (job: Compaction) (outcome: CompactionOutcome) (ct: CancellationToken) =
        task {
            do! reloadManifestAsync ct

            match Compaction.finish manifest.Manifest job.Spec outcome.Outputs with
            | Error e -> return Error e
            | Ok _ ->
                let nowS = uint32 (time.GetUtcNow().ToUnixTimeSeconds())
                let cpId = mintUuid ()

                let! _ =
                    updateManifestAsync
                        (fun cur ->
                            let cp: Checkpoint =
                                { Id = cpId
                                  ManifestId = cur.Id
                                  ExpireTimeS = Some(nowS + 900u)
                                  CreateTimeS = nowS
                                  Name = None }

                            Ok(Manifest.addCheckpoint cp cur.Manifest))
                        ct

                return! updateManifestAsync (fun cur -> Compaction.finish cur.Manifest job.Spec outcome.Outputs) ct
        }

    let report (job: Compaction) (err: string option) (outcome: CompactionOutcome option) =
        let m = manifest.Manifest
        let sources = SizeTiered.sourcesOf job.Spec

        match err with
        | Some e ->
            failed <- failed + 1

            match drainFailed with
            | Some s when e <> cancelledError -> drainFailed <- Some(Set.add sources s)
            | _ -> ()

            if e = cancelledError then
                Logging.jobAbandoned log ms.DbPath job.Id job.Spec
            else
                backoff <- CompactionBackoff.recordFailure settings.PollInterval (nowMs ()) sources backoff
                let n = backoff[sources].Failures
                let wait = CompactionBackoff.delay settings.PollInterval n
                Logging.jobFailed log ms.DbPath job.Id job.Spec e wait n
        | None ->
            completed <- completed + 1
            backoff <- Map.remove sources backoff

            match outcome with
            | Some o -> Logging.jobFinished log ms.DbPath job.Id job.Spec o.BytesIn o.BytesOut o.Outputs.Length
            | None -> Logging.jobFinished log ms.DbPath job.Id job.Spec 0L 0L 0

        let r =
            { JobId = job.Id
              L0Sources = job.Spec.L0
              SortedRunSources = job.Spec.SortedRuns
              Destination = job.Spec.Destination
              Error = err
              BytesIn = outcome |> Option.map (fun o -> o.BytesIn) |> Option.defaultValue 0L
              BytesOut = outcome |> Option.map (fun o -> o.BytesOut) |> Option.defaultValue 0L
              OutputSsts = outcome |> Option.map (fun o -> o.Outputs.Length) |> Option.defaultValue 0
              L0Count = m.L0.Length
              SortedRunCount = m.Compacted.Length }

        if err.IsSome && drainFailed.IsSome then
            drainFailures.Add r

        observer r

    let setStatus (job: Compaction) (status: CompactionStatus) (outputs: SstHandle list) =
        state <-
            CompactorState.upsert
                { job with
                    Status = status
                    OutputSsts = outputs }
                state

    /// Commits (or fails) the jobs whose execution ended; true when the state changed.
    let collectFinishedAsync (ct: CancellationToken) : Task<bool> =
        task {
            let finished =
                running.Values
                |> Seq.filter (fun r -> r.Task.IsCompleted)
                |> Seq.sortBy (fun r -> r.Job.Id)
                |> List.ofSeq

            for r in finished do
                running.Remove r.Job.Id |> ignore

                if r.Task.IsCompletedSuccessfully then
                    let outcome = r.Task.Result

                    match! commitAsync r.Job outcome ct with
                    | Ok() ->
                        setStatus r.Job CompactionStatus.Completed outcome.Outputs
                        report r.Job None (Some outcome)
                    | Error e ->
                        setStatus r.Job CompactionStatus.Failed []
                        report r.Job (Some e) (Some outcome)
                elif r.Task.IsCanceled then
                    ct.ThrowIfCancellationRequested()
                    setStatus r.Job CompactionStatus.Failed []
                    report r.Job (Some cancelledError) None
                else
                    let e = r.Task.Exception.GetBaseException()
                    setStatus r.Job CompactionStatus.Failed []
                    report r.Job (Some e.Message) None

            return not finished.IsEmpty
        }

    let launch (job: Compaction) (ct: CancellationToken) =
        let m = manifest.Manifest
        let retention = Compaction.retentionParams m job.Spec options.MergeOperator

        let t =
            Task.Run<CompactionOutcome>(
                (fun () ->
                    CompactionExecutor.runAsync tables m job.Spec retention sstOptions settings.MaxSstSize mintUlid ct),
                ct
            )

        running[job.Id] <- { Job = job; Task = t }

    /// The compactor epoch it fenced.
    member _.Epoch: uint64 = epoch

    /// The latest manifest it knows (after its own merge).
    member _.Manifest: StoredManifest = manifest

    /// The latest compactor state it wrote or adopted, with its id.
    member _.State: uint64 * CompactorState = stateId, state

    /// Jobs committed so far.
    member _.CompletedCount: int = completed

    /// Jobs failed so far.
    member _.FailedCount: int = failed

    /// Jobs executing now.
    member _.RunningCount: int = running.Count

    /// Source sets of failed jobs and when the planner may propose them again.
    member _.Backoff: CompactionBackoff = backoff

    /// One round (SPEC §5.8): refresh (compactions, then manifest), commit finished jobs, plan,
    /// validate and start Submitted jobs.
    member _.TickAsync(ct: CancellationToken) : Task =
        task {
            do! reloadStateAsync ct
            do! reloadManifestAsync ct

            let! changed = collectFinishedAsync ct

            if changed then
                do! writeStateAsync ct

            backoff <- CompactionBackoff.prune manifest.Manifest backoff

            let proposals =
                SizeTiered.proposeExcluding
                    planner
                    manifest.Manifest
                    (CompactorState.active state)
                    (Set.union (CompactionBackoff.excluded (nowMs ()) backoff) (defaultArg drainFailed Set.empty))

            if not proposals.IsEmpty then
                for p in proposals do
                    let job = Compaction.submitted (mintUlid ()) p
                    state <- CompactorState.upsert job state

                    Logging.jobPlanned log ms.DbPath job.Id p manifest.Manifest

                do! writeStateAsync ct

            let toStart = ResizeArray<Compaction>()
            let mutable changed = false

            for job in state.Compactions do
                if
                    job.Status = CompactionStatus.Submitted
                    && running.Count + toStart.Count < settings.MaxConcurrentCompactions
                then
                    changed <- true

                    match Compaction.start manifest.Manifest state.Compactions job with
                    | Ok j ->
                        state <- CompactorState.upsert j state
                        toStart.Add j
                    | Error(j, reason) ->
                        state <- CompactorState.upsert j state
                        report j (Some reason) None

            if changed then
                do! writeStateAsync ct

            for j in toStart do
                launch j ct
        }

    /// Waits until every executing job has ended (they are committed by the next tick).
    member _.WaitRunningAsync() : Task =
        Task.WhenAll(running.Values |> Seq.map (fun r -> r.Task :> Task)).ContinueWith(fun (_: Task) -> ())

    /// The reports of the jobs that failed during the latest `DrainAsync` (in the order they
    /// failed; empty when none did).
    member _.DrainFailures: CompactionReport list = List.ofSeq drainFailures

    /// Ticks until no job is submitted or running (the tree has settled for the planner). A job
    /// that fails does not stop the drain: it is reported as usual (observer, log, `FailedCount`,
    /// `Backoff`), its exact source set is not proposed again until the drain ends, and the other
    /// jobs go on and commit. The failures of the drain are then in `DrainFailures` and logged as
    /// one warning.
    member this.DrainAsync(ct: CancellationToken) : Task =
        task {
            drainFailures.Clear()
            drainFailed <- Some Set.empty

            try
                let mutable fin = false

                while not fin do
                    do! this.TickAsync ct

                    let submitted =
                        state.Compactions
                        |> List.exists (fun c -> c.Status = CompactionStatus.Submitted)

                    if running.Count = 0 && not submitted then
                        fin <- true
                    elif running.Count > 0 then
                        let! _ = Task.WhenAny(running.Values |> Seq.map (fun r -> r.Task :> Task))
                        ()
            finally
                drainFailed <- None

            if drainFailures.Count > 0 then
                log.LogWarning(
                    "drain of {DbPath} ended with {Failed} failed compaction(s): {Failures}",
                    ms.DbPath,
                    drainFailures.Count,
                    String.Join(
                        "; ",
                        drainFailures
                        |> Seq.map (fun r -> sprintf "%s: %s" (Ulid.toString r.JobId) (defaultArg r.Error ""))
                    )
                )
        }

    /// Ticks every `PollInterval` (and whenever a job ends) until `ct` is cancelled; then
    /// abandons running jobs (their outputs are orphans for GC) and completes normally.
    member this.RunAsync(ct: CancellationToken) : Task =
        task {
            try
                try
                    while not ct.IsCancellationRequested do
                        do! this.TickAsync ct

                        let waits =
                            Task.Delay(settings.PollInterval, time, ct)
                            :: [ for r in running.Values -> r.Task :> Task ]

                        let! _ = Task.WhenAny waits
                        ()
                with :? OperationCanceledException when ct.IsCancellationRequested ->
                    ()
            finally
                for r in running.Values do
                    // abandoned: wait for the cancelled execution to unwind
                    r.Task.ContinueWith(fun (_: Task<CompactionOutcome>) -> ()).Wait()

                running.Clear()
                log.LogInformation("compactor of {DbPath} (epoch {Epoch}) stopped", ms.DbPath, epoch)
        }

    /// Fences the manifest and the compactor state (SPEC §5.8) and returns the compactor.
    /// `tables` may be shared with a writer (embedded); None creates one without a block cache.
    static member StartAsync
        (
            store: IObjectStore,
            dbPath: string,
            settings: CompactorSettings,
            options: DbOptions,
            tables: TableStore option,
            observer: CompactionReport -> unit,
            ct: CancellationToken
        ) : Task<Compactor> =
        task {
            CompactorCheck.validate options.BlockSize settings
            let time = options.TimeProvider
            let ms = ManifestStore(store, dbPath)
            let cs = CompactorStateStore(store, dbPath)

            let tables =
                tables |> Option.defaultWith (fun () -> TableStore(store, dbPath, 0, 4096))

            let started = time.GetTimestamp()

            let check () =
                if time.GetElapsedTime started > options.ManifestUpdateTimeout then
                    raise (SlateException(SlateErrorKind.Unavailable, "timed out fencing the compactor"))

            let! latest = ms.ReadLatestAsync ct

            let mutable cur =
                match latest with
                | Some m -> m
                | None -> raise (SlateException.Data "failed to find latest manifest")

            // fence the manifest
            let mutable epoch = 0UL

            while epoch = 0UL do
                check ()
                let e = cur.Manifest.CompactorEpoch + 1UL
                let next = Manifest.withCompactorEpoch e cur.Manifest
                let! ok = ms.TryWriteAsync(cur.Id, next, ct)

                if ok then
                    cur <- { Id = cur.Id + 1UL; Manifest = next }
                    epoch <- e
                else
                    match! ms.ReadLatestAsync ct with
                    | Some r -> cur <- r
                    | None -> raise (SlateException.Data "failed to find latest manifest")

            // load or create the compactor state, then fence it
            let mutable st: (uint64 * CompactorState) option = None

            while st.IsNone do
                check ()

                match! cs.ReadLatestAsync ct with
                | Some s -> st <- Some s
                | None ->
                    let! ok = cs.TryWriteAsync(0UL, CompactorState.initial, ct)

                    if ok then
                        st <- Some(1UL, CompactorState.initial)

            let mutable fencedState = false

            while not fencedState do
                check ()
                let (id, s) = st.Value

                if s.CompactorEpoch >= epoch then
                    raise (SlateException.Closed(CloseReason.Fenced, "detected newer compactor"))

                let next = { s with CompactorEpoch = epoch }
                let! ok = cs.TryWriteAsync(id, next, ct)

                if ok then
                    st <- Some(id + 1UL, next)
                    fencedState <- true
                else
                    match! cs.ReadLatestAsync ct with
                    | Some s -> st <- Some s
                    | None -> raise (SlateException.Data "compactor state is missing")

            let (id, s) = st.Value
            tables.Track cur.Manifest // a clone's SSTs in other databases (SPEC §3)

            let c =
                new Compactor(
                    ms,
                    cs,
                    tables,
                    settings,
                    options,
                    epoch,
                    cur,
                    id,
                    CompactorState.resetRunning s,
                    observer
                )

            // running jobs of the previous compactor go back to Submitted; keep active + latest finished
            do! c.WriteStateAsync ct

            (Logging.create options.LoggerFactory Logging.CompactorCategory)
                .LogInformation("compactor of {DbPath} started: fenced compactor epoch {Epoch}", dbPath, epoch)

            return c
        }

    member internal _.WriteStateAsync(ct: CancellationToken) : Task = writeStateAsync ct
