/// Checkpoint edits of the manifest (SPEC §5.13): create (optionally copying a source
/// checkpoint), refresh, replace and delete. Every edit goes through the CAS loop with the
/// checkpoint-only merge of SPEC §5.2 (take everything from the latest version, re-apply the delta).
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// Which writes a checkpoint made by the writer covers (SPEC §5.13).
type CheckpointScope =
    /// Flush the WAL and the memtable first: every write made before the call.
    | All = 0
    /// Only what is already durable and frozen; no forced freeze.
    | Durable = 1

/// Options of a new checkpoint.
type CheckpointOptions =
    {
        /// Lifetime; None = never expires.
        Lifetime: TimeSpan option
        /// Copy this checkpoint's manifest id instead of pinning the version being written.
        Source: Guid option
        /// Optional label (not unique).
        Name: string option
    }

/// Checkpoint edits.
[<RequireQualifiedAccess>]
module Checkpoints =
    /// No lifetime, no source, no name.
    let defaultOptions: CheckpointOptions =
        { Lifetime = None
          Source = None
          Name = None }

    /// The fixed bound of admin and reader checkpoint updates.
    let updateTimeout: TimeSpan = TimeSpan.FromSeconds 300.0

    /// The merge of a party that edits checkpoints only: everything from the latest version.
    let checkpointOnlyMerge (_local: Manifest) (remote: Manifest) : Manifest = remote

    /// Unix seconds now, as stored (u32).
    let nowSeconds (time: TimeProvider) : uint32 =
        uint32 (max 0L (min (int64 UInt32.MaxValue) (time.GetUtcNow().ToUnixTimeSeconds())))

    /// The expiry of a checkpoint with this lifetime (None = never). Raises `Invalid` for a
    /// non-positive lifetime or one beyond the u32 seconds of the format.
    let expiry (time: TimeProvider) (lifetime: TimeSpan option) : uint32 option =
        match lifetime with
        | None -> None
        | Some l when l <= TimeSpan.Zero -> raise (SlateException.Invalid "checkpoint lifetime must be positive")
        | Some l ->
            let s = time.GetUtcNow().ToUnixTimeSeconds() + int64 (ceil l.TotalSeconds)

            if s > int64 UInt32.MaxValue then
                raise (SlateException.Invalid "checkpoint lifetime reaches beyond the year 2106")

            Some(uint32 s)

    /// A fresh version-4 checkpoint id.
    let newId (random: Random) : Uuid =
        lock random (fun () -> Uuid.v4 (uint64 (random.NextInt64()) <<< 1) (uint64 (random.NextInt64()) <<< 1))

    /// `Data` "checkpoint missing" naming the id.
    let missing (id: Guid) : SlateException =
        SlateException.Data(sprintf "checkpoint missing: %O" id)

    /// The latest manifest; `Data` ("failed to find latest manifest") when there is none.
    let latestAsync (ms: ManifestStore) (ct: CancellationToken) : Task<StoredManifest> =
        task {
            match! ms.ReadLatestAsync ct with
            | Some m -> return m
            | None ->
                return
                    raise (
                        SlateException.Data(
                            sprintf "failed to find latest manifest in %s/%s" ms.ObjectStore.Describe ms.DbPath
                        )
                    )
        }

    let private runAsync
        (ms: ManifestStore)
        (time: TimeProvider)
        (transition: StoredManifest -> Transition<'r>)
        (ct: CancellationToken)
        : Task<StoredManifest * 'r> =
        task {
            let! latest = latestAsync ms ct
            return! ManifestCas.updateStoredAsync ms latest checkpointOnlyMerge transition updateTimeout time ct
        }

    /// Adds a checkpoint on the latest manifest: it pins the version being written (current + 1),
    /// or the source checkpoint's manifest. `Data` for a missing source or an uninitialized
    /// database. Returns the written manifest and the checkpoint.
    let createAsync
        (ms: ManifestStore)
        (time: TimeProvider)
        (random: Random)
        (options: CheckpointOptions)
        (ct: CancellationToken)
        : Task<StoredManifest * Checkpoint> =
        let id = newId random
        expiry time options.Lifetime |> ignore // validate before any I/O

        runAsync
            ms
            time
            (fun current ->
                let m = current.Manifest

                if not m.Initialized then
                    raise (SlateException.Data "cannot checkpoint an uninitialized database (unfinished clone)")

                let manifestId =
                    match options.Source with
                    | None -> current.Id + 1UL
                    | Some src ->
                        match Manifest.tryFindCheckpoint (Uuid.ofGuid src) m with
                        | Some c -> c.ManifestId
                        | None -> raise (missing src)

                let cp: Checkpoint =
                    { Id = id
                      ManifestId = manifestId
                      ExpireTimeS = expiry time options.Lifetime
                      CreateTimeS = nowSeconds time
                      Name = options.Name }

                Transition.Write(Manifest.addCheckpoint cp m, cp))
            ct

    /// Sets a checkpoint's expiry to now + lifetime (None = never); unknown id → `Data`.
    let refreshAsync
        (ms: ManifestStore)
        (time: TimeProvider)
        (id: Guid)
        (lifetime: TimeSpan option)
        (ct: CancellationToken)
        : Task<Checkpoint> =
        task {
            let expires = expiry time lifetime
            let uid = Uuid.ofGuid id

            let! (_, cp) =
                runAsync
                    ms
                    time
                    (fun current ->
                        match Manifest.tryFindCheckpoint uid current.Manifest with
                        | None -> raise (missing id)
                        | Some c ->
                            let c' = { c with ExpireTimeS = expires }

                            let m =
                                { current.Manifest with
                                    Checkpoints =
                                        current.Manifest.Checkpoints
                                        |> List.map (fun x -> if x.Id = uid then c' else x) }

                            Transition.Write(m, c'))
                    ct

            return cp
        }

    /// Removes a checkpoint; an absent id writes nothing.
    let deleteAsync (ms: ManifestStore) (time: TimeProvider) (id: Guid) (ct: CancellationToken) : Task =
        task {
            let uid = Uuid.ofGuid id

            let! _ =
                runAsync
                    ms
                    time
                    (fun current ->
                        match Manifest.tryFindCheckpoint uid current.Manifest with
                        | None -> Transition.NoChange()
                        | Some _ -> Transition.Write(Manifest.removeCheckpoint uid current.Manifest, ()))
                    ct

            return ()
        }

    /// In one manifest update, removes `old` (when given) and adds a new checkpoint pinning the
    /// version being written. Returns the written manifest and the new checkpoint.
    let replaceAsync
        (ms: ManifestStore)
        (time: TimeProvider)
        (random: Random)
        (old: Uuid option)
        (lifetime: TimeSpan option)
        (ct: CancellationToken)
        : Task<StoredManifest * Checkpoint> =
        let id = newId random
        expiry time lifetime |> ignore // validate before any I/O

        runAsync
            ms
            time
            (fun current ->
                let m =
                    match old with
                    | Some o -> Manifest.removeCheckpoint o current.Manifest
                    | None -> current.Manifest

                let cp: Checkpoint =
                    { Id = id
                      ManifestId = current.Id + 1UL
                      ExpireTimeS = expiry time lifetime
                      CreateTimeS = nowSeconds time
                      Name = None }

                Transition.Write(Manifest.addCheckpoint cp m, cp))
            ct
