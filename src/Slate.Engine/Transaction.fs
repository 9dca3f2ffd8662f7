/// Optimistic transactions (SPEC §6.5, API.md `SlateTransaction`): reads at the start seq (pinned
/// like a snapshot) overlaid with the transaction's buffered writes; commit submits one batch whose
/// conflict check the writer loop runs atomically with assigning its seq.
namespace Slate.Engine

open System
open System.Collections.Generic
open System.Text
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Model

/// Isolation of a transaction.
type IsolationLevel =
    /// Snapshot isolation: conflicts on keys written by both.
    | Snapshot = 0
    /// Serializable snapshot isolation: also on keys read and ranges scanned.
    | SerializableSnapshot = 1

/// The buffered state of one key: the last put/delete (if any) and the merges after it.
[<NoComparison; NoEquality>]
type private Pending =
    {
        /// Value or tombstone of the last put/delete, with its known expiry.
        Base: (RowValue * int64 option) option
        /// Merge operands after `Base`, newest first, with their known expiry.
        Operands: (byte[] * int64 option) list
    }

/// Buffered rows of a scan, in scan order (per key newest first).
[<Sealed>]
type private OverlaySource(rows: RowEntry[]) =
    inherit RowSource()
    let mutable i = -1

    override _.MoveNextAsync(_ct) =
        i <- i + 1
        ValueTask<bool>(i < rows.Length)

    override _.Current = rows[i]

