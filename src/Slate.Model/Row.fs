/// Row codecs (SPEC §4.2). Storage format: v2 is what SST format 2 uses and the only codec Slate
/// writes; v0 (SST format 1) is read-only.
///
/// v2: `shared:varint | unshared:varint | value_len:varint | key_suffix | value | seq:u64be |
/// flags:u8 | [expire_ts:i64be] | [create_ts:i64be]`, key = previous_key[0..shared] ‖ suffix.
///
/// v0: `prefix_len:u16be | suffix_len:u16be | suffix | seq:u64be | flags:u8 | [expire_ts:i64be] |
/// [create_ts:i64be] | (non-tombstone) value_len:u32be | value`, prefix from the block's first key.
namespace Slate.Model

open System

/// Encoding and decoding of single rows.
[<RequireQualifiedAccess>]
module Row =
    /// Flag: the row is a tombstone (no value bytes).
    [<Literal>]
    let FlagTombstone = 0x01uy

    /// Flag: an expire_ts follows the flags byte.
    [<Literal>]
    let FlagHasExpireTs = 0x02uy

    /// Flag: a create_ts follows (after expire_ts when both are present).
    [<Literal>]
    let FlagHasCreateTs = 0x04uy

    /// Flag: the value is a merge operand.
    [<Literal>]
    let FlagMergeOperand = 0x08uy

    /// All known flag bits.
    [<Literal>]
    let KnownFlags = 0x0Fuy

    /// The flags byte written for a row (HAS_* set exactly when the option is present).
    let flagsOf (row: RowEntry) : byte =
        let kind =
            match row.Value with
            | RowValue.Value _ -> 0uy
            | RowValue.Merge _ -> FlagMergeOperand
            | RowValue.Tombstone -> FlagTombstone

        let e = if row.ExpireTs.IsSome then FlagHasExpireTs else 0uy
        let c = if row.CreateTs.IsSome then FlagHasCreateTs else 0uy
        kind ||| e ||| c

    let inline private valueBytes (row: RowEntry) : byte[] =
        match row.Value with
        | RowValue.Value v
        | RowValue.Merge v -> v
        | RowValue.Tombstone -> Bytes.empty

    let inline private tsSize (row: RowEntry) : int =
        (if row.ExpireTs.IsSome then 8 else 0) + (if row.CreateTs.IsSome then 8 else 0)

    /// Encoded v2 size of a row whose key shares `shared` bytes with the previous key
    /// (0 ≤ shared ≤ key length; not checked against a previous key).
    let encodedSizeV2Shared (shared: int) (row: RowEntry) : int =
        let unshared = row.Key.Length - shared
        let vlen = (valueBytes row).Length

        Varint.size (uint32 shared)
        + Varint.size (uint32 unshared)
        + Varint.size (uint32 vlen)
        + unshared
        + vlen
        + 9
        + tsSize row

    /// Encoded v2 size of a row written after `prevKey` (pass an empty span for restart rows).
    let encodedSizeV2 (prevKey: ReadOnlySpan<byte>) (row: RowEntry) : int =
        encodedSizeV2Shared (Bytes.commonPrefix prevKey (ReadOnlySpan<byte> row.Key)) row

    /// Writes the v2 encoding of a row sharing `shared` key bytes with the previous key; returns
    /// the bytes written. `dst` must hold `encodedSizeV2Shared shared row` bytes.
    let writeV2Shared (dst: Span<byte>) (shared: int) (row: RowEntry) : int =
        if shared < 0 || shared > row.Key.Length then
            invalidArg "shared" (sprintf "shared %d outside 0..%d" shared row.Key.Length)

        let key = row.Key
        let value = valueBytes row
        let unshared = key.Length - shared
        let mutable p = Varint.write dst (uint32 shared)
        p <- p + Varint.write (dst.Slice p) (uint32 unshared)
        p <- p + Varint.write (dst.Slice p) (uint32 value.Length)
        ReadOnlySpan<byte>(key, shared, unshared).CopyTo(dst.Slice p)
        p <- p + unshared
        ReadOnlySpan<byte>(value).CopyTo(dst.Slice p)
        p <- p + value.Length
        BigEndian.writeU64 (dst.Slice p) row.Seq
        dst[p + 8] <- flagsOf row
        p <- p + 9

        match row.ExpireTs with
        | Some e ->
            BigEndian.writeI64 (dst.Slice p) e
            p <- p + 8
        | None -> ()

        match row.CreateTs with
        | Some c ->
            BigEndian.writeI64 (dst.Slice p) c
            p <- p + 8
        | None -> ()

        p

    /// Writes the v2 encoding of a row after `prevKey` (shared = longest common prefix; pass an
    /// empty span for restart rows); returns the bytes written (= `encodedSizeV2 prevKey row`).
    let writeV2 (dst: Span<byte>) (prevKey: ReadOnlySpan<byte>) (row: RowEntry) : int =
        writeV2Shared dst (Bytes.commonPrefix prevKey (ReadOnlySpan<byte> row.Key)) row

    /// The v2 encoding of one row as an array.
    let encodeV2 (prevKey: ReadOnlySpan<byte>) (row: RowEntry) : byte[] =
        let buf = Array.zeroCreate (encodedSizeV2 prevKey row)
        writeV2 (Span<byte> buf) prevKey row |> ignore
        buf

    let private truncated (what: string) (offset: int) : Result<'a, DecodeError> =
        Error(DecodeError.Truncated(what, offset))

    let private invalid (offset: int) (detail: string) : Result<'a, DecodeError> =
        Error(DecodeError.Invalid(sprintf "row at byte %d" offset, detail))

    /// Validates a flags byte: no unknown bits, not TOMBSTONE together with MERGE_OPERAND.
    let checkFlags (flags: byte) (offset: int) : Result<unit, DecodeError> =
        if flags &&& ~~~KnownFlags <> 0uy then
            invalid offset (sprintf "unknown row flag bits 0x%02x" flags)
        elif flags &&& FlagTombstone <> 0uy && flags &&& FlagMergeOperand <> 0uy then
            invalid offset (sprintf "row flags 0x%02x combine tombstone and merge operand" flags)
        else
            Ok()

    /// The header of a v2 row: key sharing, lengths and where the key suffix starts.
    [<Struct>]
    type HeaderV2 =
        {
            /// Bytes shared with the previous key.
            Shared: int
            /// Length of the key suffix.
            Unshared: int
            /// Length of the value.
            ValueLen: int
            /// Offset of the key suffix in the source.
            SuffixOffset: int
        }

    /// Reads and bounds-checks the three varints of a v2 row at `offset`: the key suffix and value
    /// must lie inside `src`, and 9 bytes (seq, flags) must follow them.
    let tryReadHeaderV2 (src: ReadOnlySpan<byte>) (offset: int) : Result<HeaderV2, DecodeError> =
        match Varint.tryRead src offset with
        | ValueNone -> truncated "row shared length" offset
        | ValueSome(struct (shared, p1)) ->
            match Varint.tryRead src p1 with
            | ValueNone -> truncated "row key suffix length" p1
            | ValueSome(struct (unshared, p2)) ->
                match Varint.tryRead src p2 with
                | ValueNone -> truncated "row value length" p2
                | ValueSome(struct (vlen, p3)) ->
                    let fixedEnd = int64 p3 + int64 unshared + int64 vlen + 9L

                    if fixedEnd > int64 src.Length then
                        truncated (sprintf "row at byte %d" offset) src.Length
                    elif int64 shared + int64 unshared > int64 Int32.MaxValue then
                        invalid offset "key length overflows"
                    else
                        Ok
                            { Shared = int shared
                              Unshared = int unshared
                              ValueLen = int vlen
                              SuffixOffset = p3 }

    let inline private readTs (src: ReadOnlySpan<byte>) (p: byref<int>) (present: bool) : int64 option =
        if present then
            let v = BigEndian.i64 src p
            p <- p + 8
            Some v
        else
            None

    /// Decodes a v2 row at `offset` whose key shares a prefix with `prevKey`. Returns the row and
    /// the offset after it. Errors (with the byte offset): truncation, shared > prevKey length,
    /// unknown flag bits, tombstone + merge, a tombstone with value bytes.
    let tryDecodeV2
        (src: ReadOnlySpan<byte>)
        (offset: int)
        (prevKey: ReadOnlySpan<byte>)
        : Result<struct (RowEntry * int), DecodeError> =
        match tryReadHeaderV2 src offset with
        | Error e -> Error e
        | Ok h ->
            if h.Shared > prevKey.Length then
                invalid offset (sprintf "shared prefix %d exceeds previous key length %d" h.Shared prevKey.Length)
            else
                let vOff = h.SuffixOffset + h.Unshared
                let mutable p = vOff + h.ValueLen
                let seq = BigEndian.u64 src p
                let flags = src[p + 8]
                p <- p + 9

                match checkFlags flags offset with
                | Error e -> Error e
                | Ok() ->
                    let hasE = flags &&& FlagHasExpireTs <> 0uy
                    let hasC = flags &&& FlagHasCreateTs <> 0uy
                    let need = (if hasE then 8 else 0) + (if hasC then 8 else 0)

                    if p + need > src.Length then
                        truncated (sprintf "row timestamps at byte %d" offset) src.Length
                    elif flags &&& FlagTombstone <> 0uy && h.ValueLen <> 0 then
                        invalid offset (sprintf "tombstone with %d value bytes" h.ValueLen)
                    else
                        let key = Array.zeroCreate<byte> (h.Shared + h.Unshared)
                        prevKey.Slice(0, h.Shared).CopyTo(Span<byte>(key))
                        src.Slice(h.SuffixOffset, h.Unshared).CopyTo(Span<byte>(key, h.Shared, h.Unshared))

                        let value =
                            if flags &&& FlagTombstone <> 0uy then
                                RowValue.Tombstone
                            else
                                let v = src.Slice(vOff, h.ValueLen).ToArray()

                                if flags &&& FlagMergeOperand <> 0uy then
                                    RowValue.Merge v
                                else
                                    RowValue.Value v

                        let expireTs = readTs src &p hasE
                        let createTs = readTs src &p hasC

                        Ok(
                            struct ({ Key = key
                                      Value = value
                                      Seq = seq
                                      CreateTs = createTs
                                      ExpireTs = expireTs },
                                    p)
                        )

    /// Decodes a v0 row (SST format 1) at `offset`; the key prefix comes from `firstKeyOfBlock`
    /// (empty for the block's first row). A tombstone's expire_ts is discarded. Returns the row
    /// and the offset after it.
    let tryDecodeV0
        (src: ReadOnlySpan<byte>)
        (offset: int)
        (firstKeyOfBlock: ReadOnlySpan<byte>)
        : Result<struct (RowEntry * int), DecodeError> =
        if offset + 4 > src.Length then
            truncated "v0 row key lengths" offset
        else
            let prefix = int (BigEndian.u16 src offset)
            let suffix = int (BigEndian.u16 src (offset + 2))
            let sOff = offset + 4
            let mutable p = sOff + suffix

            if prefix > firstKeyOfBlock.Length then
                invalid
                    offset
                    (sprintf "key prefix %d exceeds the block's first key length %d" prefix firstKeyOfBlock.Length)
            elif p + 9 > src.Length then
                truncated (sprintf "v0 row at byte %d" offset) src.Length
            else
                let seq = BigEndian.u64 src p
                let flags = src[p + 8]
                p <- p + 9

                match checkFlags flags offset with
                | Error e -> Error e
                | Ok() ->
                    let hasE = flags &&& FlagHasExpireTs <> 0uy
                    let hasC = flags &&& FlagHasCreateTs <> 0uy
                    let tomb = flags &&& FlagTombstone <> 0uy

                    let need =
                        (if hasE then 8 else 0) + (if hasC then 8 else 0) + (if tomb then 0 else 4)

                    if p + need > src.Length then
                        truncated (sprintf "v0 row timestamps at byte %d" offset) src.Length
                    else
                        let expireTs = readTs src &p hasE
                        let createTs = readTs src &p hasC

                        let valueResult =
                            if tomb then
                                Ok RowValue.Tombstone
                            else
                                let vlen = BigEndian.u32 src p
                                p <- p + 4

                                if int64 p + int64 vlen > int64 src.Length then
                                    truncated (sprintf "v0 row value at byte %d" offset) src.Length
                                else
                                    let v = src.Slice(p, int vlen).ToArray()
                                    p <- p + int vlen

                                    if flags &&& FlagMergeOperand <> 0uy then
                                        Ok(RowValue.Merge v)
                                    else
                                        Ok(RowValue.Value v)

                        match valueResult with
                        | Error e -> Error e
                        | Ok value ->
                            let key = Array.zeroCreate<byte> (prefix + suffix)
                            firstKeyOfBlock.Slice(0, prefix).CopyTo(Span<byte>(key))
                            src.Slice(sOff, suffix).CopyTo(Span<byte>(key, prefix, suffix))

                            Ok(
                                struct ({ Key = key
                                          Value = value
                                          Seq = seq
                                          CreateTs = createTs
                                          ExpireTs = (if tomb then None else expireTs) },
                                        p)
                            )
