/// ULID and UUID values with their FlatBuffers (high/low) and text encodings (SPEC §4.17).
/// Storage-format type: the high/low split and the Crockford text are part of the on-disk format.
namespace Slate.Model

open System

/// A 128-bit ULID: 48-bit Unix-ms timestamp followed by 80 random bits.
[<Struct; CustomEquality; CustomComparison>]
type Ulid =
    {
        /// Most significant 64 bits.
        High: uint64
        /// Least significant 64 bits.
        Low: uint64
    }

    override this.Equals(o: obj) =
        match o with
        | :? Ulid as u -> u.High = this.High && u.Low = this.Low
        | _ -> false

    override this.GetHashCode() = HashCode.Combine(this.High, this.Low)

    interface IEquatable<Ulid> with
        member this.Equals(u: Ulid) = u.High = this.High && u.Low = this.Low

    interface IComparable<Ulid> with
        member this.CompareTo(u: Ulid) =
            let c = compare this.High u.High
            if c <> 0 then c else compare this.Low u.Low

    interface IComparable with
        member this.CompareTo(o: obj) =
            match o with
            | :? Ulid as u ->
                let c = compare this.High u.High
                if c <> 0 then c else compare this.Low u.Low
            | _ -> invalidArg "o" "not a Ulid"

    override this.ToString() =
        // 26 Crockford base32 characters over the 128 bits (2 leading zero bits).
        let alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
        let chars = Array.zeroCreate<char> 26

        for i in 0..25 do
            // bit position of this character's lowest bit, counted from the least significant bit
            let shift = (25 - i) * 5

            let v =
                if shift >= 64 then
                    (this.High >>> (shift - 64)) &&& 31UL
                elif shift + 5 <= 64 then
                    (this.Low >>> shift) &&& 31UL
                else
                    // straddles the two words
                    let lowPart = this.Low >>> shift
                    let highPart = this.High <<< (64 - shift)
                    (lowPart ||| highPart) &&& 31UL

            chars[i] <- alphabet[int v]

        String(chars)

/// Functions over ULIDs.
[<RequireQualifiedAccess>]
module Ulid =
    /// Builds a ULID from a millisecond timestamp and 80 random bits (`randHigh16` holds the top
    /// 16 of them, `randLow64` the rest). Randomness is the caller's.
    let create (unixMs: int64) (randHigh16: uint16) (randLow64: uint64) : Ulid =
        if unixMs < 0L || unixMs >= (1L <<< 48) then
            invalidArg "unixMs" "ULID timestamp must fit 48 bits"

        { High = (uint64 unixMs <<< 16) ||| uint64 randHigh16
          Low = randLow64 }

    /// The 48-bit millisecond timestamp.
    let timestampMs (u: Ulid) : int64 = int64 (u.High >>> 16)

    /// Upper-case Crockford text.
    let toString (u: Ulid) : string = u.ToString()

    let private decodeChar (c: char) : int =
        match Char.ToUpperInvariant c with
        | c when c >= '0' && c <= '9' -> int c - int '0'
        | 'A' -> 10
        | 'B' -> 11
        | 'C' -> 12
        | 'D' -> 13
        | 'E' -> 14
        | 'F' -> 15
        | 'G' -> 16
        | 'H' -> 17
        | 'J' -> 18
        | 'K' -> 19
        | 'M' -> 20
        | 'N' -> 21
        | 'P' -> 22
        | 'Q' -> 23
        | 'R' -> 24
        | 'S' -> 25
        | 'T' -> 26
        | 'V' -> 27
        | 'W' -> 28
        | 'X' -> 29
        | 'Y' -> 30
        | 'Z' -> 31
        | _ -> -1

    /// Parses 26 Crockford characters (either case); None when malformed or overflowing.
    let tryParse (s: string) : Ulid option =
        if isNull s || s.Length <> 26 then
            None
        else
            let vals = s |> Seq.map decodeChar |> Array.ofSeq

            if vals |> Array.exists (fun v -> v < 0) || vals[0] > 7 then
                None
            else
                let mutable hi = 0UL
                let mutable lo = 0UL

                for v in vals do
                    // shift the 128-bit (hi, lo) left by 5 and add v
                    hi <- (hi <<< 5) ||| (lo >>> 59)
                    lo <- (lo <<< 5) ||| uint64 v

                Some { High = hi; Low = lo }

/// A 128-bit UUID (checkpoint ids): `High` = big-endian u64 of RFC 4122 bytes 0-7, `Low` = 8-15.
[<Struct>]
type Uuid =
    {
        /// Bytes 0-7 as a big-endian u64.
        High: uint64
        /// Bytes 8-15 as a big-endian u64.
        Low: uint64
    }

/// Functions over UUIDs.
[<RequireQualifiedAccess>]
module Uuid =
    /// From a `System.Guid` (RFC 4122 byte order).
    let ofGuid (g: Guid) : Uuid =
        let b = g.ToByteArray(true)

        { High = BigEndian.u64 (ReadOnlySpan b) 0
          Low = BigEndian.u64 (ReadOnlySpan b) 8 }

    /// To a `System.Guid`.
    let toGuid (u: Uuid) : Guid =
        let b = Array.zeroCreate<byte> 16
        BigEndian.writeU64 (Span(b, 0, 8)) u.High
        BigEndian.writeU64 (Span(b, 8, 8)) u.Low
        Guid(ReadOnlySpan b, true)

    /// Canonical lower-case 8-4-4-4-12 text.
    let toString (u: Uuid) : string = (toGuid u).ToString("D")

    /// A version-4 UUID from 128 caller-supplied random bits.
    let v4 (r1: uint64) (r2: uint64) : Uuid =
        { High = (r1 &&& 0xFFFFFFFFFFFF0FFFUL) ||| 0x0000000000004000UL
          Low = (r2 &&& 0x3FFFFFFFFFFFFFFFUL) ||| 0x8000000000000000UL }