/// An optimistic transaction. Single use: after `CommitAsync` or `Rollback` every call raises
/// `Invalid`; disposing an uncommitted one rolls it back.
[<Sealed>]
type Transaction private (db: Db, isolation: IsolationLevel, startSeq: uint64) =
    let id = Guid.NewGuid()
    let gate = obj ()
    let ops = ResizeArray<WriteOp>()
    let pending = SortedDictionary<byte[], Pending>(Bytes.comparer)
    let reads = HashSet<byte[]>(HashIdentity.Structural)
    let ranges = ResizeArray<KeyRange>()
    let mutable completed = false
    let mutable released = false

    let serializable = isolation = IsolationLevel.SerializableSnapshot

    let completedError () =
        SlateException.Invalid "transaction has already been completed"

    let checkUsable () =
        if completed then
            raise (completedError ())

    let release () =
        let first =
            lock gate (fun () ->
                let f = not released
                released <- true
                f)

        if first then
            db.Conflicts.End startSeq
            db.ReleaseSnapshot startSeq

    /// Only an absolute expiry is known before the commit assigns create_ts.
    let knownExpiry (ttl: Ttl) =
        match ttl with
        | Ttl.ExpireAt t -> Some(t.ToUnixTimeMilliseconds())
        | _ -> None

    let buffer (op: WriteOp) =
        lock gate (fun () ->
            checkUsable ()
            db.CheckOpen()
            ops.Add op

            match op with
            | WriteOp.Put(k, v, ttl) ->
                pending[k] <-
                    { Base = Some(RowValue.Value v, knownExpiry ttl)
                      Operands = [] }
            | WriteOp.Delete k ->
                pending[k] <-
                    { Base = Some(RowValue.Tombstone, None)
                      Operands = [] }
            | WriteOp.Merge(k, operand, ttl) ->
                let p =
                    match pending.TryGetValue k with
                    | true, p -> p
                    | _ -> { Base = None; Operands = [] }

                pending[k] <-
                    { p with
                        Operands = (operand, knownExpiry ttl) :: p.Operands })

    /// The buffered rows of a key, newest first, with seqs above every committed seq.
    let overlayRows (key: byte[]) (p: Pending) : RowEntry list =
        let operands =
            p.Operands
            |> List.mapi (fun i (operand, e) ->
                { Key = key
                  Value = RowValue.Merge operand
                  Seq = UInt64.MaxValue - uint64 i
                  CreateTs = None
                  ExpireTs = e })

        let baseRow =
            p.Base
            |> Option.map (fun (v, e) ->
                { Key = key
                  Value = v
                  Seq = UInt64.MaxValue - uint64 p.Operands.Length
                  CreateTs = None
                  ExpireTs = e })

        operands @ Option.toList baseRow

    let resolve (rows: RowEntry list) : RowEntry option =
        match Merge.resolveVersions db.MergeOperator rows with
        | Ok r -> r
        | Error(ResolveError.MergeOperatorMissing _) -> raise (SlateException.Invalid "merge operator missing")

    let describeKey (k: byte[]) =
        let printable = k |> Array.forall (fun b -> b >= 0x20uy && b < 0x7Fuy)

        if printable then
            sprintf "'%s'" (Encoding.ASCII.GetString k)
        else
            "0x" + Bytes.toHex k

    /// The conflict test of SPEC §6.5 over a frozen copy of the read and write sets.
    let conflictTest () : byte[] -> bool =
        let writes = HashSet<byte[]>(pending.Keys, HashIdentity.Structural)

        if serializable then
            let readSet = HashSet<byte[]>(reads, HashIdentity.Structural)
            let scanned = List.ofSeq ranges

            fun k ->
                writes.Contains k
                || readSet.Contains k
                || scanned |> List.exists (fun r -> KeyRange.contains r k)
        else
            fun k -> writes.Contains k

    let conflict (test: byte[] -> bool) : unit =
        match db.Conflicts.FindConflict(startSeq, test) with
        | Some(seq, k) ->
            raise (
                SlateException(
                    SlateErrorKind.Transaction,
                    sprintf
                        "transaction conflict: key %s was written at seq %d, after the transaction's start seq %d"
                        (describeKey k)
                        seq
                        startSeq
                )
            )
        | None -> ()

    /// Starts a transaction reading at the last committed seq (pinned until commit or rollback).
    static member Begin(db: Db, isolation: IsolationLevel) : Transaction =
        db.CheckOpen()

        if not (Enum.IsDefined isolation) then
            raise (SlateException.Invalid(sprintf "unknown isolation level %d" (int isolation)))

        let s = db.Conflicts.Begin(fun () -> db.RegisterSnapshot())
        new Transaction(db, isolation, s)

    /// A unique id.
    member _.Id: Guid = id

    /// The start seq: reads see every batch up to it.
    member _.Seq: uint64 = startSeq

    /// The isolation level.
    member _.Isolation: IsolationLevel = isolation

    /// True after commit or rollback.
    member _.IsCompleted: bool = completed

    /// Buffers a put.
    member _.Put(key: byte[], value: byte[], ttl: Ttl) : unit =
        Validate.key key
        Validate.value value
        Validate.ttl ttl
        buffer (WriteOp.Put(key, value, ttl))

    /// Buffers a delete.
    member _.Delete(key: byte[]) : unit =
        Validate.key key
        buffer (WriteOp.Delete key)

    /// Buffers a merge operand (`Invalid` without a merge operator).
    member _.Merge(key: byte[], operand: byte[], ttl: Ttl) : unit =
        Validate.key key
        Validate.value operand
        Validate.ttl ttl

        if db.MergeOperator.IsNone then
            raise (SlateException.Invalid "merge operator missing")

        buffer (WriteOp.Merge(key, operand, ttl))

    /// Reads a key at the start seq with the transaction's own writes on top. Buffered rows report
    /// `Seq = UInt64.MaxValue` (not yet assigned) and no create_ts.
    member _.GetAsync(key: byte[], opts: ReadOpts, ct: CancellationToken) : Task<RowEntry option> =
        task {
            Validate.key key

            let own =
                lock gate (fun () ->
                    checkUsable ()
                    db.CheckOpen()

                    if serializable then
                        reads.Add key |> ignore

                    match pending.TryGetValue key with
                    | true, p -> Some(overlayRows key p, p.Base.IsSome)
                    | _ -> None)

            match own with
            | Some(rows, true) -> return resolve rows
            | Some(rows, false) ->
                let! under = db.GetAtAsync(key, opts, startSeq, ct)
                return resolve (rows @ Option.toList under)
            | None -> return! db.GetAtAsync(key, opts, startSeq, ct)
        }

    /// Scans at the start seq with the transaction's own writes merged in (as of this call).
    member _.Scan(range: KeyRange, opts: ReadOpts, descending: bool, cache: bool) : DbIterator =
        let rows =
            lock gate (fun () ->
                checkUsable ()

                if serializable then
                    ranges.Add range

                pending
                |> Seq.filter (fun kv -> KeyRange.contains range kv.Key)
                |> Seq.map (fun kv -> kv.Key, overlayRows kv.Key kv.Value)
                |> Array.ofSeq)

        let rows = if descending then Array.rev rows else rows

        let overlay (r: KeyRange) : RowSource[] =
            [| OverlaySource(
                   rows
                   |> Array.filter (fun (k, _) -> KeyRange.contains r k)
                   |> Array.collect (snd >> Array.ofList)
               )
               :> RowSource |]

        let view, maxSeq = db.ScanView(opts, Some startSeq)
        DbIterator(db.Tables, view, range, maxSeq, descending, cache, db.MergeOperator, db.CheckOpen, overlay)

    /// Commits the buffered writes as one batch: None when nothing was written (a serializable
    /// transaction still validates its reads). A conflict raises `Transaction` and applies nothing.
    member _.CommitAsync(ct: CancellationToken) : Task<WriteResult option> =
        task {
            let batch, test =
                lock gate (fun () ->
                    checkUsable ()
                    completed <- true
                    List.ofSeq ops, conflictTest ())

            try
                db.CheckOpen()

                if batch.IsEmpty then
                    if serializable then
                        conflict test

                    return None
                else
                    ct.ThrowIfCancellationRequested()
                    // not cancellable once submitted: the batch may still commit
                    let! r = db.WriteCheckedAsync(batch, Some(fun _ -> conflict test), CancellationToken.None)
                    return Some r
            finally
                release ()
        }

    /// Discards the buffered writes.
    member _.Rollback() : unit =
        lock gate (fun () ->
            checkUsable ()
            completed <- true)

        release ()

    interface IDisposable with
        /// Rolls back an uncommitted transaction; otherwise does nothing.
        member _.Dispose() =
            // a completed one was (or, while its commit is in flight, will be) released by it
            let rollback =
                lock gate (fun () ->
                    let r = not completed
                    completed <- true
                    r)

            if rollback then
                release ()
