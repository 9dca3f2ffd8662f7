/// The manifest namespace as a sequenced object (SPEC §5.1) and the one compare-and-swap loop
/// every manifest writer goes through (CONVENTIONS habit 3).
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// A manifest with the id (object name) it was read from or written as.
type StoredManifest =
    {
        /// Manifest id.
        Id: uint64
        /// Its content.
        Manifest: Manifest
    }

/// One sequenced namespace of a database (SPEC §5.1): `manifest/` or `compactions/`. Objects
/// are named by contiguous ids; writes create id `base + 1` if absent and are treated as lost when
/// the id lies at or below the namespace's GC boundary file. Reads bypass every cache.
type SequencedStore<'T>
    (
        store: IObjectStore,
        dbPath: string,
        dir: string,
        nameOf: uint64 -> ObjectName,
        boundary: ObjectName,
        encode: 'T -> byte[],
        decode: byte[] -> Result<'T, DecodeError>
    ) =
    let keyOf id = Paths.key dbPath (nameOf id)

    let readBoundary (ct: CancellationToken) : Task<uint64> =
        task {
            match! Store.tryGetAsync store (Paths.key dbPath boundary) ct with
            | None -> return 0UL
            | Some r ->
                let text = Text.Encoding.ASCII.GetString r.Data

                match UInt64.TryParse text with
                | true, v -> return v
                | _ -> return raise (SlateException.Data(sprintf "%s: not a decimal u64" r.Meta.Key))
        }

    /// The object store.
    member _.ObjectStore: IObjectStore = store

    /// The database path.
    member _.DbPath: string = dbPath

    /// The object key of id `id`.
    member _.KeyOf(id: uint64) : string = keyOf id

    /// Ids of every object present, ascending.
    member _.ListIdsAsync(ct: CancellationToken) : Task<uint64 list> =
        task {
            let! items = Store.listParsedAsync store dbPath dir ct

            return
                items
                |> List.choose (fun (n, _) ->
                    match n with
                    | ObjectName.Manifest id
                    | ObjectName.Compactions id when nameOf id = n -> Some id
                    | _ -> None)
                |> List.sort
        }

    /// Reads and decodes one object; None when absent.
    member _.ReadAsync(id: uint64, ct: CancellationToken) : Task<'T option> =
        task {
            let key = keyOf id

            match! Store.tryGetAsync store key ct with
            | None -> return None
            | Some r -> return Some(decode r.Data |> Failures.orData key)
        }

    /// The latest object and its id; None when the namespace is empty.
    member this.ReadLatestAsync(ct: CancellationToken) : Task<(uint64 * 'T) option> =
        task {
            let mutable result = None
            let mutable attempts = 0
            let mutable fin = false

            while not fin do
                let! ids = this.ListIdsAsync ct

                match List.tryLast ids with
                | None -> fin <- true
                | Some id ->
                    match! this.ReadAsync(id, ct) with
                    | Some v ->
                        result <- Some(id, v)
                        fin <- true
                    | None ->
                        // deleted by GC between list and get: list again
                        attempts <- attempts + 1

                        if attempts > 10 then
                            raise (
                                SlateException(SlateErrorKind.Unavailable, sprintf "%s vanished repeatedly" (keyOf id))
                            )

            return result
        }

    /// Writes `value` as id `baseId + 1`. False when that id already exists (or was recreated
    /// below the GC boundary): the caller reloads, merges and retries.
    member _.TryWriteAsync(baseId: uint64, value: 'T, ct: CancellationToken) : Task<bool> =
        task {
            let id = baseId + 1UL
            let! created = Store.tryCreateAsync store (keyOf id) (encode value) ct

            if not created then
                return false
            else
                let! b = readBoundary ct
                return id > b
        }

/// Reads and writes `manifest/` of one database. Reads bypass every cache.
type ManifestStore(store: IObjectStore, dbPath: string) =
    let objects =
        SequencedStore<Manifest>(
            store,
            dbPath,
            Paths.ManifestDir,
            ObjectName.Manifest,
            ObjectName.ManifestBoundary,
            ManifestCodec.encode,
            ManifestCodec.decode
        )

    /// The object store.
    member _.ObjectStore: IObjectStore = store

    /// The database path.
    member _.DbPath: string = dbPath

    /// Ids of every manifest present, ascending.
    member _.ListIdsAsync(ct: CancellationToken) : Task<uint64 list> = objects.ListIdsAsync ct

    /// Reads one manifest; None when absent.
    member _.ReadAsync(id: uint64, ct: CancellationToken) : Task<StoredManifest option> =
        task {
            let! m = objects.ReadAsync(id, ct)
            return m |> Option.map (fun m -> { Id = id; Manifest = m })
        }

    /// The latest manifest; None when the database has none.
    member _.ReadLatestAsync(ct: CancellationToken) : Task<StoredManifest option> =
        task {
            let! m = objects.ReadLatestAsync ct
            return m |> Option.map (fun (id, m) -> { Id = id; Manifest = m })
        }

    /// Writes `manifest` as id `baseId + 1`. False when that id already exists (or was recreated
    /// below the GC boundary): the caller reloads, merges and retries.
    member _.TryWriteAsync(baseId: uint64, manifest: Manifest, ct: CancellationToken) : Task<bool> =
        objects.TryWriteAsync(baseId, manifest, ct)

/// Outcome of one attempt of a manifest transition inside the CAS loop.
[<RequireQualifiedAccess>]
type Transition<'r> =
    /// Write this manifest and return the value when the write wins.
    | Write of Manifest * 'r
    /// Nothing to write; return the value.
    | NoChange of 'r

/// The compare-and-swap loop (SPEC §5.1): apply a pure transition to the local view, try to write
/// the next id, and on conflict reload, merge and re-apply.
[<RequireQualifiedAccess>]
module ManifestCas =
    /// Runs `transition` (which sees the id of the version it derives from, so it can name the id
    /// being written, `Id + 1`) until it commits. `merge local remote` is the caller's ownership merge
    /// (it raises `Closed(Fenced)` itself when the remote shows a newer epoch). `timeout` bounds the
    /// loop (then `Unavailable`). Returns the written (or unchanged) manifest and the value.
    let updateStoredAsync
        (ms: ManifestStore)
        (local: StoredManifest)
        (merge: Manifest -> Manifest -> Manifest)
        (transition: StoredManifest -> Transition<'r>)
        (timeout: TimeSpan)
        (time: TimeProvider)
        (ct: CancellationToken)
        : Task<StoredManifest * 'r> =
        task {
            let started = time.GetTimestamp()
            let mutable current = local
            let mutable result = None

            while result.IsNone do
                ct.ThrowIfCancellationRequested()

                match transition current with
                | Transition.NoChange r -> result <- Some(current, r)
                | Transition.Write(next, r) ->
                    let! ok = ms.TryWriteAsync(current.Id, next, ct)

                    if ok then
                        result <-
                            Some(
                                { Id = current.Id + 1UL
                                  Manifest = next },
                                r
                            )
                    else
                        if time.GetElapsedTime(started) > timeout then
                            raise (SlateException(SlateErrorKind.Unavailable, "manifest update timed out"))

                        match! ms.ReadLatestAsync ct with
                        | None -> raise (SlateException.Data "failed to find latest manifest")
                        | Some remote ->
                            current <-
                                { Id = remote.Id
                                  Manifest = merge current.Manifest remote.Manifest }

            return result.Value
        }

    /// `updateStoredAsync` for transitions that do not need the manifest id.
    let updateAsync
        (ms: ManifestStore)
        (local: StoredManifest)
        (merge: Manifest -> Manifest -> Manifest)
        (transition: Manifest -> Transition<'r>)
        (timeout: TimeSpan)
        (time: TimeProvider)
        (ct: CancellationToken)
        : Task<StoredManifest * 'r> =
        updateStoredAsync ms local merge (fun s -> transition s.Manifest) timeout time ct
