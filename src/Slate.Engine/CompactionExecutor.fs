/// The compactor-state namespace (SPEC §4.16, §5.1) and the execution of one compaction job
/// (SPEC §5.10): merge the sources, apply retention, write the destination's SSTs.
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// Reads and writes `compactions/` of one database (a sequenced namespace, SPEC §5.1).
type CompactorStateStore(store: IObjectStore, dbPath: string) =
    let objects =
        SequencedStore<CompactorState>(
            store,
            dbPath,
            Paths.CompactionsDir,
            ObjectName.Compactions,
            ObjectName.CompactionsBoundary,
            CompactionStateCodec.encode,
            CompactionStateCodec.decode
        )

    /// Ids of every compactor-state file present, ascending.
    member _.ListIdsAsync(ct: CancellationToken) : Task<uint64 list> = objects.ListIdsAsync ct

    /// Reads one state file; None when absent.
    member _.ReadAsync(id: uint64, ct: CancellationToken) : Task<CompactorState option> = objects.ReadAsync(id, ct)

    /// The latest state file and its id; None when there is none.
    member _.ReadLatestAsync(ct: CancellationToken) : Task<(uint64 * CompactorState) option> =
        objects.ReadLatestAsync ct

    /// Writes `state` as id `baseId + 1`; false when that id exists (or lies below the boundary).
    member _.TryWriteAsync(baseId: uint64, state: CompactorState, ct: CancellationToken) : Task<bool> =
        objects.TryWriteAsync(baseId, state, ct)

/// Raised inside a job when retention meets a merge row without a merge operator (the job fails).
type internal CompactionJobFailure(message: string) =
    inherit Exception(message)

/// What one finished job produced.
type CompactionOutcome =
    {
        /// The destination's SSTs in key order (empty when every row was dropped).
        Outputs: SstHandle list
        /// Estimated size of the inputs (`index_offset + index_len` summed).
        BytesIn: int64
        /// Bytes of the uploaded output SSTs.
        BytesOut: int64
        /// Rows written.
        Rows: int64
    }

/// Execution of a compaction job.
[<RequireQualifiedAccess>]
module CompactionExecutor =
    /// A job's inputs merged by (key asc, seq desc): one source per L0 SST and one per sorted run
    /// (its SSTs concatenated), in precedence order; blocks are read lazily and not cached.
    let mergedSource (tables: TableStore) (inputs: SstHandle list list) : RowSource =
        let sstSource (h: SstHandle) () =
            SstSource(tables, h, KeyRange.all, UInt64.MaxValue, false, false) :> RowSource

        let sources =
            inputs
            |> List.map (fun ssts -> ConcatSource(ssts |> List.map sstSource) :> RowSource)
            |> Array.ofList

        MergingSource(sources, false)

    /// Runs a job against the manifest it was started on: streams the sources through retention
    /// into output SSTs of at most `maxSstSize` bytes of completed data blocks, each uploaded
    /// create-if-absent with a fresh ULID from `mintId`. Holds one key's versions and one output
    /// SST in memory. A merge row without an operator raises `CompactionJobFailure`.
    let runAsync
        (tables: TableStore)
        (m: Manifest)
        (spec: CompactionSpec)
        (retention: RetentionParams)
        (sstOptions: SstOptions)
        (maxSstSize: int64)
        (mintId: unit -> Ulid)
        (ct: CancellationToken)
        : Task<CompactionOutcome> =
        task {
            let inputs =
                match Compaction.inputs m spec with
                | Ok i -> i
                | Error e -> raise (CompactionJobFailure e)

            let bytesIn =
                inputs
                |> List.sumBy (fun ssts -> ssts |> List.sumBy (fun h -> int64 (SizeTiered.sstSize h)))

            let source = mergedSource tables inputs
            let outputs = ResizeArray<SstHandle>()
            let mutable bytesOut = 0L
            let mutable rows = 0L
            let mutable builder = SstBuilder(sstOptions, SstType.Compacted)

            let closeOutput () : Task =
                task {
                    let built = builder.Finish()
                    builder <- SstBuilder(sstOptions, SstType.Compacted)
                    let id = mintId ()
                    do! tables.WriteCompactedAsync(id, built, ct)
                    bytesOut <- bytesOut + int64 built.Bytes.Length

                    outputs.Add
                        { Id = id
                          Info = built.Info
                          FormatVersion = 2us
                          VisibleRange = None }
                }

            let emitGroup (newestFirst: RowEntry list) : Task =
                task {
                    match Retention.applyVersions retention newestFirst with
                    | Error(RetentionError.MergeOperatorMissing key) ->
                        raise (
                            CompactionJobFailure(
                                sprintf "merge row for key %s but no merge operator is configured" (Bytes.toHex key)
                            )
                        )
                    | Error(RetentionError.Unsorted detail) ->
                        raise (SlateException(SlateErrorKind.Internal, "compaction input is not sorted: " + detail))
                    | Ok kept ->
                        for r in kept do
                            builder.Add r
                            rows <- rows + 1L

                            if builder.CompletedBlockBytes > maxSstSize then
                                do! closeOutput ()
                }

            let group = ResizeArray<RowEntry>()
            let mutable go = true

            while go do
                ct.ThrowIfCancellationRequested()
                let! ok = source.MoveNextAsync ct

                if not ok then
                    go <- false
                else
                    let r = source.Current

                    if group.Count > 0 && not (Bytes.equal group[0].Key r.Key) then
                        do! emitGroup (List.ofSeq group)
                        group.Clear()

                    group.Add r

            if group.Count > 0 then
                do! emitGroup (List.ofSeq group)

            if builder.RowCount > 0 then
                do! closeOutput ()

            return
                { Outputs = List.ofSeq outputs
                  BytesIn = bytesIn
                  BytesOut = bytesOut
                  Rows = rows }
        }
