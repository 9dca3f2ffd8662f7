/// Primitives shared by every format module: unsigned byte order, big-endian and varint helpers,
/// CRC-32, and the decode-error type returned for untrusted bytes.
namespace Slate.Model

open System
open System.Buffers.Binary

/// Why a byte sequence could not be decoded. Decoding never throws on bad input; it returns
/// one of these, and `DecodeError.describe` names the object part and the cause.
[<RequireQualifiedAccess>]
type DecodeError =
    /// The input ended before a complete item could be read (`what`, at byte `offset`).
    | Truncated of what: string * offset: int
    /// A stored CRC-32 does not match the bytes it covers.
    | ChecksumMismatch of what: string * expected: uint32 * actual: uint32
    /// A value is outside what the format allows (unknown flags, enum values, bad lengths ...).
    | Invalid of what: string * detail: string
    /// A format or file version this reader does not understand.
    | UnsupportedVersion of what: string * version: int
    /// A compressed frame could not be decompressed.
    | Decompression of what: string * detail: string

/// Functions over `DecodeError`.
[<RequireQualifiedAccess>]
module DecodeError =
    /// A one-line, human-readable description.
    let describe (e: DecodeError) : string =
        match e with
        | DecodeError.Truncated(what, off) -> sprintf "%s: truncated at byte %d" what off
        | DecodeError.ChecksumMismatch(what, exp, act) ->
            sprintf "checksum mismatch in %s (stored %08x, computed %08x)" what exp act
        | DecodeError.Invalid(what, detail) -> sprintf "%s: %s" what detail
        | DecodeError.UnsupportedVersion(what, v) -> sprintf "%s: unsupported version %d" what v
        | DecodeError.Decompression(what, detail) -> sprintf "%s: decompression failed: %s" what detail

    /// Prefixes the location (`what`) of an error with a context such as an object name.
    let within (context: string) (e: DecodeError) : DecodeError =
        match e with
        | DecodeError.Truncated(what, off) -> DecodeError.Truncated(context + " " + what, off)
        | DecodeError.ChecksumMismatch(what, a, b) -> DecodeError.ChecksumMismatch(context + " " + what, a, b)
        | DecodeError.Invalid(what, d) -> DecodeError.Invalid(context + " " + what, d)
        | DecodeError.UnsupportedVersion(what, v) -> DecodeError.UnsupportedVersion(context + " " + what, v)
        | DecodeError.Decompression(what, d) -> DecodeError.Decompression(context + " " + what, d)

