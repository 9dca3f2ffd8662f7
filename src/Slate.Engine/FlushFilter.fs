/// The memtable flush retention filter (SPEC §5.5, §6.4, §6.6): which versions of a frozen
/// memtable an L0 SST keeps. Pure.
namespace Slate.Engine

open Slate.Model

/// Flush retention: per key the newest version, plus for every active snapshot the version it
/// reads; merge operands folded with the operator within one snapshot stripe; TTL expiry at the
/// memtable's clock; tombstones kept.
[<RequireQualifiedAccess>]
module FlushFilter =
    /// One stripe's versions (newest first, every seq within the stripe, no reader sees inside
    /// it) without a merge operator: TTL applied, emitted down to the first value or tombstone.
    let private walkWithoutOperator (clock: int64) (versions: RowEntry list) : RowEntry list =
        let expired (r: RowEntry) =
            match r.ExpireTs with
            | Some e -> e <= clock
            | None -> false

        let rec go acc rest =
            match rest with
            | [] -> List.rev acc
            | (r: RowEntry) :: tail ->
                match r.Value with
                | RowValue.Merge _ when expired r -> go acc tail
                | RowValue.Merge _ -> go (r :: acc) tail
                | RowValue.Value _ when expired r ->
                    List.rev (
                        { r with
                            Value = RowValue.Tombstone
                            ExpireTs = None }
                        :: acc
                    )
                | RowValue.Value _
                | RowValue.Tombstone -> List.rev (r :: acc)

        go [] versions

    /// Splits one key's versions (newest first) into stripes: the versions above the greatest
    /// snapshot, then those in (s_{j-1}, s_j] for the snapshots descending. Returns each stripe
    /// (newest first) with its top seq (the greatest seq a reader of that stripe uses).
    let private stripes (snapshotsDesc: uint64 list) (versions: RowEntry list) : (uint64 * RowEntry list) list =
        let rec go (tops: uint64 list) (top: uint64) (rest: RowEntry list) acc =
            match rest with
            | [] -> List.rev acc
            | _ ->
                match tops with
                | s :: lower ->
                    let inStripe = rest |> List.takeWhile (fun r -> r.Seq > s)
                    let below = rest |> List.skip inStripe.Length

                    let acc =
                        if List.isEmpty inStripe then
                            acc
                        else
                            (top, inStripe) :: acc

                    go lower s below acc
                | [] -> List.rev ((top, rest) :: acc)

        go snapshotsDesc System.UInt64.MaxValue versions []

    /// The versions of one key (newest first) to keep, given the active snapshot seqs.
    let applyVersions
        (snapshots: uint64 list)
        (clock: int64)
        (mergeOp: MergeOperator option)
        (versions: RowEntry list)
        : RowEntry list =
        let snapshotsDesc = snapshots |> List.distinct |> List.sortDescending

        stripes snapshotsDesc versions
        |> List.collect (fun (top, stripe) ->
            match mergeOp with
            | None -> walkWithoutOperator clock stripe
            | Some _ ->
                match Retention.applyVersions (Retention.flushParams top clock mergeOp) stripe with
                | Ok rows -> rows
                | Error e ->
                    raise (Slate.SlateException(Slate.SlateErrorKind.Internal, sprintf "flush retention failed: %A" e)))

    /// Filters rows sorted by (key asc, seq desc): `applyVersions` per key, same order out.
    let apply
        (snapshots: uint64 list)
        (clock: int64)
        (mergeOp: MergeOperator option)
        (rows: RowEntry seq)
        : RowEntry seq =
        seq {
            let cur = ResizeArray<RowEntry>()

            for r in rows do
                if cur.Count > 0 && not (Bytes.equal cur[0].Key r.Key) then
                    yield! applyVersions snapshots clock mergeOp (List.ofSeq cur)
                    cur.Clear()

                cur.Add r

            if cur.Count > 0 then
                yield! applyVersions snapshots clock mergeOp (List.ofSeq cur)
        }
