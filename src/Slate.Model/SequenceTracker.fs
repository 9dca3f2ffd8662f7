/// The sequence-tracker blob of the manifest (SPEC §4.15): sampled (seq, Unix seconds) pairs,
/// Gorilla delta-of-delta encoded. Storage format: the bit layout is on disk.
namespace Slate.Model

open System

/// Sampled `(seq, unix seconds)` pairs, both non-decreasing in blobs written by Slate.
/// `Seqs[i]` was current at `Times[i]`; the two arrays always have the same length. Treat the
/// arrays as immutable.
type SequenceTracker =
    {
        /// Sequence numbers.
        Seqs: uint64[]
        /// Wall-clock Unix seconds.
        Times: int64[]
    }

/// Rounding of tracker lookups without an exact match.
[<RequireQualifiedAccess>]
type TrackerRounding =
    /// Take the next higher entry.
    | Up
    /// Take the next lower entry.
    | Down

/// Functions over sequence trackers.
[<RequireQualifiedAccess>]
module SequenceTracker =
    /// Maximum number of pairs kept; when exceeded every second pair is dropped.
    let capacity: int = 8192

    /// Minimum spacing (seconds) between pairs kept by one in-memory tracker.
    let intervalSeconds: int64 = 60L

    /// The version byte Slate writes (SlateDB 0.12's format: 32-bit fallback slot).
    let version: byte = 1uy

    /// No pairs.
    let empty: SequenceTracker = { Seqs = [||]; Times = [||] }

    /// Number of pairs.
    let count (t: SequenceTracker) : int = t.Seqs.Length

    // ------------------------------------------------------------------ bits

    /// Whether a delta-of-delta fits the version-1 encoding (whose widest slot is 32 bits).
    let private fitsV1 (dod: int64) : bool =
        dod >= int64 Int32.MinValue && dod <= int64 Int32.MaxValue

    /// Appends the Gorilla stream of `values` (MSB-first, zero-padded to a byte).
    let private writeGorilla (out: ResizeArray<byte>) (values: int64[]) : unit =
        let mutable acc = 0uy
        let mutable nbits = 0

        let push (v: uint64) (bits: int) =
            for i in bits - 1 .. -1 .. 0 do
                acc <- (acc <<< 1) ||| byte ((v >>> i) &&& 1UL)
                nbits <- nbits + 1

                if nbits = 8 then
                    out.Add acc
                    acc <- 0uy
                    nbits <- 0

        push (uint64 values.Length) 32

        if values.Length > 0 then
            push (uint64 values[0]) 64
            let mutable prev = values[0]
            let mutable prevDelta = 0L

            for i in 1 .. values.Length - 1 do
                let delta = values[i] - prev
                let dod = delta - prevDelta

                if dod = 0L then
                    push 0UL 1
                elif dod >= -63L && dod <= 63L then
                    push 0b10UL 2
                    push (uint64 dod &&& 0x7FUL) 7
                elif dod >= -255L && dod <= 255L then
                    push 0b110UL 3
                    push (uint64 dod &&& 0x1FFUL) 9
                elif dod >= -2047L && dod <= 2047L then
                    push 0b1110UL 4
                    push (uint64 dod &&& 0xFFFUL) 12
                else
                    push 0b1111UL 4
                    push (uint64 dod &&& 0xFFFFFFFFUL) 32

                prev <- values[i]
                prevDelta <- delta

        if nbits > 0 then
            out.Add(acc <<< (8 - nbits))

    /// Sign-extends the low `bits` bits of `v`.
    let private signExtend (v: uint64) (bits: int) : int64 =
        let shift = 64 - bits
        (int64 (v <<< shift)) >>> shift

    /// Reads one Gorilla stream starting at byte `start`; returns the values and the next byte
    /// offset. `wide` selects the 64-bit fallback slot of version 2.
    let private readGorilla
        (data: byte[])
        (start: int)
        (wide: bool)
        (what: string)
        : Result<int64[] * int, DecodeError> =
        let totalBits = int64 (data.Length - start) * 8L
        let mutable pos = 0L // bit position relative to start
        let mutable failed = false

        let read (bits: int) : uint64 =
            if failed || pos + int64 bits > totalBits then
                failed <- true
                0UL
            else
                let mutable v = 0UL

                for _ in 1..bits do
                    let byteIx = start + int (pos >>> 3)
                    let bit = (data[byteIx] >>> (7 - int (pos &&& 7L))) &&& 1uy
                    v <- (v <<< 1) ||| uint64 bit
                    pos <- pos + 1L

                v

        let n = int64 (read 32)

        if failed then
            Error(DecodeError.Truncated(what + " count", start))
        elif n > 0L && n - 1L > totalBits - 96L then
            // every value after the first takes at least one bit
            Error(DecodeError.Invalid(what, sprintf "count %d exceeds the %d remaining bits" n (totalBits - 32L)))
        elif n = 0L then
            Ok([||], start + 4)
        else
            let values = Array.zeroCreate (int n)
            values[0] <- int64 (read 64)
            let mutable prevDelta = 0L
            let mutable i = 1

            while not failed && int64 i < n do
                let dod =
                    if read 1 = 0UL then
                        0L
                    else
                        let mutable ones = 1
                        let mutable stop = false

                        while not stop && ones < 4 do
                            if read 1 = 1UL then ones <- ones + 1 else stop <- true

                        match ones with
                        | 1 -> signExtend (read 7) 7
                        | 2 -> signExtend (read 9) 9
                        | 3 -> signExtend (read 12) 12
                        | _ -> if wide then int64 (read 64) else signExtend (read 32) 32

                let delta = prevDelta + dod
                values[i] <- values[i - 1] + delta
                prevDelta <- delta
                i <- i + 1

            if failed then
                Error(DecodeError.Truncated(what, start + int ((pos + 7L) >>> 3)))
            else
                Ok(values, start + int ((pos + 7L) >>> 3))

    // --------------------------------------------------------------- codec

    /// Whether the delta-of-delta of the element just appended at the end fits version 1.
    let private lastFits (v: ResizeArray<int64>) : bool =
        let n = v.Count

        if n < 2 then true
        elif n = 2 then fitsV1 (v[1] - v[0])
        else fitsV1 ((v[n - 1] - v[n - 2]) - (v[n - 2] - v[n - 3]))

    /// Working copy used by `record`, `merge` and `normalize` (mutated only inside them).
    type private Work(t: SequenceTracker) =
        let seqs = ResizeArray<int64>(t.Seqs |> Seq.map int64)
        let times = ResizeArray<int64>(t.Times)

        /// Appends a pair (unless below the last), restarting from it when version 1 could not
        /// represent it, then applies the capacity rule. False when skipped.
        member _.Add(seq: uint64, secs: int64, checkOrder: bool) : bool =
            let n = seqs.Count

            if checkOrder && n > 0 && (seq < uint64 seqs[n - 1] || secs < times[n - 1]) then
                false
            else
                seqs.Add(int64 seq)
                times.Add secs

                if not (lastFits seqs && lastFits times) then
                    seqs.RemoveRange(0, seqs.Count - 1)
                    times.RemoveRange(0, times.Count - 1)

                if seqs.Count > capacity then
                    let keep (a: ResizeArray<int64>) =
                        let kept = [| for i in 0..2 .. a.Count - 1 -> a[i] |]
                        a.Clear()
                        a.AddRange kept

                    keep seqs
                    keep times

                true

        member _.Result: SequenceTracker =
            { Seqs = seqs |> Seq.map uint64 |> Array.ofSeq
              Times = times.ToArray() }

    /// Offers a pair observed at `unixSeconds` to a tracker whose last kept pair (in this
    /// process) was at `lastKept` (None for a tracker just decoded from a manifest). The pair is
    /// kept iff no pair was kept yet or at least 60 s passed, and it is not below the last stored
    /// pair (seq and time non-decreasing). When full (8192), every second pair is dropped.
    /// Returns the tracker and the new `lastKept`.
    let record
        (seq: uint64)
        (unixSeconds: int64)
        (lastKept: int64 option)
        (t: SequenceTracker)
        : SequenceTracker * int64 option =
        match lastKept with
        | Some last when unixSeconds - last < intervalSeconds -> t, lastKept
        | _ ->
            let w = Work t

            if w.Add(seq, unixSeconds, true) then
                w.Result, Some unixSeconds
            else
                t, lastKept

    /// Appends the pairs of `other` to `into` as `record` would with a fresh `lastKept` (the first
    /// pair is kept, later ones need 60 s spacing from the last kept; pairs below the last stored
    /// one are skipped; capacity rule applied).
    let merge (into: SequenceTracker) (other: SequenceTracker) : SequenceTracker =
        let w = Work into
        let mutable last = None

        for i in 0 .. min other.Seqs.Length other.Times.Length - 1 do
            let secs = other.Times[i]

            match last with
            | Some l when secs - l < intervalSeconds -> ()
            | _ ->
                if w.Add(other.Seqs[i], secs, true) then
                    last <- Some secs

        w.Result

    /// `t` restricted to what the version-1 encoding can represent: scanning in order, a pair
    /// whose delta-of-delta does not fit 32 bits restarts the tracker from that pair (and more
    /// than 8192 pairs are downsampled). Identity for trackers built by `record`/`merge`.
    let normalize (t: SequenceTracker) : SequenceTracker =
        let w = Work empty

        for i in 0 .. min t.Seqs.Length t.Times.Length - 1 do
            w.Add(t.Seqs[i], t.Times[i], false) |> ignore

        w.Result

    /// The blob: `version:u8 = 1 ‖ count:u32le ‖ G(seqs) ‖ G(times)`. The tracker is first
    /// `normalize`d (a no-op for trackers built with `record`/`merge` or decoded from v1).
    let encode (t: SequenceTracker) : byte[] =
        let t = normalize t
        let out = ResizeArray<byte>(13 + 4 * t.Seqs.Length)
        out.Add version
        let n = uint32 t.Seqs.Length
        out.Add(byte n)
        out.Add(byte (n >>> 8))
        out.Add(byte (n >>> 16))
        out.Add(byte (n >>> 24))
        writeGorilla out (t.Seqs |> Array.map int64)
        writeGorilla out t.Times
        out.ToArray()

    /// Decodes a blob of version 1 (32-bit fallback slot) or 2 (later SlateDB, 64-bit slot).
    /// Trailing bytes after the two streams are ignored, as SlateDB does.
    let decode (blob: byte[]) : Result<SequenceTracker, DecodeError> =
        let what = "sequence tracker"

        if isNull blob || blob.Length = 0 then
            Error(DecodeError.Truncated(what, 0))
        elif blob[0] <> 1uy && blob[0] <> 2uy then
            Error(DecodeError.UnsupportedVersion(what, int blob[0]))
        elif blob.Length < 5 then
            Error(DecodeError.Truncated(what + " count", blob.Length))
        else
            let wide = blob[0] = 2uy

            let n =
                Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(blob, 1, 4))

            result {
                let! seqs, next = readGorilla blob 5 wide (what + " seqs")
                let! times, _ = readGorilla blob next wide (what + " timestamps")

                if int64 seqs.Length <> int64 n || int64 times.Length <> int64 n then
                    return!
                        Error(
                            DecodeError.Invalid(
                                what,
                                sprintf "count %d, but %d seqs and %d timestamps" n seqs.Length times.Length
                            )
                        )

                return
                    { Seqs = seqs |> Array.map uint64
                      Times = times }
            }

    /// The Unix seconds recorded for `seq` (exact match, else the next entry per `rounding`).
    let timeOfSeq (rounding: TrackerRounding) (seq: uint64) (t: SequenceTracker) : int64 option =
        let i = Array.BinarySearch(t.Seqs, seq)

        if i >= 0 then
            Some t.Times[i]
        else
            let ins = ~~~i

            match rounding with
            | TrackerRounding.Up when ins < t.Seqs.Length -> Some t.Times[ins]
            | TrackerRounding.Down when ins > 0 -> Some t.Times[ins - 1]
            | _ -> None

    /// The seq recorded at `unixSeconds` (exact match, else the next entry per `rounding`).
    let seqOfTime (rounding: TrackerRounding) (unixSeconds: int64) (t: SequenceTracker) : uint64 option =
        let i = Array.BinarySearch(t.Times, unixSeconds)

        if i >= 0 then
            Some t.Seqs[i]
        else
            let ins = ~~~i

            match rounding with
            | TrackerRounding.Up when ins < t.Times.Length -> Some t.Seqs[ins]
            | TrackerRounding.Down when ins > 0 -> Some t.Seqs[ins - 1]
            | _ -> None
