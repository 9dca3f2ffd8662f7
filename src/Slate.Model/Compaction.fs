/// Compaction jobs against the manifest (SPEC §5.8, §5.10, §5.11): validation before a job runs,
/// its retention parameters, its inputs, the commit transition and job-status transitions.
namespace Slate.Model

/// Functions over compaction jobs.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Compaction =
    /// A new Submitted job with no outputs.
    let submitted (id: Ulid) (spec: CompactionSpec) : Compaction =
        { Id = id
          Spec = spec
          Status = CompactionStatus.Submitted
          OutputSsts = [] }

    /// The logical source order of a manifest: L0 newest → oldest, then SRs highest → lowest id.
    type private Source =
        | L0Src of Ulid
        | SrSrc of uint32

    let private logicalOrder (m: Manifest) : Source list =
        (m.L0 |> List.map (fun h -> L0Src h.Id))
        @ (m.Compacted
           |> List.sortByDescending (fun sr -> sr.Id)
           |> List.map (fun sr -> SrSrc sr.Id))

    let private sources (s: CompactionSpec) : Source list =
        (s.L0 |> List.map L0Src) @ (s.SortedRuns |> List.map SrSrc)

    let private describeSource (s: Source) =
        match s with
        | L0Src u -> sprintf "L0 %O" u
        | SrSrc i -> sprintf "SR %d" i

    /// The first source of `s` missing from `m`, if any.
    let private missingSource (m: Manifest) (s: CompactionSpec) : Source option =
        let present = logicalOrder m |> Set.ofList
        sources s |> List.tryFind (fun x -> not (present.Contains x))

    let private isContiguous (whole: Source list) (part: Source list) : bool =
        match part with
        | [] -> true
        | first :: _ ->
            match List.tryFindIndex ((=) first) whole with
            | None -> false
            | Some i ->
                let n = List.length part
                List.length whole - i >= n && List.take n (List.skip i whole) = part

    /// Checks the shape of a spec against the manifest alone (SPEC §5.8): non-empty sources that
    /// all exist, consecutive in the logical order and in that order, L0 sources including the
    /// oldest L0, destination = lowest source SR id, or for an L0-only job above every SR id.
    let validateSpec (m: Manifest) (s: CompactionSpec) : Result<unit, string> =
        let srcs = sources s

        if List.isEmpty srcs then
            Error "the job has no sources"
        else
            match missingSource m s with
            | Some x -> Error(sprintf "source %s is not in the manifest" (describeSource x))
            | None ->
                if not (isContiguous (logicalOrder m) srcs) then
                    Error "sources are not consecutive (L0 newest to oldest, then SRs highest to lowest id)"
                elif CompactionSpec.hasL0 s && (List.last m.L0).Id <> List.last s.L0 then
                    Error "L0 sources do not include the oldest L0"
                else
                    match CompactionSpec.lowestSortedRun s with
                    | Some low when s.Destination <> low ->
                        Error(sprintf "destination %d is not the lowest source sorted run %d" s.Destination low)
                    | Some _ -> Ok()
                    | None ->
                        if m.Compacted |> List.exists (fun sr -> sr.Id >= s.Destination) then
                            Error(
                                sprintf "L0-only destination %d is not above every existing sorted run id" s.Destination
                            )
                        else
                            Ok()

    /// Validation of a job before it runs (SPEC §5.8): `validateSpec` plus no other active job
    /// (of `jobs`, the job itself excluded by id) sharing a source or the destination, and at most
    /// one Running L0 job. The caller resolves L0-only destinations first
    /// (`CompactionSpec.resolveDestination`).
    let validate (m: Manifest) (jobs: Compaction list) (job: Compaction) : Result<unit, string> =
        validateSpec m job.Spec
        |> Result.bind (fun () ->
            let others =
                jobs |> List.filter (fun c -> c.Id <> job.Id && CompactorState.isActive c)

            let mine = job.Spec
            let myL0 = Set.ofList mine.L0
            let mySr = Set.add mine.Destination (Set.ofList mine.SortedRuns)

            let clash =
                others
                |> List.tryFind (fun o ->
                    let spec = CompactionSpec.resolveDestination m o.Spec

                    spec.L0 |> List.exists myL0.Contains
                    || spec.SortedRuns |> List.exists mySr.Contains
                    || mySr.Contains spec.Destination)

            match clash with
            | Some o -> Error(sprintf "job %O already uses a source or the destination" o.Id)
            | None ->
                if
                    CompactionSpec.hasL0 mine
                    && others
                       |> List.exists (fun o -> o.Status = CompactionStatus.Running && CompactionSpec.hasL0 o.Spec)
                then
                    Error "another L0 compaction is running"
                else
                    Ok())

    /// `is_last_run` of SPEC §5.10: no SRs exist, or the destination is the lowest existing SR id
    /// (an L0-only job is the last run only when there are no SRs).
    let isLastRun (m: Manifest) (s: CompactionSpec) : bool =
        match m.Compacted with
        | [] -> true
        | srs -> s.Destination = (srs |> List.map (fun sr -> sr.Id) |> List.min)

    /// Retention parameters taken from the manifest when the job starts (SPEC §5.10).
    let retentionParams (m: Manifest) (s: CompactionSpec) (mergeOp: MergeOperator option) : RetentionParams =
        { RetentionMinSeq = m.RecentSnapshotMinSeq
          Clock = m.LastL0ClockTick
          IsLastRun = isLastRun m s
          MergeOperator = mergeOp }

    /// The input SSTs of a job in merge precedence order: one list per source (an L0 SST alone,
    /// then each SR's SSTs in key order), L0 newest first, then SRs highest id first.
    let inputs (m: Manifest) (s: CompactionSpec) : Result<SstHandle list list, string> =
        match missingSource m s with
        | Some x -> Error(sprintf "source %s is not in the manifest" (describeSource x))
        | None ->
            let l0 = s.L0 |> List.map (fun id -> [ m.L0 |> List.find (fun h -> h.Id = id) ])

            let srs =
                s.SortedRuns
                |> List.map (fun id -> (m.Compacted |> List.find (fun sr -> sr.Id = id)).Ssts)

            Ok(l0 @ srs)

    /// Commits a finished job to the local manifest view (SPEC §5.11): every source must still be
    /// present (so committing the same job twice fails); removes the source L0s and SRs, inserts
    /// the output SR with id `Destination` keeping ids descending (none when `outputs` is empty),
    /// and sets `l0_last_compacted` to the first (newest) source L0 when there is one. Refuses a
    /// destination that is an existing SR but not a source.
    let finish (m: Manifest) (s: CompactionSpec) (outputs: SstHandle list) : Result<Manifest, string> =
        match missingSource m s with
        | Some x -> Error(sprintf "cannot commit: source %s is gone (already committed?)" (describeSource x))
        | None when List.isEmpty s.L0 && List.isEmpty s.SortedRuns -> Error "cannot commit a job without sources"
        | None ->
            let srcSr = Set.ofList s.SortedRuns

            if
                not (srcSr.Contains s.Destination)
                && m.Compacted |> List.exists (fun sr -> sr.Id = s.Destination)
            then
                Error(sprintf "cannot commit: destination %d is an existing sorted run but not a source" s.Destination)
            else
                let srcL0 = Set.ofList s.L0
                let l0 = m.L0 |> List.filter (fun h -> not (srcL0.Contains h.Id))
                let kept = m.Compacted |> List.filter (fun sr -> not (srcSr.Contains sr.Id))

                let compacted =
                    if List.isEmpty outputs then
                        kept
                    else
                        { Id = s.Destination; Ssts = outputs } :: kept
                        |> List.sortByDescending (fun sr -> sr.Id)

                Ok
                    { m with
                        L0 = l0
                        Compacted = compacted
                        L0LastCompacted =
                            match s.L0 with
                            | newest :: _ -> Some newest
                            | [] -> m.L0LastCompacted }

    /// Moves a job to another status. Allowed: Submitted → Running | Failed; Running → Completed |
    /// Failed | Submitted (reset by a restarting compactor). Anything else is an error.
    let transition (target: CompactionStatus) (job: Compaction) : Result<Compaction, string> =
        match job.Status, target with
        | CompactionStatus.Submitted, CompactionStatus.Running
        | CompactionStatus.Submitted, CompactionStatus.Failed
        | CompactionStatus.Running, CompactionStatus.Completed
        | CompactionStatus.Running, CompactionStatus.Failed
        | CompactionStatus.Running, CompactionStatus.Submitted -> Ok { job with Status = target }
        | from, _ -> Error(sprintf "job %O cannot go from %A to %A" job.Id from target)

    /// Starts a Submitted job: validates it against `m` and the other jobs (destination resolved
    /// first) and returns it Running, or Failed with the reason.
    let start (m: Manifest) (jobs: Compaction list) (job: Compaction) : Result<Compaction, Compaction * string> =
        if job.Status <> CompactionStatus.Submitted then
            Error(job, sprintf "job %O is %A, not Submitted" job.Id job.Status)
        else
            let job =
                { job with
                    Spec = CompactionSpec.resolveDestination m job.Spec }

            match validate m jobs job with
            | Ok() ->
                Ok
                    { job with
                        Status = CompactionStatus.Running }
            | Error reason ->
                Error(
                    { job with
                        Status = CompactionStatus.Failed },
                    reason
                )

    /// Marks a Running job Completed with its outputs.
    let complete (outputs: SstHandle list) (job: Compaction) : Result<Compaction, string> =
        transition CompactionStatus.Completed job
        |> Result.map (fun j -> { j with OutputSsts = outputs })
