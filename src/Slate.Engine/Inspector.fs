/// Read-only loading of a database state (latest or a given manifest plus its WAL tail) for
/// `slate inspect`, compatibility checks and tests. Writes nothing.
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// A database state loaded read-only: a manifest, the WAL SSTs replayed on top, and a view.
[<NoComparison; NoEquality>]
type LoadedDb =
    {
        /// The manifest the state is based on.
        Manifest: StoredManifest
        /// WAL ids replayed (rows with seq > last_l0_seq).
        WalIds: uint64 list
        /// Rows per replayed WAL id (all rows, including those at or below last_l0_seq).
        WalRows: (uint64 * RowEntry list) list
        /// The view over the manifest's SSTs and a memtable of the replayed rows.
        View: LsmView
        /// Highest seq visible.
        MaxSeq: uint64
        /// The table store used to read SSTs.
        Tables: TableStore
    }

/// Loading and scanning database states.
[<RequireQualifiedAccess>]
module Inspector =
    /// Loads the manifest `manifestId` (latest when None) and replays WAL ids after its
    /// `replay_after_wal_id`: up to `walUpTo` (inclusive; all contiguous ids present when None).
    /// No manifest → `Data` "failed to find latest manifest".
    let loadAsync
        (store: IObjectStore)
        (dbPath: string)
        (manifestId: uint64 option)
        (walUpTo: uint64 option)
        (ct: CancellationToken)
        : Task<LoadedDb> =
        task {
            try
                let ms = ManifestStore(store, dbPath)

                let! m =
                    match manifestId with
                    | Some id -> ms.ReadAsync(id, ct)
                    | None -> ms.ReadLatestAsync ct

                let m =
                    match m, manifestId with
                    | Some m, _ -> m
                    | None, Some id -> raise (SlateException.Data(sprintf "manifest %d is missing" id))
                    | None, None ->
                        raise (
                            SlateException.Data(sprintf "failed to find latest manifest in %s/%s" store.Describe dbPath)
                        )

                let tables = TableStore(store, dbPath, 4096, 1024)
                tables.Track m.Manifest
                let! listed = Store.listParsedAsync store dbPath Paths.WalDir ct

                let present =
                    listed
                    |> List.choose (fun (n, _) ->
                        match n with
                        | ObjectName.Wal id -> Some id
                        | _ -> None)
                    |> Set.ofList

                let start = m.Manifest.ReplayAfterWalId + 1UL

                let ids =
                    match walUpTo with
                    | Some last ->
                        [ start..last ]
                        |> List.map (fun id ->
                            if present.Contains id then
                                id
                            else
                                raise (
                                    SlateException.Data(
                                        sprintf
                                            "%s is missing inside the WAL replay range"
                                            (Paths.key dbPath (ObjectName.Wal id))
                                    )
                                ))
                    | None ->
                        Seq.initInfinite (fun i -> start + uint64 i)
                        |> Seq.takeWhile present.Contains
                        |> List.ofSeq

                let mt = Memtable()
                let walRows = ResizeArray()
                let mutable maxSeq = m.Manifest.LastL0Seq

                for id in ids do
                    match! tables.TryReadWalAsync(id, ct) with
                    | None -> raise (SlateException.Data(sprintf "%s vanished" (Paths.key dbPath (ObjectName.Wal id))))
                    | Some rows ->
                        walRows.Add((id, rows))

                        for r in rows do
                            if r.Seq > m.Manifest.LastL0Seq then
                                mt.Insert r |> ignore
                                maxSeq <- max maxSeq r.Seq

                return
                    { Manifest = m
                      WalIds = ids
                      WalRows = List.ofSeq walRows
                      View =
                        { Memtable = mt
                          Frozen = []
                          L0 = m.Manifest.L0
                          Compacted = m.Manifest.Compacted }
                      MaxSeq = maxSeq
                      Tables = tables }
            with :? ObjectStoreException as e ->
                return raise (Failures.ofStore (sprintf "reading %s" dbPath) e)
        }

    /// An iterator over every live key of a loaded state.
    let iterator (db: LoadedDb) (mergeOp: MergeOperator option) (range: KeyRange) (descending: bool) : DbIterator =
        DbIterator(db.Tables, db.View, range, db.MaxSeq, descending, true, mergeOp, ignore)

    /// Every live key/value of a loaded state, in key order.
    let scanAllAsync (db: LoadedDb) (mergeOp: MergeOperator option) (ct: CancellationToken) : Task<RowEntry list> =
        task {
            let it = iterator db mergeOp KeyRange.all false
            let acc = ResizeArray()
            let mutable go = true

            while go do
                let! batch = it.NextBatchAsync(1024, ct)
                acc.AddRange batch
                go <- batch.Length = 1024

            return List.ofSeq acc
        }

    /// Point read in a loaded state.
    let getAsync
        (db: LoadedDb)
        (mergeOp: MergeOperator option)
        (key: byte[])
        (ct: CancellationToken)
        : Task<RowEntry option> =
        task {
            let! versions = ReadPath.versionsAsync db.Tables db.View key db.MaxSeq true ct

            match Merge.resolveVersions mergeOp versions with
            | Ok r -> return r
            | Error _ -> return raise (SlateException.Invalid "merge operator missing")
        }

    /// The built-in byte-concatenation merge operator (existing ‖ operand).
    let concatMerge: MergeOperator =
        fun _key existing operand ->
            match existing with
            | Some e -> Array.append e operand
            | None -> Array.copy operand
