/// K-way merge of sorted row sequences and read-time resolution (SPEC §1.3, §6.3, §6.6).
namespace Slate.Model

open System.Collections.Generic

/// A merge operator as a pure function: `key -> existing value (None = no value) -> operand ->
/// merged value`. Must be associative.
type MergeOperator = byte[] -> byte[] option -> byte[] -> byte[]

/// Why rows could not be resolved.
[<RequireQualifiedAccess>]
type ResolveError =
    /// A merge row was met but no operator is configured.
    | MergeOperatorMissing of key: byte[]

/// Merging and resolving rows.
[<RequireQualifiedAccess>]
module Merge =
    /// Orders rows by (key asc, seq desc): the order of memtables and compacted SSTs.
    let compareRows (a: RowEntry) (b: RowEntry) : int =
        let c = Bytes.compare a.Key b.Key
        if c <> 0 then c else compare b.Seq a.Seq

    /// Merges sequences each sorted by (key asc, seq desc) into one sorted sequence. On equal
    /// (key, seq) the row of the earlier source wins and the others are dropped (sources are given
    /// in precedence order: memtable first, then L0 newest first, then sorted runs).
    let mergeSorted (sources: RowEntry seq list) : RowEntry seq =
        seq {
            let enums = sources |> List.map (fun s -> s.GetEnumerator()) |> Array.ofList

            try
                // priority queue keyed by (row order, source index)
                let pq =
                    PriorityQueue<int, struct (RowEntry * int)>(
                        { new IComparer<struct (RowEntry * int)> with
                            member _.Compare(struct (ra, ia), struct (rb, ib)) =
                                let c = compareRows ra rb
                                if c <> 0 then c else compare ia ib }
                    )

                for i in 0 .. enums.Length - 1 do
                    if enums[i].MoveNext() then
                        pq.Enqueue(i, struct (enums[i].Current, i))

                let mutable last: RowEntry option = None

                while pq.Count > 0 do
                    let mutable i = 0
                    let mutable pr = struct (Unchecked.defaultof<RowEntry>, 0)
                    pq.TryDequeue(&i, &pr) |> ignore
                    let struct (row, _) = pr

                    let dup =
                        match last with
                        | Some l -> l.Seq = row.Seq && Bytes.equal l.Key row.Key
                        | None -> false

                    if not dup then
                        last <- Some row
                        yield row

                    if enums[i].MoveNext() then
                        pq.Enqueue(i, struct (enums[i].Current, i))
            finally
                for e in enums do
                    e.Dispose()
        }

    /// Resolves the versions of ONE key, given newest first and already limited to the visible
    /// sequence bound: walk until the first Value or Tombstone (the base), fold merge operands
    /// oldest to newest onto it. Returns the visible Value row (seq = newest operand's, create_ts =
    /// max, expire_ts = min over the folded rows), or None when the key is deleted or absent.
    let resolveVersions
        (mergeOp: MergeOperator option)
        (versions: RowEntry list)
        : Result<RowEntry option, ResolveError> =
        match versions with
        | [] -> Ok None
        | newest :: _ ->
            match newest.Value with
            | RowValue.Value _ -> Ok(Some newest)
            | RowValue.Tombstone -> Ok None
            | RowValue.Merge _ ->
                match mergeOp with
                | None -> Error(ResolveError.MergeOperatorMissing newest.Key)
                | Some op ->
                    // operands newest first until a base
                    let rec split acc rest =
                        match rest with
                        | [] -> List.rev acc, None
                        | (r: RowEntry) :: tail ->
                            match r.Value with
                            | RowValue.Merge _ -> split (r :: acc) tail
                            | RowValue.Value _
                            | RowValue.Tombstone -> List.rev acc, Some r

                    let operands, baseRow = split [] versions

                    let initial =
                        match baseRow with
                        | Some { Value = RowValue.Value v } -> Some v
                        | _ -> None

                    let folded =
                        operands
                        |> List.rev
                        |> List.fold
                            (fun (acc: byte[] option) (r: RowEntry) ->
                                match r.Value with
                                | RowValue.Merge operand -> Some(op newest.Key acc operand)
                                | RowValue.Value _
                                | RowValue.Tombstone -> acc)
                            initial

                    let contributing =
                        match baseRow with
                        | Some({ Value = RowValue.Value _ } as b) -> b :: operands
                        | _ -> operands

                    let createTs =
                        contributing
                        |> List.choose (fun r -> r.CreateTs)
                        |> List.fold (fun m x -> max m x) System.Int64.MinValue

                    let expireTs = contributing |> List.choose (fun r -> r.ExpireTs)

                    Ok(
                        Some
                            { Key = newest.Key
                              Value = RowValue.Value(defaultArg folded [||])
                              Seq = newest.Seq
                              CreateTs =
                                (if contributing |> List.exists (fun r -> r.CreateTs.IsSome) then
                                     Some createTs
                                 else
                                     None)
                              ExpireTs = (if expireTs.IsEmpty then None else Some(List.min expireTs)) }
                    )

    /// The visible key/value rows of a merged sorted row sequence at `maxSeq`: one Value row per
    /// live key, in key order (tombstoned keys skipped, merges resolved).
    let visible
        (mergeOp: MergeOperator option)
        (maxSeq: uint64)
        (rows: RowEntry seq)
        : Result<RowEntry list, ResolveError> =
        let out = ResizeArray<RowEntry>()
        let mutable err = None
        let mutable cur: RowEntry list = []

        let flush () =
            match err, cur with
            | None, (_ :: _) ->
                match resolveVersions mergeOp (List.rev cur) with
                | Ok(Some r) -> out.Add r
                | Ok None -> ()
                | Error e -> err <- Some e
            | _ -> ()

            cur <- []

        for r in rows do
            if r.Seq <= maxSeq then
                match cur with
                | h :: _ when Bytes.equal h.Key r.Key -> cur <- r :: cur
                | _ ->
                    flush ()
                    cur <- [ r ]

        flush ()

        match err with
        | Some e -> Error e
        | None -> Ok(List.ofSeq out)
