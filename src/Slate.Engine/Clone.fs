/// Creating a clone (SPEC §5.15): a new database whose manifest 1 references the source's SSTs in
/// place (`external_dbs`), pinned in every external database by a non-expiring checkpoint, with
/// the source's WAL tail copied. Each step is idempotent, so re-running an interrupted clone with
/// the same inputs finishes it.
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// Clone creation.
[<RequireQualifiedAccess>]
module Clone =
    /// Lifetime of the checkpoint pinning the source when no checkpoint is given (SPEC §7).
    let pinLifetime: TimeSpan = TimeSpan.FromMinutes 5.0

    let private noManifest (store: IObjectStore) (path: string) =
        SlateException.Data(sprintf "failed to find latest manifest in %s/%s" store.Describe path)

    /// The latest manifest of an initialized database: `Data` when it has none or is an
    /// unfinished clone.
    let private initializedAsync (ms: ManifestStore) (ct: CancellationToken) : Task<StoredManifest> =
        task {
            match! ms.ReadLatestAsync ct with
            | None -> return raise (noManifest ms.ObjectStore ms.DbPath)
            | Some m when not m.Manifest.Initialized ->
                return
                    raise (
                        SlateException.Data(
                            sprintf "%s is not initialized (an unfinished clone): cannot clone it" ms.DbPath
                        )
                    )
            | Some m -> return m
        }

    let private mismatch (clonePath: string) (m: CloneMismatch) : SlateException =
        match m with
        | CloneMismatch.NotAClone ->
            SlateException.Invalid(sprintf "a database that is not a clone already exists at %s" clonePath)
        | CloneMismatch.OtherSource(path, cp) ->
            SlateException.Invalid(
                sprintf
                    "a database already exists at %s, but it is not a clone of %s at checkpoint %s"
                    clonePath
                    path
                    (match cp with
                     | Some c -> Uuid.toString c
                     | None -> "<any>")
            )

    /// Step 1: the checkpoint of the source the clone is made from (the given one, else a new
    /// 5-minute one on the latest manifest) and the manifest it pins.
    let private pinSourceAsync
        (sourceMs: ManifestStore)
        (checkpoint: Guid option)
        (time: TimeProvider)
        (random: Random)
        (ct: CancellationToken)
        : Task<Checkpoint * Manifest> =
        task {
            let! latest = initializedAsync sourceMs ct

            if latest.Manifest.WalObjectStoreUri.IsSome then
                raise (SlateException.Invalid(sprintf "%s uses a separate WAL store: cannot clone it" sourceMs.DbPath))

            let! cp =
                task {
                    match checkpoint with
                    | Some g ->
                        match Manifest.tryFindCheckpoint (Uuid.ofGuid g) latest.Manifest with
                        | Some c -> return c
                        | None -> return raise (Checkpoints.missing g)
                    | None ->
                        let options =
                            { Checkpoints.defaultOptions with
                                Lifetime = Some pinLifetime }

                        let! (_, c) = Checkpoints.createAsync sourceMs time random options ct
                        return c
                }

            match! sourceMs.ReadAsync(cp.ManifestId, ct) with
            | Some m -> return cp, m.Manifest
            | None ->
                return
                    raise (
                        SlateException.Data(
                            sprintf
                                "manifest %d of checkpoint %s of %s is missing"
                                cp.ManifestId
                                (Uuid.toString cp.Id)
                                sourceMs.DbPath
                        )
                    )
        }

    /// Step 3 for one external database: a non-expiring checkpoint `final` copying the manifest id
    /// of `source` (or, when that one is gone, of `fallback`), unless `final` is already there.
    let private ensureFinalAsync
        (ms: ManifestStore)
        (final: Uuid)
        (source: Uuid)
        (fallback: Uuid option)
        (time: TimeProvider)
        (ct: CancellationToken)
        : Task =
        task {
            let! latest = initializedAsync ms ct

            let transition (current: StoredManifest) : Transition<unit> =
                let m = current.Manifest

                if (Manifest.tryFindCheckpoint final m).IsSome then
                    Transition.NoChange()
                else
                    let pinned =
                        match Manifest.tryFindCheckpoint source m with
                        | Some c -> Some c
                        | None -> fallback |> Option.bind (fun f -> Manifest.tryFindCheckpoint f m)

                    match pinned with
                    | None ->
                        raise (
                            SlateException.Data(
                                sprintf
                                    "checkpoint missing: %s in %s (source of a clone)"
                                    (Uuid.toString source)
                                    ms.DbPath
                            )
                        )
                    | Some c ->
                        let cp: Checkpoint =
                            { Id = final
                              ManifestId = c.ManifestId
                              ExpireTimeS = None
                              CreateTimeS = Checkpoints.nowSeconds time
                              Name = None }

                        Transition.Write(Manifest.addCheckpoint cp m, ())

            let! _ =
                ManifestCas.updateStoredAsync
                    ms
                    latest
                    Checkpoints.checkpointOnlyMerge
                    transition
                    Checkpoints.updateTimeout
                    time
                    ct

            return ()
        }

    /// Step 4: copies WAL SST `id` of the source into the clone (create-if-absent; an existing
    /// copy must be identical).
    let private copyWalAsync
        (store: IObjectStore)
        (sourcePath: string)
        (clonePath: string)
        (id: uint64)
        (ct: CancellationToken)
        : Task =
        task {
            let src = Paths.key sourcePath (ObjectName.Wal id)
            let dst = Paths.key clonePath (ObjectName.Wal id)

            match! Store.tryGetAsync store src ct with
            | None -> raise (SlateException.Data(sprintf "%s is missing inside the WAL range the clone copies" src))
            | Some r ->
                let! created = Store.tryCreateAsync store dst r.Data ct

                if not created then
                    match! Store.tryGetAsync store dst ct with
                    | Some existing when existing.Data.AsSpan().SequenceEqual(ReadOnlySpan r.Data) -> ()
                    | Some _ -> raise (SlateException.Data(sprintf "%s exists and differs from its source %s" dst src))
                    | None -> raise (SlateException.Data(sprintf "%s vanished while copying the WAL" dst))
        }

    /// Makes (or finishes) the clone at `clonePath` of the database at `sourcePath`, from
    /// `checkpoint` (a new 5-minute checkpoint of the latest source manifest when None). `Invalid`:
    /// same path, or a different database already at `clonePath`; `Data`: no source manifest,
    /// unknown checkpoint, uninitialized source. Returns the clone's initialized manifest.
    let createAsync
        (store: IObjectStore)
        (clonePath: string)
        (sourcePath: string)
        (checkpoint: Guid option)
        (time: TimeProvider)
        (random: Random)
        (ct: CancellationToken)
        : Task<StoredManifest> =
        task {
            if isNull sourcePath then
                nullArg "sourcePath"

            let clonePath = Paths.normalizeDbPath clonePath
            let sourcePath = Paths.normalizeDbPath sourcePath

            if clonePath = sourcePath then
                raise (
                    SlateException.Invalid(
                        sprintf "the source path '%s' must differ from the clone's path '%s'" sourcePath clonePath
                    )
                )

            let cloneMs = ManifestStore(store, clonePath)
            let sourceMs = ManifestStore(store, sourcePath)
            let wanted = checkpoint |> Option.map Uuid.ofGuid

            let attached (m: Manifest) =
                match Clones.checkAttached m sourcePath wanted with
                | Ok e -> e
                | Error e -> raise (mismatch clonePath e)

            // 1-2. pin the source and write the clone's manifest 1, unless a run got that far
            let! existing = cloneMs.ReadLatestAsync ct

            let! cloneManifest =
                task {
                    match existing with
                    | Some m ->
                        let e = attached m.Manifest

                        // an unfinished clone continues only from its direct source (the last
                        // entry): that is where its WAL tail comes from
                        if
                            not m.Manifest.Initialized
                            && Paths.normalizeDbPath (List.last m.Manifest.ExternalDbs).Path
                               <> Paths.normalizeDbPath e.Path
                        then
                            raise (mismatch clonePath (CloneMismatch.OtherSource(sourcePath, wanted)))

                        return m
                    | None ->
                        let! (cp, pinned) = pinSourceAsync sourceMs checkpoint time random ct

                        let ids =
                            List.init (pinned.ExternalDbs.Length + 1) (fun _ -> Checkpoints.newId random)

                        let m = Clones.initialManifest pinned sourcePath cp.Id ids
                        let! ok = cloneMs.TryWriteAsync(0UL, m, ct)

                        if ok then
                            return { Id = 1UL; Manifest = m }
                        else
                            // another run created it meanwhile: continue with what it wrote
                            match! cloneMs.ReadLatestAsync ct with
                            | Some m ->
                                attached m.Manifest |> ignore
                                return m
                            | None -> return raise (noManifest store clonePath)
                }

            let m = cloneManifest.Manifest

            // 3. a non-expiring final checkpoint in every external database
            let! fallbacks =
                task {
                    if m.ExternalDbs.Length <= 1 then
                        return Map.empty
                    else
                        // a grandparent's source checkpoint may have expired since the source was
                        // made; the source's own final checkpoint there pins the same version
                        match! sourceMs.ReadLatestAsync ct with
                        | Some s ->
                            return
                                s.Manifest.ExternalDbs
                                |> List.choose (fun e ->
                                    e.FinalCheckpointId |> Option.map (fun f -> Paths.normalizeDbPath e.Path, f))
                                |> Map.ofList
                        | None -> return Map.empty
                }

            if m.Initialized then
                for e in m.ExternalDbs do
                    match e.FinalCheckpointId with
                    | None -> ()
                    | Some f ->
                        let! latest = initializedAsync (ManifestStore(store, e.Path)) ct

                        if (Manifest.tryFindCheckpoint f latest.Manifest).IsNone then
                            raise (
                                SlateException.Data(
                                    sprintf
                                        "the clone at %s exists, but its final checkpoint %s is gone from %s"
                                        clonePath
                                        (Uuid.toString f)
                                        e.Path
                                )
                            )

                return cloneManifest
            else
                for e in m.ExternalDbs do
                    match e.FinalCheckpointId with
                    | None -> ()
                    | Some f ->
                        let path = Paths.normalizeDbPath e.Path

                        let ms =
                            if path = sourcePath then
                                sourceMs
                            else
                                ManifestStore(store, path)

                        do! ensureFinalAsync ms f e.SourceCheckpointId (fallbacks.TryFind path) time ct

                // 4. the source's WAL tail (replay_after_wal_id, wal_id_last_seen]
                for id in Clones.walIdsToCopy m do
                    do! copyWalAsync store sourcePath clonePath id ct

                // 5. initialized
                let! (written, _) =
                    ManifestCas.updateStoredAsync
                        cloneMs
                        cloneManifest
                        Checkpoints.checkpointOnlyMerge
                        (fun current ->
                            if current.Manifest.Initialized then
                                Transition.NoChange()
                            else
                                Transition.Write(
                                    { current.Manifest with
                                        Initialized = true },
                                    ()
                                ))
                        Checkpoints.updateTimeout
                        time
                        ct

                return written
        }
