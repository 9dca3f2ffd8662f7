/// Scans (API.md `SlateIterator`): a merged, resolved, range-bounded stream of key/values over a
/// fixed view, in either order, with seek and batches. I/O and data errors are sticky.
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// Iterates the visible rows of `range` at `maxSeq` over a fixed `view`. `overlay` gives extra
/// sources (for the current scan range) that take precedence over the view: a transaction's
/// buffered writes, with seqs above `maxSeq`.
[<Sealed>]
type DbIterator
    (
        tables: TableStore,
        view: LsmView,
        range: KeyRange,
        maxSeq: uint64,
        descending: bool,
        cache: bool,
        mergeOp: MergeOperator option,
        checkOpen: unit -> unit,
        overlay: KeyRange -> RowSource[],
        readAhead: ReadAhead
    ) =
    do ReadAhead.validate readAhead
    let mutable view = view
    let mutable maxSeq = maxSeq
    // FollowLatest readers: on a file GC removed, reload the view once and resume after the last key
    let mutable reload: (CancellationToken -> Task<LsmView * uint64>) option = None
    let mutable reloaded = false
    let mutable scanRange = range
    let mutable source: RowSource option = None
    let mutable pending: RowEntry option = None
    let mutable exhausted = false
    let mutable lastKey: byte[] option = None
    let mutable sticky: exn option = None

    let ensureSource () =
        match source with
        | Some s -> s
        | None ->
            let s =
                let sources =
                    Array.append
                        (overlay scanRange)
                        (ReadPath.sourcesWith readAhead tables view scanRange maxSeq descending cache)

                MergingSource(sources, descending) :> RowSource

            source <- Some s
            s

    /// Reads the next group of versions of one key (newest first).
    let nextGroupAsync (ct: CancellationToken) : Task<RowEntry list option> =
        task {
            let src = ensureSource ()

            let! first =
                task {
                    match pending with
                    | Some p ->
                        pending <- None
                        return Some p
                    | None ->
                        if exhausted then
                            return None
                        else
                            let! ok = src.MoveNextAsync ct

                            if ok then
                                return Some src.Current
                            else
                                exhausted <- true
                                return None
                }

            match first with
            | None -> return None
            | Some f ->
                let group = ResizeArray<RowEntry>([ f ])
                let mutable go = not exhausted

                while go do
                    let! ok = src.MoveNextAsync ct

                    if not ok then
                        exhausted <- true
                        go <- false
                    elif Bytes.equal src.Current.Key f.Key then
                        group.Add src.Current
                    else
                        pending <- Some src.Current
                        go <- false

                // versions of one key may arrive out of seq order across split SSTs: normalise
                let versions =
                    group
                    |> Seq.sortByDescending (fun r -> r.Seq)
                    |> Seq.distinctBy (fun r -> r.Seq)
                    |> List.ofSeq

                return Some versions
        }

    let rec nextAsync (ct: CancellationToken) : Task<RowEntry option> =
        task {
            let mutable result = None
            let mutable go = true

            while go do
                match! nextGroupAsync ct with
                | None -> go <- false
                | Some versions ->
                    match Merge.resolveVersions mergeOp versions with
                    | Ok(Some r) ->
                        result <- Some r
                        go <- false
                    | Ok None -> ()
                    | Error(ResolveError.MergeOperatorMissing _) ->
                        raise (SlateException.Invalid "merge operator missing")

            match result with
            | Some r -> lastKey <- Some r.Key
            | None -> ()

            return result
        }

    let isMissing (e: exn) =
        match e with
        | :? ObjectStoreException as o -> o.Kind = ObjectStoreErrorKind.NotFound
        | :? SlateException as s ->
            match s.InnerException with
            | :? ObjectStoreException as o -> o.Kind = ObjectStoreErrorKind.NotFound
            | _ -> false
        | _ -> false

    /// `nextAsync`, retried once against a reloaded view when an object is missing (if enabled).
    let nextRetryAsync (ct: CancellationToken) : Task<RowEntry option> =
        task {
            try
                return! nextAsync ct
            with e when reload.IsSome && not reloaded && isMissing e ->
                reloaded <- true
                let! v, m = reload.Value ct
                view <- v
                maxSeq <- m

                match lastKey with
                | Some l when descending ->
                    scanRange <-
                        { scanRange with
                            End = KeyBound.Excluded l }
                | Some l ->
                    scanRange <-
                        { scanRange with
                            Start = KeyBound.Excluded l }
                | None -> ()

                source <- None
                pending <- None
                exhausted <- false
                return! nextAsync ct
        }

    let guard (f: unit -> Task<'a>) : Task<'a> =
        task {
            match sticky with
            | Some e -> return raise e
            | None ->
                checkOpen ()

                try
                    return! f ()
                with
                | :? SlateException as e when e.Kind = SlateErrorKind.Invalid -> return raise e
                | :? OperationCanceledException as e -> return raise e
                | e ->
                    sticky <- Some e
                    return raise e
        }

    /// Iterates without an overlay and without read-ahead.
    new(tables, view, range, maxSeq, descending, cache, mergeOp, checkOpen) =
        DbIterator(tables, view, range, maxSeq, descending, cache, mergeOp, checkOpen, (fun _ -> [||]), ReadAhead.none)

    /// Iterates with an overlay, without read-ahead.
    new(tables, view, range, maxSeq, descending, cache, mergeOp, checkOpen, overlay: KeyRange -> RowSource[]) =
        DbIterator(tables, view, range, maxSeq, descending, cache, mergeOp, checkOpen, overlay, ReadAhead.none)

    /// Iterates without an overlay, with read-ahead.
    new(tables, view, range, maxSeq, descending, cache, mergeOp, checkOpen, readAhead: ReadAhead) =
        DbIterator(tables, view, range, maxSeq, descending, cache, mergeOp, checkOpen, (fun _ -> [||]), readAhead)

    /// The next visible key/value, or None when the scan is exhausted.

    member _.NextAsync(ct: CancellationToken) : Task<RowEntry option> = guard (fun () -> nextRetryAsync ct)

    /// When a file of the view is missing (removed by GC), reload the view with `f` once and resume
    /// after the last returned key (SPEC §5.14 FollowLatest); without it the error is sticky.
    member _.ReloadOnMissing(f: CancellationToken -> Task<LsmView * uint64>) : unit = reload <- Some f

    /// Up to `max` key/values (fewer means exhausted; 0 returns empty without advancing).
    member _.NextBatchAsync(max: int, ct: CancellationToken) : Task<RowEntry list> =
        if max < 0 then
            raise (SlateException.Invalid "max must not be negative")

        guard (fun () ->
            task {
                let acc = ResizeArray<RowEntry>()
                let mutable go = max > 0

                while go do
                    match! nextRetryAsync ct with
                    | Some r ->
                        acc.Add r
                        go <- acc.Count < max
                    | None -> go <- false

                return List.ofSeq acc
            })

    /// Repositions so that the next key returned is the first ≥ `key` (≤ when descending).
    member _.SeekAsync(key: byte[], ct: CancellationToken) : Task =
        guard (fun () ->
            task {
                Validate.key key

                if not (KeyRange.contains range key) then
                    raise (SlateException.Invalid "seek key is outside the scan range")

                match lastKey with
                | Some l when
                    (if descending then
                         Bytes.compare key l >= 0
                     else
                         Bytes.compare key l <= 0)
                    ->
                    raise (SlateException.Invalid "seek key must be beyond the last returned key")
                | _ -> ()

                scanRange <-
                    if descending then
                        { scanRange with
                            End = KeyBound.Included key }
                    else
                        { scanRange with
                            Start = KeyBound.Included key }

                source <- None
                pending <- None
                exhausted <- false
                ignore ct
            })
        :> Task
