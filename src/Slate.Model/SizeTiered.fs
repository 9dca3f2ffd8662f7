/// The size-tiered compaction planner (SPEC §5.9): a pure function of the manifest, the active
/// jobs and the options.
namespace Slate.Model

/// Planner options (SlateDB's size-tiered scheduler defaults).
type SizeTieredOptions =
    {
        /// Fewest sources of a proposal (default 4).
        MinSources: int
        /// Most sources of a proposal (default 8).
        MaxSources: int
        /// Size ratio threshold (default 4.0).
        SizeRatio: float
        /// Most active plus proposed jobs (default 4).
        MaxConcurrent: int
    }

/// The sources of a compaction (L0 SSTs newest first, sorted runs highest id first): the key by
/// which the planner is told to leave a source set alone (a recently failed job).
type CompactionSources =
    {
        /// Source L0 SSTs.
        SourceL0: Ulid list
        /// Source sorted runs.
        SourceRuns: uint32 list
    }

/// Planning compactions.
[<RequireQualifiedAccess>]
module SizeTiered =
    /// The defaults of SPEC §5.9.
    let defaultOptions: SizeTieredOptions =
        { MinSources = 4
          MaxSources = 8
          SizeRatio = 4.0
          MaxConcurrent = 4 }

    /// Size estimate of one SST: `index_offset + index_len` (saturating).
    let sstSize (h: SstHandle) : uint64 =
        let s = h.Info.IndexOffset + h.Info.IndexLen
        if s < h.Info.IndexOffset then System.UInt64.MaxValue else s

    /// Size estimate of a sorted run: the sum over its SSTs (saturating).
    let runSize (sr: SortedRun) : uint64 =
        sr.Ssts
        |> List.fold
            (fun acc h ->
                let s = acc + sstSize h
                if s < acc then System.UInt64.MaxValue else s)
            0UL

    /// What the jobs already hold: L0 ids and SR ids (sources and destinations).
    type private Held = { L0: Set<Ulid>; Srs: Set<uint32> }

    let private hold (h: Held) (s: CompactionSpec) : Held =
        { L0 = List.fold (fun acc u -> Set.add u acc) h.L0 s.L0
          Srs = List.fold (fun acc i -> Set.add i acc) (Set.add s.Destination h.Srs) s.SortedRuns }

    let private conflict (h: Held) (l0: Ulid list) (srs: uint32 list) (dst: uint32) : bool =
        l0 |> List.exists h.L0.Contains
        || srs |> List.exists h.Srs.Contains
        || h.Srs.Contains dst

    /// The SR run starting at index `i` of `srs` (sizes given): take while size ≤ ratio × the
    /// smallest taken so far; `check` may stop it before a candidate (given the run including it).
    let private run
        (opts: SizeTieredOptions)
        (srs: (SortedRun * float) array)
        (i: int)
        (check: (SortedRun * float) list -> int -> bool)
        : (SortedRun * float) list =
        let rec go j (taken: (SortedRun * float) list) (minSize: float) =
            if j >= srs.Length then
                List.rev taken
            else
                let (_, size) as cand = srs[j]
                let minSize' = if List.isEmpty taken then size else minSize

                if size <= opts.SizeRatio * minSize' && check (List.rev (cand :: taken)) j then
                    go (j + 1) (cand :: taken) (min minSize' size)
                else
                    List.rev taken

        go i [] 0.0

    let private backpressureOk
        (opts: SizeTieredOptions)
        (srs: (SortedRun * float) array)
        (srcSize: float)
        (next: int option)
        : bool =
        match next with
        | None -> true
        | Some n ->
            let _, nextSize = srs[n]

            nextSize > srcSize * opts.SizeRatio
            || List.length (run opts srs n (fun _ _ -> true)) < opts.MaxSources

    /// The sources of a spec.
    let sourcesOf (s: CompactionSpec) : CompactionSources =
        { SourceL0 = s.L0
          SourceRuns = s.SortedRuns }

    let private pick
        (opts: SizeTieredOptions)
        (m: Manifest)
        (srs: (SortedRun * float) array)
        (held: Held)
        (l0JobActive: bool)
        (excluded: Set<CompactionSources>)
        : CompactionSpec option =
        let isExcluded (l0: Ulid list) (srcRuns: uint32 list) =
            excluded.Contains { SourceL0 = l0; SourceRuns = srcRuns }

        let accept (l0: Ulid list) (srcRuns: uint32 list) (dst: uint32) (srcSize: float) (next: int option) =
            not (conflict held l0 srcRuns dst) && backpressureOk opts srs srcSize next

        let l0Pick =
            if l0JobActive || List.length m.L0 < opts.MinSources then
                None
            else
                let l =
                    let n = List.length m.L0

                    if n > opts.MaxSources then
                        List.skip (n - opts.MaxSources) m.L0
                    else
                        m.L0

                let ids = l |> List.map (fun h -> h.Id)
                let size = l |> List.sumBy (fun h -> float (sstSize h))

                match CompactionSpec.l0Destination m with
                | Some dst when
                    not (isExcluded ids [])
                    && accept ids [] dst size (if srs.Length > 0 then Some 0 else None)
                    ->
                    Some
                        { L0 = ids
                          SortedRuns = []
                          Destination = dst }
                | _ -> None

        match l0Pick with
        | Some p -> Some p
        | None ->
            let rec tryAt i =
                if i >= srs.Length then
                    None
                else
                    let check (withCand: (SortedRun * float) list) (j: int) =
                        let cand, _ = srs[j]
                        let ids = withCand |> List.map (fun (sr, _) -> sr.Id)
                        let size = withCand |> List.sumBy snd
                        accept [] ids cand.Id size (if j + 1 < srs.Length then Some(j + 1) else None)

                    let r = run opts srs i check

                    if List.length r >= opts.MinSources then
                        let r =
                            let n = List.length r

                            if n > opts.MaxSources then
                                List.skip (n - opts.MaxSources) r
                            else
                                r

                        let ids = r |> List.map (fun (sr, _) -> sr.Id)

                        if isExcluded [] ids then
                            tryAt (i + 1)
                        else
                            Some
                                { L0 = []
                                  SortedRuns = ids
                                  Destination = List.last ids }
                    else
                        tryAt (i + 1)

            tryAt 0

    /// Proposes new jobs (SPEC §5.9) given the manifest and the jobs of the compactor state (only
    /// Submitted and Running ones count; their destinations are re-resolved against `m`). Adds
    /// proposals while active + proposed < `MaxConcurrent`. Proposals never share a source or
    /// destination with each other or with active jobs; at most one job holds L0s; no proposal has
    /// exactly the sources of an `excluded` set (the planner then looks further, as if that
    /// candidate did not qualify). Deterministic.
    let proposeExcluding
        (opts: SizeTieredOptions)
        (m: Manifest)
        (jobs: Compaction list)
        (excluded: Set<CompactionSources>)
        : CompactionSpec list =
        let active =
            jobs
            |> List.filter CompactorState.isActive
            |> List.map (fun c -> CompactionSpec.resolveDestination m c.Spec)

        let srs =
            m.Compacted
            |> List.sortByDescending (fun sr -> sr.Id)
            |> List.map (fun sr -> sr, float (runSize sr))
            |> Array.ofList

        let held0 = active |> List.fold hold { L0 = Set.empty; Srs = Set.empty }

        let rec loop (held: Held) (l0Active: bool) (count: int) (acc: CompactionSpec list) =
            if count >= opts.MaxConcurrent then
                List.rev acc
            else
                match pick opts m srs held l0Active excluded with
                | None -> List.rev acc
                | Some p -> loop (hold held p) (l0Active || CompactionSpec.hasL0 p) (count + 1) (p :: acc)

        loop held0 (active |> List.exists CompactionSpec.hasL0) (List.length active) []

    /// `proposeExcluding` with nothing excluded.
    let propose (opts: SizeTieredOptions) (m: Manifest) (jobs: Compaction list) : CompactionSpec list =
        proposeExcluding opts m jobs Set.empty
