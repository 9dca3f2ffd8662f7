/// Conflict state of optimistic transactions (SPEC §6.5): the write sets of batches committed
/// while a transaction is active, kept in memory only and pruned below the oldest active
/// transaction's start seq. The writer loop records every committed batch and runs a
/// transaction's check, so no write slips between the check and the commit.
namespace Slate.Engine

open System.Collections.Generic

/// Recently committed write sets, retained while an older transaction is active.
[<Sealed>]
type ConflictTracker() =
    let gate = obj ()
    // start seq -> number of active transactions with it
    let active = SortedDictionary<uint64, int>()
    // (commit seq, keys written), ascending seq
    let records = Queue<struct (uint64 * byte[][])>()

    let prune () =
        let mutable go = true

        while go && records.Count > 0 do
            let struct (s, _) = records.Peek()

            let keep =
                active.Count > 0
                && (let oldest = Seq.head active.Keys
                    s > oldest)

            if keep then go <- false else records.Dequeue() |> ignore

    /// Registers a transaction: `register` (called under the tracker's lock, so that no batch is
    /// recorded between reading the start seq and the registration) returns its start seq.
    member _.Begin(register: unit -> uint64) : uint64 =
        lock gate (fun () ->
            let s = register ()

            match active.TryGetValue s with
            | true, n -> active[s] <- n + 1
            | _ -> active[s] <- 1

            s)

    /// Unregisters a transaction that started at `startSeq`.
    member _.End(startSeq: uint64) : unit =
        lock gate (fun () ->
            match active.TryGetValue startSeq with
            | true, 1 -> active.Remove startSeq |> ignore
            | true, n -> active[startSeq] <- n - 1
            | _ -> ()

            prune ())

    /// Records the keys of a committed batch (kept only while some transaction is active).
    member _.Record(seq: uint64, keys: byte[][]) : unit =
        lock gate (fun () ->
            if active.Count > 0 then
                records.Enqueue(struct (seq, keys))
                prune ())

    /// The first batch committed after `startSeq` that wrote a key satisfying `test`:
    /// `Some (seq, key)`, or None.
    member _.FindConflict(startSeq: uint64, test: byte[] -> bool) : (uint64 * byte[]) option =
        lock gate (fun () ->
            let mutable found = None
            let mutable e = records.GetEnumerator()

            while found.IsNone && e.MoveNext() do
                let struct (s, keys) = e.Current

                if s > startSeq then
                    match Array.tryFind test keys with
                    | Some k -> found <- Some(s, k)
                    | None -> ()

            found)

    /// Number of active transactions (tests).
    member _.ActiveCount: int = lock gate (fun () -> active.Values |> Seq.sum)

    /// Number of retained write sets (tests: pruning).
    member _.RecordCount: int = lock gate (fun () -> records.Count)
