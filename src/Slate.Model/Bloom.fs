/// Bloom filters and filter blocks (SPEC §4.1, §4.7). Storage format: the hash, the probe
/// sequence and the bit layout must match SlateDB exactly, or SlateDB would miss keys.
///
/// Bloom `data` = `num_probes:u16be ‖ bits`; bit b lives in byte b / 8 at mask 1 << (b mod 8).
namespace Slate.Model

open System
open System.Buffers.Binary

/// SipHash-1-3 key hashing, bloom build and query, filter-block decoding.
[<RequireQualifiedAccess>]
module Bloom =
    /// Name of the bloom entry in a composite filter block.
    [<Literal>]
    let CompositeName = "_bf"

    let inline private rotl (x: uint64) (b: int) : uint64 = (x <<< b) ||| (x >>> (64 - b))

    let inline private sipRound (v0: byref<uint64>) (v1: byref<uint64>) (v2: byref<uint64>) (v3: byref<uint64>) =
        v0 <- v0 + v1
        v1 <- rotl v1 13
        v1 <- v1 ^^^ v0
        v0 <- rotl v0 32
        v2 <- v2 + v3
        v3 <- rotl v3 16
        v3 <- v3 ^^^ v2
        v0 <- v0 + v3
        v3 <- rotl v3 21
        v3 <- v3 ^^^ v0
        v2 <- v2 + v1
        v1 <- rotl v1 17
        v1 <- v1 ^^^ v2
        v2 <- rotl v2 32

    /// SipHash-1-3 with k0 = k1 = 0 over the raw bytes (no length prefix), 64-bit result.
    let sipHash13 (data: ReadOnlySpan<byte>) : uint64 =
        let mutable v0 = 0x736f6d6570736575UL
        let mutable v1 = 0x646f72616e646f6dUL
        let mutable v2 = 0x6c7967656e657261UL
        let mutable v3 = 0x7465646279746573UL

        let len = data.Length
        let full = len &&& ~~~7
        let mutable i = 0

        while i < full do
            let m = BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(i, 8))
            v3 <- v3 ^^^ m
            sipRound &v0 &v1 &v2 &v3
            v0 <- v0 ^^^ m
            i <- i + 8

        let mutable b = uint64 (len &&& 0xff) <<< 56
        let mutable j = 0

        while i + j < len do
            b <- b ||| (uint64 data[i + j] <<< (8 * j))
            j <- j + 1

        v3 <- v3 ^^^ b
        sipRound &v0 &v1 &v2 &v3
        v0 <- v0 ^^^ b
        v2 <- v2 ^^^ 0xffUL
        sipRound &v0 &v1 &v2 &v3
        sipRound &v0 &v1 &v2 &v3
        sipRound &v0 &v1 &v2 &v3
        v0 ^^^ v1 ^^^ v2 ^^^ v3

    /// SipHash-1-3 of a byte array.
    let hashKey (key: byte[]) : uint64 = sipHash13 (ReadOnlySpan<byte> key)

    /// Number of probes: trunc(bitsPerKey × 0.69) in IEEE single precision (10 → 6), saturated to
    /// the u16 range like Rust's `as u16`.
    let numProbes (bitsPerKey: int) : int =
        let p = float32 bitsPerKey * 0.69f

        if p <= 0.0f then 0
        elif p >= 65535.0f then 65535
        else int p

    /// Bytes of filter bits for `keyCount` hashes: ceil(keyCount × bitsPerKey / 8) in u32
    /// arithmetic (as SlateDB).
    let filterBytes (keyCount: int) (bitsPerKey: int) : int =
        let bits = uint32 keyCount * uint32 bitsPerKey
        int ((bits + 7u) / 8u)

    /// The `k` probe positions of a hash in a filter of `m` bits (m > 0), in probe order
    /// (enhanced double hashing, SPEC §4.7).
    let probes (hash: uint64) (m: int) (k: int) : int[] =
        if m <= 0 then
            invalidArg "m" "filter must have at least one bit"

        let mm = uint64 m
        let out = Array.zeroCreate k
        let mutable x = (hash &&& 0xffffffffUL) % mm
        let mutable delta = (hash >>> 32) % mm

        for i in 0 .. k - 1 do
            delta <- (delta + uint64 i) % mm
            out[i] <- int x
            x <- (x + delta) % mm

        out

    /// Builds bloom `data` (num_probes:u16be ‖ bits) from one hash per row (duplicates allowed;
    /// n = hashes.Length). Throws `ArgumentException` for bitsPerKey ≤ 0.
    let build (bitsPerKey: int) (hashes: ReadOnlySpan<uint64>) : byte[] =
        if bitsPerKey <= 0 then
            invalidArg "bitsPerKey" (sprintf "bits per key must be positive, got %d" bitsPerKey)

        let k = numProbes bitsPerKey
        let nbytes = filterBytes hashes.Length bitsPerKey
        let data = Array.zeroCreate<byte> (2 + nbytes)
        BinaryPrimitives.WriteUInt16BigEndian(Span<byte>(data, 0, 2), uint16 k)
        let mm = uint64 nbytes * 8UL

        if mm > 0UL then
            for hi in 0 .. hashes.Length - 1 do
                let h = hashes[hi]
                let mutable x = (h &&& 0xffffffffUL) % mm
                let mutable delta = (h >>> 32) % mm

                for i in 0 .. k - 1 do
                    delta <- (delta + uint64 i) % mm
                    let bit = int x
                    data[2 + (bit >>> 3)] <- data[2 + (bit >>> 3)] ||| (1uy <<< (bit &&& 7))
                    x <- (x + delta) % mm

        data

    /// Builds bloom `data` over the given keys (one hash per key).
    let buildFromKeys (bitsPerKey: int) (keys: byte[] seq) : byte[] =
        let hashes = keys |> Seq.map hashKey |> Seq.toArray
        build bitsPerKey (ReadOnlySpan<uint64> hashes)

    /// True unless the filter proves the hash absent. A filter with m = 0 bits (or data shorter
    /// than its 2-byte header, which `validate` rejects) answers true.
    let mayContain (data: ReadOnlySpan<byte>) (hash: uint64) : bool =
        if data.Length <= 2 then
            true
        else
            let k = int (BinaryPrimitives.ReadUInt16BigEndian data)
            let bits = data.Slice 2
            let mm = uint64 bits.Length * 8UL
            let mutable x = (hash &&& 0xffffffffUL) % mm
            let mutable delta = (hash >>> 32) % mm
            let mutable ok = true
            let mutable i = 0

            while ok && i < k do
                delta <- (delta + uint64 i) % mm
                let bit = int x

                if bits[bit >>> 3] &&& (1uy <<< (bit &&& 7)) = 0uy then
                    ok <- false

                x <- (x + delta) % mm
                i <- i + 1

            ok

    /// Checks bloom data: at least the 2-byte num_probes header.
    let validate (data: ReadOnlySpan<byte>) : Result<unit, DecodeError> =
        if data.Length < 2 then
            Error(DecodeError.Truncated("bloom filter header", data.Length))
        else
            Ok()

    let private bfName: byte[] = Text.Encoding.UTF8.GetBytes CompositeName

    let private tryComposite (body: byte[]) : Result<byte[] option, DecodeError> =
        let s = ReadOnlySpan<byte> body

        if s.Length < 2 then
            Error(DecodeError.Truncated("composite filter count", s.Length))
        else
            let count = int (BigEndian.u16 s 0)
            let mutable p = 2
            let mutable i = 0
            let mutable found: byte[] option = None
            let mutable err = ValueNone

            while err.IsNone && i < count do
                if p + 2 > s.Length then
                    err <- ValueSome(DecodeError.Truncated(sprintf "composite filter entry %d name length" i, p))
                else
                    let nameLen = int (BigEndian.u16 s p)
                    let nameOff = p + 2

                    if nameOff + nameLen + 8 > s.Length then
                        err <- ValueSome(DecodeError.Truncated(sprintf "composite filter entry %d header" i, p))
                    else
                        let dataLen = BigEndian.u64 s (nameOff + nameLen)
                        let dataOff = nameOff + nameLen + 8

                        if dataLen > uint64 (s.Length - dataOff) then
                            err <- ValueSome(DecodeError.Truncated(sprintf "composite filter entry %d data" i, dataOff))
                        else
                            let d = s.Slice(dataOff, int dataLen)

                            if
                                found.IsNone
                                && s.Slice(nameOff, nameLen).SequenceEqual(ReadOnlySpan<byte> bfName)
                            then
                                match validate d with
                                | Error e -> err <- ValueSome e
                                | Ok() -> found <- Some(d.ToArray())

                            p <- dataOff + int dataLen
                            i <- i + 1

            match err with
            | ValueSome e -> Error e
            | ValueNone when p <> s.Length ->
                Error(
                    DecodeError.Invalid(
                        "composite filter block",
                        sprintf "%d trailing bytes after %d entries" (s.Length - p) count
                    )
                )
            | ValueNone -> Ok found

    /// Decodes a (decompressed) filter block body. Legacy: the body is one bloom data. Composite:
    /// `count:u16be | { name_len:u16be | name | data_len:u64be | data }*`; returns the entry named
    /// "_bf" (unknown names are skipped), None when there is none.
    let tryDecodeFilterBlock (format: FilterFormat) (body: byte[]) : Result<byte[] option, DecodeError> =
        match format with
        | FilterFormat.Legacy -> validate (ReadOnlySpan<byte> body) |> Result.map (fun () -> Some body)
        | FilterFormat.Composite -> tryComposite body
        | other -> Error(DecodeError.Invalid("filter format", sprintf "unknown filter format %d" (int other)))