/// Result helpers (a tiny computation expression for `Result<_, DecodeError>`).
[<AutoOpen>]
module ResultBuilder =
    /// Sequencing for results.
    type ResultCE() =
        member _.Bind(r: Result<'a, 'e>, f: 'a -> Result<'b, 'e>) : Result<'b, 'e> = Result.bind f r
        member _.Return(x: 'a) : Result<'a, 'e> = Ok x
        member _.ReturnFrom(r: Result<'a, 'e>) : Result<'a, 'e> = r
        member _.Zero() : Result<unit, 'e> = Ok()
        member _.Delay(f: unit -> Result<'a, 'e>) : unit -> Result<'a, 'e> = f
        member _.Run(f: unit -> Result<'a, 'e>) : Result<'a, 'e> = f ()

        member _.Combine(r: Result<unit, 'e>, f: unit -> Result<'a, 'e>) : Result<'a, 'e> = Result.bind f r

    /// `result { ... }`.
    let result = ResultCE()

/// Unsigned lexicographic byte order (memcmp order; a proper prefix sorts first), hex, helpers.
[<RequireQualifiedAccess>]
module Bytes =
    /// The empty byte array.
    let empty: byte[] = [||]

    /// Compares two spans as unsigned bytes.
    let compareSpan (a: ReadOnlySpan<byte>) (b: ReadOnlySpan<byte>) : int = a.SequenceCompareTo(b)

    /// Compares two arrays as unsigned bytes.
    let compare (a: byte[]) (b: byte[]) : int =
        ReadOnlySpan<byte>(a).SequenceCompareTo(ReadOnlySpan<byte>(b))

    /// True when both arrays hold the same bytes.
    let equal (a: byte[]) (b: byte[]) : bool =
        ReadOnlySpan<byte>(a).SequenceEqual(ReadOnlySpan<byte>(b))

    /// Lower-case hex.
    let toHex (a: byte[]) : string =
        Convert.ToHexString(a).ToLowerInvariant()

    /// Parses hex (either case). Throws on malformed input (only for trusted test data).
    let ofHex (s: string) : byte[] = Convert.FromHexString s

    /// Length of the longest common prefix.
    let commonPrefix (a: ReadOnlySpan<byte>) (b: ReadOnlySpan<byte>) : int = a.CommonPrefixLength(b)

    /// A comparer usable by sorted collections.
    let comparer: Collections.Generic.IComparer<byte[]> =
        { new Collections.Generic.IComparer<byte[]> with
            member _.Compare(a, b) = compare a b }

/// Big-endian fixed-width integers.
[<RequireQualifiedAccess>]
module BigEndian =
    /// Reads a u16 at `off`.
    let u16 (s: ReadOnlySpan<byte>) (off: int) : uint16 =
        BinaryPrimitives.ReadUInt16BigEndian(s.Slice off)

    /// Reads a u32 at `off`.
    let u32 (s: ReadOnlySpan<byte>) (off: int) : uint32 =
        BinaryPrimitives.ReadUInt32BigEndian(s.Slice off)

    /// Reads a u64 at `off`.
    let u64 (s: ReadOnlySpan<byte>) (off: int) : uint64 =
        BinaryPrimitives.ReadUInt64BigEndian(s.Slice off)

    /// Reads an i64 at `off`.
    let i64 (s: ReadOnlySpan<byte>) (off: int) : int64 =
        BinaryPrimitives.ReadInt64BigEndian(s.Slice off)

    /// Writes a u16.
    let writeU16 (s: Span<byte>) (v: uint16) : unit =
        BinaryPrimitives.WriteUInt16BigEndian(s, v)

    /// Writes a u32.
    let writeU32 (s: Span<byte>) (v: uint32) : unit =
        BinaryPrimitives.WriteUInt32BigEndian(s, v)

    /// Writes a u64.
    let writeU64 (s: Span<byte>) (v: uint64) : unit =
        BinaryPrimitives.WriteUInt64BigEndian(s, v)

    /// Writes an i64.
    let writeI64 (s: Span<byte>) (v: int64) : unit =
        BinaryPrimitives.WriteInt64BigEndian(s, v)

    /// The 8 big-endian bytes of a u64.
    let bytesOfU64 (v: uint64) : byte[] =
        let a = Array.zeroCreate 8
        BinaryPrimitives.WriteUInt64BigEndian(Span<byte>(a), v)
        a

/// Unsigned LEB128 varints of u32 values (row codec v2).
[<RequireQualifiedAccess>]
module Varint =
    /// Encoded length of `v`.
    let size (v: uint32) : int =
        if v < 0x80u then 1
        elif v < 0x4000u then 2
        elif v < 0x200000u then 3
        elif v < 0x10000000u then 4
        else 5

    /// Writes `v` at the start of `dst`; returns the bytes written.
    let write (dst: Span<byte>) (v: uint32) : int =
        let mutable v = v
        let mutable i = 0

        while v >= 0x80u do
            dst[i] <- byte (v ||| 0x80u)
            v <- v >>> 7
            i <- i + 1

        dst[i] <- byte v
        i + 1

    /// Reads a varint at `off`; returns (value, next offset), or None when truncated or longer
    /// than a u32.
    let tryRead (s: ReadOnlySpan<byte>) (off: int) : struct (uint32 * int) voption =
        let mutable result = 0UL
        let mutable shift = 0
        let mutable i = off
        let mutable fin = false
        let mutable bad = false

        while not fin && not bad do
            if i >= s.Length || shift > 28 then
                bad <- true
            else
                let b = s[i]
                result <- result ||| (uint64 (b &&& 0x7fuy) <<< shift)
                i <- i + 1
                shift <- shift + 7

                if b &&& 0x80uy = 0uy then
                    fin <- true

        if bad || result > uint64 UInt32.MaxValue then
            ValueNone
        else
            ValueSome(struct (uint32 result, i))

/// CRC-32 as SPEC §4.1 (IEEE, the zlib CRC), stored as u32be after each block.
[<RequireQualifiedAccess>]
module Crc32 =
    /// CRC-32 of the bytes.
    let compute (s: ReadOnlySpan<byte>) : uint32 = System.IO.Hashing.Crc32.HashToUInt32 s

    /// CRC-32 of an array.
    let ofArray (a: byte[]) : uint32 = compute (ReadOnlySpan<byte>(a))
