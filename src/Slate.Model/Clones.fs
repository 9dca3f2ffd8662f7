/// Clones and external SSTs (SPEC §3, §4.14 `external_dbs`, §5.15): where an SST of a manifest
/// lives, which SSTs a database owns, the initial manifest of a clone, and the checks of an existing
/// clone against the inputs of a (re-)run. Pure.
namespace Slate.Model

/// Why an existing database at the clone path does not fit the clone inputs.
[<RequireQualifiedAccess>]
type CloneMismatch =
    /// The database is not a clone (no `external_dbs`).
    | NotAClone
    /// The clone is attached to other sources (or to the source at another checkpoint).
    | OtherSource of path: string * checkpoint: Uuid option

/// Functions over clone bookkeeping.
[<RequireQualifiedAccess>]
module Clones =
    /// Path of the database that owns SST `id` when `m` lists it in `external_dbs`; None when the
    /// SST belongs to the database of `m` itself.
    let externalPathOf (m: Manifest) (id: Ulid) : string option =
        m.ExternalDbs
        |> List.tryFind (fun e -> List.contains id e.SstIds)
        |> Option.map (fun e -> e.Path)

    /// Every (SST id, owning path) pair of `external_dbs` (the first entry naming an id wins).
    let externalSsts (m: Manifest) : (Ulid * string) list =
        m.ExternalDbs
        |> List.collect (fun e -> e.SstIds |> List.map (fun id -> id, e.Path))
        |> List.distinctBy fst

    /// The object key of SST `id` referenced by `m` of the database at `dbPath`: in the owning
    /// external database's `compacted/` when `external_dbs` lists it, else in `dbPath`'s own.
    let sstKey (dbPath: string) (m: Manifest) (id: Ulid) : string =
        let owner = externalPathOf m id |> Option.defaultValue dbPath
        Paths.key owner (ObjectName.Compacted id)

    /// SST ids referenced by `m` (L0 and sorted runs) that its own database owns, in manifest order
    /// (L0 newest first, then sorted runs), without duplicates.
    let ownedSstIds (m: Manifest) : Ulid list =
        let external = m.ExternalDbs |> List.collect (fun e -> e.SstIds) |> Set.ofList

        Manifest.allSsts m
        |> List.map (fun h -> h.Id)
        |> List.filter (fun id -> not (external.Contains id))
        |> List.distinct

    /// Manifest 1 of a clone of `source` (the source manifest a checkpoint pins) at `sourcePath`,
    /// made from checkpoint `sourceCheckpoint` (SPEC §5.15): the source core with `initialized =
    /// false` and no checkpoints, epochs copied; `external_dbs` = the source's entries (each with a
    /// fresh final checkpoint id from `freshIds`, in order) followed by the source itself with the
    /// SSTs it owns and the last fresh id. `freshIds` needs `source.ExternalDbs.Length + 1` ids.
    let initialManifest
        (source: Manifest)
        (sourcePath: string)
        (sourceCheckpoint: Uuid)
        (freshIds: Uuid list)
        : Manifest =
        let n = source.ExternalDbs.Length

        if freshIds.Length <> n + 1 then
            invalidArg "freshIds" (sprintf "a clone of a manifest with %d external dbs needs %d fresh ids" n (n + 1))

        let inherited =
            List.zip source.ExternalDbs (List.take n freshIds)
            |> List.map (fun (e, id) -> { e with FinalCheckpointId = Some id })

        let own =
            { Path = sourcePath
              SourceCheckpointId = sourceCheckpoint
              FinalCheckpointId = Some(List.last freshIds)
              SstIds = ownedSstIds source }

        { source with
            Initialized = false
            Checkpoints = []
            ExternalDbs = inherited @ [ own ] }

    /// Checks that an existing manifest at the clone path belongs to a clone of `sourcePath` (at
    /// `checkpoint` when one is given): Ok with the matching entry, else the mismatch.
    let checkAttached
        (existing: Manifest)
        (sourcePath: string)
        (checkpoint: Uuid option)
        : Result<ExternalDb, CloneMismatch> =
        if existing.ExternalDbs.IsEmpty then
            Error CloneMismatch.NotAClone
        else
            existing.ExternalDbs
            |> List.tryFind (fun e ->
                Paths.normalizeDbPath e.Path = Paths.normalizeDbPath sourcePath
                && (match checkpoint with
                    | Some c -> e.SourceCheckpointId = c
                    | None -> true))
            |> function
                | Some e -> Ok e
                | None -> Error(CloneMismatch.OtherSource(sourcePath, checkpoint))

    /// The WAL ids a clone copies from the source manifest it was made from:
    /// `(replay_after_wal_id, wal_id_last_seen]`.
    let walIdsToCopy (source: Manifest) : uint64 list =
        if source.WalIdLastSeen > source.ReplayAfterWalId then
            [ source.ReplayAfterWalId + 1UL .. source.WalIdLastSeen ]
        else
            []
