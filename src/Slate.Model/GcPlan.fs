/// Garbage-collection planning (SPEC §5.12, §4.18, §9 invariants 30-33): given listings, the
/// latest manifest, the manifests its checkpoints pin and the compactor state, decide what may be
/// deleted. Pure: the caller lists, reads, advances boundaries and deletes.
namespace Slate.Model

/// One listed object.
type GcObject =
    {
        /// Parsed name (objects of another kind than the list's are ignored).
        Name: ObjectName
        /// Size in bytes.
        Size: uint64
        /// Last-modified time, Unix ms.
        LastModifiedMs: int64
    }

/// What the planner sees.
type GcInput =
    {
        /// The current time, Unix ms.
        NowMs: int64
        /// Objects younger than this (ms) are never deleted.
        MinAgeMs: int64
        /// The latest manifest and its id.
        Latest: uint64 * Manifest
        /// The manifests named by the latest manifest's checkpoints, as read (id, manifest). A
        /// checkpointed id missing here (unreadable) makes WAL and compacted collection skip.
        Checkpointed: (uint64 * Manifest) list
        /// Listing of `manifest/`.
        Manifests: GcObject list
        /// Listing of `wal/`.
        Wal: GcObject list
        /// Listing of `compacted/`.
        Compacted: GcObject list
        /// Listing of `compactions/`.
        Compactions: GcObject list
        /// The latest compactor state, read BEFORE the manifest; None when missing or unreadable
        /// (compacted collection is then skipped).
        CompactorState: CompactorState option
        /// WAL ids the caller found to be fences (no `first_entry`); size-0 objects always are.
        WalFenceIds: Set<uint64>
        /// Whether fences may be deleted.
        WalFences: bool
    }

/// What to delete, in order: checkpoint expiry, boundaries, then deletes.
type GcDecision =
    {
        /// Manifest ids to delete (after advancing the manifest boundary).
        DeleteManifests: uint64 list
        /// WAL ids to delete.
        DeleteWal: uint64 list
        /// Compacted SSTs to delete.
        DeleteCompacted: Ulid list
        /// Compactor-state ids to delete (after advancing the compactions boundary).
        DeleteCompactions: uint64 list
        /// The manifest boundary to ensure before deleting (largest id deleted).
        ManifestBoundary: uint64 option
        /// The compactions boundary to ensure before deleting.
        CompactionsBoundary: uint64 option
        /// Checkpoints of the latest manifest with `expire_time ≤ now`, for the checkpoint-only
        /// update that precedes directory tasks. This decision still treats them as live.
        ExpiredCheckpoints: Uuid list
        /// The compacted-SST cutoff (Unix ms) when compacted collection ran.
        CompactedCutoffMs: int64 option
        /// Why a directory task was skipped (for logging).
        Notes: string list
    }

