/// The rows of a write batch (SPEC §5.4 step 3): one row per key in key order, batch-internal
/// merges folded, TTLs turned into expire times. Pure; the writer calls it under its sequence.
namespace Slate.Engine

open System
open System.Collections.Generic
open Slate
open Slate.Model

/// The rows of a write batch.
[<RequireQualifiedAccess>]
module WriteRows =
    /// The expire time of a write at `createTs` (Unix ms): `Default` takes `defaultTtl`; an
    /// overflowing lifetime never expires.
    let expireTs (defaultTtl: TimeSpan option) (createTs: int64) (ttl: Ttl) : int64 option =
        let after (d: TimeSpan) =
            let ms = int64 d.TotalMilliseconds

            if ms > Int64.MaxValue - createTs then
                None
            else
                Some(createTs + ms)

        match ttl with
        | Ttl.NoExpiry -> None
        | Ttl.ExpireAt t -> Some(t.ToUnixTimeMilliseconds())
        | Ttl.ExpireAfter d -> after d
        | Ttl.Default ->
            match defaultTtl with
            | Some d -> after d
            | None -> None

    /// Builds the rows of a batch: key order, one row per key (SPEC §5.4 step 3).
    let build
        (mergeOperator: MergeOperator option)
        (defaultTtl: TimeSpan option)
        (ops: WriteOp list)
        (seq: uint64)
        (tick: int64)
        : RowEntry list =
        let expireTs = expireTs defaultTtl

        match ops with
        | [ op ] ->
            // one operation (the common single put): no per-batch dictionary
            let key, value, expire =
                match op with
                | WriteOp.Put(k, v, ttl) -> k, RowValue.Value v, expireTs tick ttl
                | WriteOp.Delete k -> k, RowValue.Tombstone, None
                | WriteOp.Merge(k, operand, ttl) ->
                    if mergeOperator.IsNone then
                        raise (SlateException.Invalid "merge operator missing")

                    k, RowValue.Merge operand, expireTs tick ttl

            [ { Key = key
                Value = value
                Seq = seq
                CreateTs = Some tick
                ExpireTs = expire } ]
        | _ ->

            let state = Dictionary<byte[], RowValue * int64 option>(HashIdentity.Structural)
            let order = ResizeArray<byte[]>()

            for op in ops do
                let key =
                    match op with
                    | WriteOp.Put(k, _, _)
                    | WriteOp.Delete k
                    | WriteOp.Merge(k, _, _) -> k

                let prev =
                    match state.TryGetValue key with
                    | true, v -> Some v
                    | _ ->
                        order.Add key
                        None

                let next =
                    match op with
                    | WriteOp.Put(_, v, ttl) -> RowValue.Value v, expireTs tick ttl
                    | WriteOp.Delete _ -> RowValue.Tombstone, None
                    | WriteOp.Merge(_, operand, ttl) ->
                        let e = expireTs tick ttl

                        match prev, mergeOperator with
                        | _, None -> raise (SlateException.Invalid "merge operator missing")
                        | None, Some _ -> RowValue.Merge operand, e
                        | Some(RowValue.Value v, pe), Some op ->
                            if pe <> e then
                                raise (SlateException.Invalid "a batch merges one key with two different expire times")

                            RowValue.Value(op key (Some v) operand), e
                        | Some(RowValue.Tombstone, _), Some op -> RowValue.Value(op key None operand), e
                        | Some(RowValue.Merge acc, pe), Some op ->
                            if pe <> e then
                                raise (SlateException.Invalid "a batch merges one key with two different expire times")

                            RowValue.Merge(op key (Some acc) operand), e

                state[key] <- next

            order
            |> Seq.sortWith Bytes.compare
            |> Seq.map (fun k ->
                let v, e = state[k]

                { Key = k
                  Value = v
                  Seq = seq
                  CreateTs = Some tick
                  ExpireTs = e })
            |> List.ofSeq
