/// Version retention for compaction and memtable flush (SPEC §5.5, §5.10, §6.2, §6.6): TTL
/// expiry, dropping versions no reader at or above the retention boundary can see, tombstone
/// removal in the last sorted run, and merge-operand folding.
namespace Slate.Model

/// Why retention could not run.
[<RequireQualifiedAccess>]
type RetentionError =
    /// A merge row was met but no merge operator is configured (the job fails).
    | MergeOperatorMissing of key: byte[]
    /// The input is not sorted by (key asc, seq desc) with unique (key, seq).
    | Unsorted of detail: string

/// Parameters of one retention pass.
[<NoEquality; NoComparison>]
type RetentionParams =
    {
        /// Versions visible at this seq and above are preserved (`recent_snapshot_min_seq`).
        RetentionMinSeq: uint64
        /// Logical clock for TTL (`last_l0_clock_tick`): `expire_ts ≤ Clock` has expired.
        Clock: int64
        /// The output is the last (lowest) sorted run: tombstones at the oldest end are dropped.
        IsLastRun: bool
        /// Operator used to fold merge operands; None makes any merge row an error.
        MergeOperator: MergeOperator option
    }

/// The retention filter.
[<RequireQualifiedAccess>]
module Retention =
    /// Parameters of the memtable flush filter (SPEC §5.5): never drops tombstones.
    let flushParams (retentionMinSeq: uint64) (clock: int64) (mergeOp: MergeOperator option) : RetentionParams =
        { RetentionMinSeq = retentionMinSeq
          Clock = clock
          IsLastRun = false
          MergeOperator = mergeOp }

    let private isExpired (clock: int64) (r: RowEntry) =
        match r.ExpireTs with
        | Some e -> e <= clock
        | None -> false

    let private isMerge (r: RowEntry) =
        match r.Value with
        | RowValue.Merge _ -> true
        | RowValue.Value _
        | RowValue.Tombstone -> false

    /// Steps 1-2: TTL and the walk that stops after the first non-merge version at or below the
    /// boundary. Returns the emitted versions, newest first.
    let private walk (p: RetentionParams) (versions: RowEntry list) : Result<RowEntry list, RetentionError> =
        let rec go acc rest =
            match rest with
            | [] -> Ok(List.rev acc)
            | (r: RowEntry) :: tail ->
                if isMerge r && p.MergeOperator.IsNone then
                    Error(RetentionError.MergeOperatorMissing r.Key)
                elif isExpired p.Clock r then
                    match r.Value with
                    | RowValue.Merge _ -> go acc tail
                    | RowValue.Value _ ->
                        let t =
                            { r with
                                Value = RowValue.Tombstone
                                ExpireTs = None }

                        if r.Seq > p.RetentionMinSeq then
                            go (t :: acc) tail
                        else
                            Ok(List.rev (t :: acc))
                    | RowValue.Tombstone ->
                        if r.Seq > p.RetentionMinSeq then
                            go (r :: acc) tail
                        else
                            Ok(List.rev (r :: acc))
                elif r.Seq > p.RetentionMinSeq || isMerge r then
                    go (r :: acc) tail
                else
                    Ok(List.rev (r :: acc))

        go [] versions

    let private maxCreate (rows: RowEntry list) : int64 option =
        match rows |> List.choose (fun r -> r.CreateTs) with
        | [] -> None
        | ts -> Some(List.max ts)

    /// Folds one group of operands (newest first, equal expire_ts, all at or below the boundary)
    /// and an optional base into one row.
    let private foldGroup (op: MergeOperator) (ops: RowEntry list) (baseRow: RowEntry option) : RowEntry =
        let newest = List.head ops

        let operand (r: RowEntry) =
            match r.Value with
            | RowValue.Merge v -> v
            | RowValue.Value v -> v
            | RowValue.Tombstone -> [||]

        let oldestFirst = List.rev ops

        match baseRow with
        | Some b ->
            let start, contributing =
                match b.Value with
                | RowValue.Value v -> Some v, b :: ops
                | RowValue.Merge _
                | RowValue.Tombstone -> None, ops

            let folded =
                oldestFirst
                |> List.fold (fun acc r -> Some(op newest.Key acc (operand r))) start

            { newest with
                Value = RowValue.Value(defaultArg folded [||])
                CreateTs = maxCreate contributing }
        | None ->
            match oldestFirst with
            | [ single ] -> single
            | first :: rest ->
                let folded =
                    rest
                    |> List.fold (fun acc r -> op newest.Key (Some acc) (operand r)) (operand first)

                { newest with
                    Value = RowValue.Merge folded
                    CreateTs = maxCreate ops }
            | [] -> newest

    /// Step 4: folds the versions at or below the boundary (`tail` = operands then at most one
    /// base, newest first) into groups of equal expire_ts; a base joins the oldest group when it
    /// is a tombstone or a value with the same expire_ts.
    let private foldTail (op: MergeOperator) (tail: RowEntry list) : RowEntry list =
        let ops, baseRow =
            match List.rev tail with
            | last :: _ when not (isMerge last) -> List.take (tail.Length - 1) tail, Some last
            | _ -> tail, None

        // consecutive groups of equal expire_ts, newest first
        let groups =
            ops
            |> List.fold
                (fun (acc: RowEntry list list) r ->
                    match acc with
                    | (g :: _ as grp) :: restG when g.ExpireTs = r.ExpireTs -> (r :: grp) :: restG
                    | _ -> [ r ] :: acc)
                []
            |> List.map List.rev
            |> List.rev

        let rec build (gs: RowEntry list list) =
            match gs with
            | [] ->
                match baseRow with
                | Some b -> [ b ]
                | None -> []
            | [ g ] ->
                match baseRow with
                | Some b when b.Value = RowValue.Tombstone || b.ExpireTs = (List.head g).ExpireTs ->
                    [ foldGroup op g (Some b) ]
                | Some b -> [ foldGroup op g None; b ]
                | None -> [ foldGroup op g None ]
            | g :: rest -> foldGroup op g None :: build rest

        build groups

    let private dropOldestTombstones (rows: RowEntry list) : RowEntry list =
        rows
        |> List.rev
        |> List.skipWhile (fun r -> r.Value = RowValue.Tombstone)
        |> List.rev

    /// Retention of ONE key's versions, given newest first (SPEC §5.10): (1) TTL: an expired
    /// value becomes a tombstone (same key, seq, create_ts; no expire_ts), an expired merge
    /// operand is dropped; (2) emit, continuing to older versions only past a version with
    /// seq > `RetentionMinSeq` or a merge operand; (3) with an operator, fold the emitted
    /// versions at or below the boundary (operands of equal expire_ts, plus their base when it is
    /// a tombstone or has the same expire_ts). Versions above the boundary are never folded: each
    /// is the answer for some seq ≥ the boundary; (4) in the last run drop tombstones from the
    /// oldest end. Without an operator any merge row met is `MergeOperatorMissing`.
    let applyVersions (p: RetentionParams) (versions: RowEntry list) : Result<RowEntry list, RetentionError> =
        walk p versions
        |> Result.map (fun emitted ->
            let folded =
                match p.MergeOperator with
                | Some op ->
                    let above = emitted |> List.takeWhile (fun r -> r.Seq > p.RetentionMinSeq)
                    let atOrBelow = emitted |> List.skip above.Length

                    if List.isEmpty atOrBelow then
                        emitted
                    else
                        above @ foldTail op atOrBelow
                | None -> emitted

            if p.IsLastRun then dropOldestTombstones folded else folded)

    /// Streaming retention over rows sorted by (key asc, seq desc): yields the output rows in
    /// the same order, and stops after yielding the first error (unsorted input or a missing
    /// operator). Holds one key's versions at a time.
    let applySeq (p: RetentionParams) (rows: RowEntry seq) : seq<Result<RowEntry, RetentionError>> =
        seq {
            let mutable cur: RowEntry list = [] // newest last while collecting
            let mutable failed = false

            use e = rows.GetEnumerator()

            let flushKey (group: RowEntry list) : Result<RowEntry, RetentionError> list =
                match applyVersions p (List.rev group) with
                | Ok out -> out |> List.map Ok
                | Error err -> [ Error err ]

            while not failed && e.MoveNext() do
                let r = e.Current

                match cur with
                | last :: _ ->
                    let c = Bytes.compare last.Key r.Key

                    if c > 0 || (c = 0 && last.Seq <= r.Seq) then
                        failed <- true

                        yield
                            Error(
                                RetentionError.Unsorted(
                                    sprintf
                                        "row (key %s, seq %d) after (key %s, seq %d)"
                                        (Bytes.toHex r.Key)
                                        r.Seq
                                        (Bytes.toHex last.Key)
                                        last.Seq
                                )
                            )
                    elif c = 0 then
                        cur <- r :: cur
                    else
                        let out = flushKey cur
                        cur <- [ r ]

                        for o in out do
                            if not failed then
                                if Result.isError o then
                                    failed <- true

                                yield o
                | [] -> cur <- [ r ]

            if not failed && not (List.isEmpty cur) then
                for o in flushKey cur do
                    if not failed then
                        if Result.isError o then
                            failed <- true

                        yield o
        }

    /// Retention over rows sorted by (key asc, seq desc) (SPEC §5.10); see `applyVersions`.
    let apply (p: RetentionParams) (rows: RowEntry seq) : Result<RowEntry list, RetentionError> =
        let out = ResizeArray<RowEntry>()
        let mutable err = None

        for r in applySeq p rows do
            match r with
            | Ok row -> out.Add row
            | Error e -> err <- Some e

        match err with
        | Some e -> Error e
        | None -> Ok(List.ofSeq out)

    /// The memtable flush filter (SPEC §5.5): `apply` without tombstone dropping.
    let flush
        (retentionMinSeq: uint64)
        (clock: int64)
        (mergeOp: MergeOperator option)
        (rows: RowEntry seq)
        : Result<RowEntry list, RetentionError> =
        apply (flushParams retentionMinSeq clock mergeOp) rows