/// The GC planner.
[<RequireQualifiedAccess>]
module GcPlan =
    let private oldEnough (i: GcInput) (o: GcObject) = i.NowMs - o.LastModifiedMs > i.MinAgeMs

    /// Checkpoints of `m` expired at `nowMs` (`expire_time_s ≤ now` in whole seconds).
    let expiredCheckpoints (nowMs: int64) (m: Manifest) : Uuid list =
        let nowS = nowMs / 1000L

        m.Checkpoints
        |> List.filter (fun c ->
            match c.ExpireTimeS with
            | Some e -> int64 e <= nowS
            | None -> false)
        |> List.map (fun c -> c.Id)

    /// The compacted cutoff of SPEC §5.12: `min(now − min_age, L, N)`; None when the compactor
    /// state is unavailable.
    let compactedCutoff (i: GcInput) : int64 option =
        match i.CompactorState with
        | None -> None
        | Some st ->
            let l =
                match st.Compactions with
                | [] -> 0L
                | jobs -> jobs |> List.map (fun c -> Ulid.timestampMs c.Id) |> List.min

            let latest = snd i.Latest

            let n =
                match latest.L0, latest.L0LastCompacted with
                | (_ :: _ as l0), _ -> l0 |> List.map (fun h -> Ulid.timestampMs h.Id) |> List.max
                | [], Some u -> Ulid.timestampMs u
                | [], None -> 0L

            Some(min (i.NowMs - i.MinAgeMs) (min l n))

    let private ids (pick: ObjectName -> 'a option) (objs: GcObject list) : ('a * GcObject) list =
        objs |> List.choose (fun o -> pick o.Name |> Option.map (fun x -> x, o))

    /// The WAL ids that pass every rule except the fence rule (the caller may read their
    /// `SsTableInfo` to fill `WalFenceIds`); empty when some checkpointed manifest is missing.
    let walCandidates (i: GcInput) : uint64 list =
        let latestId, latest = i.Latest
        let pinned = latest.Checkpoints |> List.map (fun c -> c.ManifestId) |> List.distinct
        let known = i.Checkpointed |> List.map fst |> Set.ofList |> Set.add latestId

        if pinned |> List.exists (known.Contains >> not) then
            []
        else
            let active = latest :: (i.Checkpointed |> List.map snd)

            i.Wal
            |> ids (function
                | ObjectName.Wal id -> Some id
                | _ -> None)
            |> List.filter (fun (id, o) ->
                id < latest.ReplayAfterWalId
                && oldEnough i o
                && active
                   |> List.forall (fun m -> not (m.ReplayAfterWalId < id && id < m.WalIdLastSeen + 1UL)))
            |> List.map fst
            |> List.distinct
            |> List.sort

    /// Plans one GC round (SPEC §5.12).
    /// - manifests: ids below the latest, not pinned by a checkpoint of the latest, older than
    ///   min_age;
    /// - compactor states: ids below the largest listed id, older than min_age;
    /// - WAL: `walCandidates` minus fences (size 0 or in `WalFenceIds`) unless `WalFences`;
    /// - compacted: ULID timestamp < cutoff, older than min_age by last-modified too, referenced
    ///   (L0 or SR) by no active manifest; skipped without compactor state or when a checkpointed
    ///   manifest is missing from `Checkpointed`.
    /// Boundaries are the largest id deleted in their namespace.
    let plan (i: GcInput) : GcDecision =
        let latestId, latest = i.Latest
        let pinned = latest.Checkpoints |> List.map (fun c -> c.ManifestId) |> Set.ofList
        let known = i.Checkpointed |> List.map fst |> Set.ofList |> Set.add latestId
        let missing = pinned |> Set.filter (known.Contains >> not)
        let notes = ResizeArray<string>()

        if not missing.IsEmpty then
            notes.Add(
                sprintf
                    "checkpointed manifest(s) %s unreadable: WAL and compacted collection skipped"
                    (missing |> Seq.map string |> String.concat ", ")
            )

        let manifests =
            i.Manifests
            |> ids (function
                | ObjectName.Manifest id -> Some id
                | _ -> None)
            |> List.filter (fun (id, o) -> id < latestId && not (pinned.Contains id) && oldEnough i o)
            |> List.map fst
            |> List.distinct
            |> List.sort

        let compactionsListed =
            i.Compactions
            |> ids (function
                | ObjectName.Compactions id -> Some id
                | _ -> None)

        let compactions =
            match compactionsListed with
            | [] -> []
            | listed ->
                let latestC = listed |> List.map fst |> List.max

                listed
                |> List.filter (fun (id, o) -> id < latestC && oldEnough i o)
                |> List.map fst
                |> List.distinct
                |> List.sort

        let fence =
            i.Wal
            |> ids (function
                | ObjectName.Wal id -> Some id
                | _ -> None)
            |> List.filter (fun (id, o) -> o.Size = 0UL || i.WalFenceIds.Contains id)
            |> List.map fst
            |> Set.ofList

        let wal =
            walCandidates i
            |> List.filter (fun id -> i.WalFences || not (fence.Contains id))

        let cutoff = if missing.IsEmpty then compactedCutoff i else None

        if i.CompactorState.IsNone then
            notes.Add "compactor state unavailable: compacted collection skipped"

        let compacted =
            match cutoff with
            | None -> []
            | Some cut ->
                // ids a clone's manifest lists in `external_dbs` belong to other databases: never
                // candidates here, even if an object of that name were listed (SPEC §5.15)
                let referenced =
                    latest :: (i.Checkpointed |> List.map snd)
                    |> List.collect (fun m ->
                        (Manifest.allSsts m |> List.map (fun h -> h.Id))
                        @ (m.ExternalDbs |> List.collect (fun e -> e.SstIds)))
                    |> Set.ofList

                i.Compacted
                |> ids (function
                    | ObjectName.Compacted u -> Some u
                    | _ -> None)
                |> List.filter (fun (u, o) -> Ulid.timestampMs u < cut && oldEnough i o && not (referenced.Contains u))
                |> List.map fst
                |> List.distinct
                |> List.sort

        let maxOf (xs: uint64 list) =
            if List.isEmpty xs then None else Some(List.max xs)

        { DeleteManifests = manifests
          DeleteWal = wal
          DeleteCompacted = compacted
          DeleteCompactions = compactions
          ManifestBoundary = maxOf manifests
          CompactionsBoundary = maxOf compactions
          ExpiredCheckpoints = expiredCheckpoints i.NowMs latest
          CompactedCutoffMs = cutoff
          Notes = List.ofSeq notes }
